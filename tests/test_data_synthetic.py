"""The synthetic generator: deterministic per seed and per image, binary masks, target sizes, target-free share."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from hnanas.data import SynthParams, index_folder, load_mask, open_dataset, write_synthetic
from hnanas.data import synthetic
from hnanas.data.synth_scene import MAX_AREA, MIN_AREA, render_scene
from hnanas.errors import DataError

EIGHT = np.ones((3, 3), bool)


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_other_seed_other_images(tmp_path):
    params = SynthParams(n=6, size=64, seed=7)
    write_synthetic(tmp_path / "a", params)
    write_synthetic(tmp_path / "b", params, workers=2)  # the number of workers does not matter
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    write_synthetic(tmp_path / "c", SynthParams(n=6, size=64, seed=8))
    a, c = _files(tmp_path / "a"), _files(tmp_path / "c")
    assert a["images/synth_00000.png"] != c["images/synth_00000.png"]


def test_image_i_does_not_depend_on_n():
    small, large = SynthParams(n=3, size=64, seed=1), SynthParams(n=30, size=64, seed=1)
    for i in range(3):
        a, b = synthetic.render_sample(small, i), synthetic.render_sample(large, i)
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_masks_binary_targets_2_to_80_px_and_about_10_percent_target_free():
    free = 0
    n = 300
    for i in range(n):
        rng = np.random.default_rng(np.random.SeedSequence(0, spawn_key=(i,)))
        image, mask, targets, _ = render_scene(rng, 64)
        assert image.dtype == np.uint8 and mask.dtype == bool and image.shape == mask.shape == (64, 64)
        labels, count = ndimage.label(mask, EIGHT)
        assert count == len(targets)  # targets never touch each other
        areas = np.bincount(labels.ravel())[1:]
        assert all(MIN_AREA <= a <= MAX_AREA for a in areas)
        assert sorted(areas.tolist()) == sorted(t.area for t in targets)
        free += count == 0
    assert 0.05 <= free / n <= 0.16


def test_written_dataset_layout_lists_and_metadata(tmp_path):
    out = tmp_path / "syn"
    meta = write_synthetic(out, SynthParams(n=10, size=48, seed=0))
    index = index_folder(out)
    split = index.split()
    assert index.layout == "uniform" and len(split.train) == 8 and len(split.test) == 2
    assert set(split.train).isdisjoint(split.test)
    saved = json.loads((out / "synthetic.json").read_text())
    assert saved == meta and saved["generator_version"] == synthetic.GENERATOR_VERSION
    assert saved["params"] == {"n": 10, "size": 48, "seed": 0, "test_fraction": 0.2}
    rows = [r.split(",") for r in (out / "targets.csv").read_text().splitlines()[1:]]
    for sample_id in split.train + split.test:
        with Image.open(index.paths(sample_id).mask) as im:
            assert set(np.unique(np.asarray(im)).tolist()) <= {0, 255}
        mask = load_mask(index.paths(sample_id).mask, (48, 48))
        assert mask.sum() == sum(int(r[4]) for r in rows if r[0] == sample_id)  # targets.csv areas


def test_rewrite_is_a_no_op_and_a_different_dataset_needs_overwrite(tmp_path):
    out = tmp_path / "syn"
    write_synthetic(out, SynthParams(n=4, size=48))
    stamp = (out / "images" / "synth_00000.png").stat().st_mtime_ns
    write_synthetic(out, SynthParams(n=4, size=48))
    assert (out / "images" / "synth_00000.png").stat().st_mtime_ns == stamp
    with pytest.raises(DataError, match="--overwrite"):
        write_synthetic(out, SynthParams(n=3, size=48))
    write_synthetic(out, SynthParams(n=3, size=48), overwrite=True)
    assert len(list((out / "images").glob("*.png"))) == 3
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="other files"):
        write_synthetic(tmp_path / "other", SynthParams(n=3, size=48))


def test_dataset_synthetic_is_generated_on_first_use(data_root, monkeypatch):
    monkeypatch.setattr(synthetic, "DEFAULT_PARAMS", SynthParams(n=5, size=48, seed=0))
    index = open_dataset("synthetic")
    assert index.root == data_root / "synthetic" and len(index.items) == 5
    assert open_dataset("synthetic").items.keys() == index.items.keys()  # second use: read, not regenerated

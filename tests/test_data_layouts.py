"""Dataset layouts, split lists and dataset resolution: real NUAA-SIRST and tiny fixtures of every layout."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from data_fixtures import IDS, make_layout, mask_for, write_list, write_png

from hnanas.data import index_folder, load_image, load_mask, open_dataset, read_id_list, usable_ids
from hnanas.errors import DataError


# ---------------------------------------------------------------------------------------------- real data
@pytest.mark.real_data
def test_nuaa_splits_have_the_official_counts(nuaa_root):
    index = index_folder(nuaa_root)
    assert index.name == "NUAA-SIRST" and index.layout == "uniform" and len(index.items) == 427
    assert index.default_split == "idx_427"
    idx427, fifty = index.split("idx_427"), index.split("50_50")
    assert (len(idx427.train), len(idx427.test)) == (341, 86)  # trainval.txt, not train.txt (255)
    assert (len(fifty.train), len(fifty.test)) == (213, 214)
    assert set(idx427.train).isdisjoint(idx427.test) and set(fifty.train).isdisjoint(fifty.test)
    root = index.split("default")  # the root train.txt / test.txt equal idx_427
    assert (root.train, root.test) == (idx427.train, idx427.test)


@pytest.mark.real_data
def test_nudt_is_read_in_its_own_layout_with_the_official_split(nudt_root, tmp_path, monkeypatch):
    monkeypatch.setenv("HNANAS_CACHE", str(tmp_path / "cache"))
    index = open_dataset("NUDT-SIRST", data_root=nudt_root.parent)  # by name under a data root, as --dataset
    assert index.name == "NUDT-SIRST" and index.layout == "dnanet" and index.root == nudt_root
    assert len(index.items) == 1327 and index.default_split == "50_50" and list(index.splits) == ["50_50"]
    split = index.split()
    assert (len(split.train), len(split.test)) == (663, 664) and set(split.train).isdisjoint(split.test)
    assert split.train[:2] == ("001137", "000345") and split.test[0] == "000541"  # in the list files' order
    for image_id in (split.train[0], split.test[-1]):
        paths = index.paths(image_id)
        image = load_image(paths.image)  # RGB with equal channels -> one channel
        mask = load_mask(paths.mask, image.shape, "error")
        assert image.shape == mask.shape == (256, 256) and mask.dtype == bool and 1 <= mask.sum() < 200
    assert open_dataset(nudt_root).root == nudt_root  # or by its folder


@pytest.mark.real_data
def test_nuaa_misc111_mismatch_policies(nuaa_root, caplog):
    index = index_folder(nuaa_root)
    paths = index.paths("Misc_111")
    image = load_image(paths.image)
    assert image.shape == (220, 325)
    with caplog.at_level(logging.WARNING):
        mask = load_mask(paths.mask, image.shape, "resize")
    assert mask.shape == image.shape and mask.any()
    assert "Misc_111.png" in caplog.text and "592x400" in caplog.text
    kept = usable_ids(index, ["Misc_110", "Misc_111", "Misc_112"], "skip")
    assert kept == ["Misc_110", "Misc_112"]
    with pytest.raises(DataError, match="Misc_111.png"):
        usable_ids(index, ["Misc_111"], "error")
    with pytest.raises(DataError, match="Misc_111.png"):
        load_mask(paths.mask, image.shape, "error")


# ------------------------------------------------------------------------------------------- tiny layouts
@pytest.mark.parametrize("layout, split, train, test", [
    ("uniform", "default", IDS[:3], IDS[3:]),
    ("sirst", "idx_427", IDS[:3], IDS[3:]),
    ("dnanet", "50_50", IDS[:3], IDS[3:]),
    ("irstd1k", "default", IDS[:3], IDS[3:]),
    ("basicirstd", "TINY", IDS[:3], IDS[3:]),
    ("sirst-v2", "full", IDS[:3], IDS[3:]),
])
def test_each_layout_is_detected_and_read(tmp_path, layout, split, train, test):
    index = index_folder(make_layout(tmp_path / "ds", layout))
    assert index.layout == layout
    assert index.default_split == split
    chosen = index.split()
    assert list(chosen.train) == train and list(chosen.test) == test
    for sample_id in IDS:
        paths = index.paths(sample_id)
        assert paths.image.is_file()
        image = load_image(paths.image)
        assert image.dtype == np.float32 and image.shape == (12, 16)
        mask = load_mask(paths.mask, image.shape)
        if layout == "sirst-v2" and sample_id in ("b1", "c1"):
            assert paths.mask is None and not mask.any()  # target-free backgrounds
        else:
            k = (["a1", "a2", "b2"] if layout == "sirst-v2" else IDS).index(sample_id)
            assert np.array_equal(mask, mask_for(k) > 0)


def test_uniform_layout_also_reads_split_folders(tmp_path):
    index = index_folder(make_layout(tmp_path / "ds", "uniform"))
    assert sorted(index.splits) == ["alt", "default"]
    assert list(index.split("alt").train) == IDS[:2]


def test_sirst_v2_named_lists_both_orders(tmp_path):
    index = index_folder(make_layout(tmp_path / "ds", "sirst-v2"))
    assert sorted(index.splits) == ["full", "mini"]  # v2background.txt is no split
    assert list(index.split("mini").train) == ["a1", "b1"] and list(index.split("mini").test) == ["c1"]


def test_unknown_split_lists_available(tmp_path):
    index = index_folder(make_layout(tmp_path / "ds", "dnanet"))
    with pytest.raises(DataError, match="no split 'idx_427'; available: 50_50"):
        index.split("idx_427")


def test_unrecognised_folder_and_missing_lists(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="unrecognised dataset layout"):
        index_folder(tmp_path / "empty")
    write_png(tmp_path / "nolists" / "images" / "x.png", np.zeros((4, 4), np.uint8))
    (tmp_path / "nolists" / "masks").mkdir()
    with pytest.raises(DataError, match="no train/test split lists"):
        index_folder(tmp_path / "nolists")


def test_listed_but_absent_id_gets_an_expected_path(tmp_path):
    root = make_layout(tmp_path / "ds", "dnanet")
    write_list(root / "50_50" / "test.txt", ["b2", "c1", "ghost"])
    index = index_folder(root)
    assert not index.paths("ghost").image.exists()
    with pytest.raises(DataError, match=r"ghost\.png: image file not found"):
        usable_ids(index, index.split().test)


def test_read_id_list_tolerates_crlf_blank_lines_bom_and_extensions(tmp_path):
    path = tmp_path / "l.txt"
    path.write_bytes(b"\xef\xbb\xbfa1\r\n\r\n  a2.png \r\n# comment\r\na1\r\nsub/b1")
    ids, dups = read_id_list(path)
    assert ids == ("a1", "a2", "b1") and dups == ("a1",)


# ------------------------------------------------------------------------------------ resolving --dataset
def test_open_dataset_by_name_under_data_root(data_root):
    make_layout(data_root / "SIRST", "sirst")  # a folder alias of NUAA-SIRST
    index = open_dataset("nuaa-sirst")
    assert index.name == "NUAA-SIRST" and index.root == data_root / "SIRST"
    assert open_dataset("NUAA-SIRST", data_root=data_root).root == data_root / "SIRST"


def test_open_dataset_errors_name_what_to_do(data_root, tmp_path):
    with pytest.raises(DataError, match="IRSTD-1k not found under data root .*ISNet"):
        open_dataset("IRSTD-1k")
    with pytest.raises(DataError, match="not a known name"):
        open_dataset(str(tmp_path / "nowhere"))

"""Validation carve, augmentation, padding, torch datasets and the normalisation cache."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from data_fixtures import make_layout, write_list

from hnanas.data import (DataConfig, EvalDataset, SampleStore, TrainDataset, build_data, collate_eval,
                         compute_norm_stats, crop_to_size, index_folder, norm_stats, pad_to_multiple, random_crop,
                         random_flip_transpose, split_train_val)
from hnanas.data.normalization import cache_candidates


# ------------------------------------------------------------------------------------------ validation carve
def test_split_train_val_is_deterministic_disjoint_and_20_percent():
    ids = [f"id{i}" for i in range(50)]
    train, val = split_train_val(ids)
    assert len(val) == 10 and len(train) == 40
    assert set(train).isdisjoint(val) and set(train) | set(val) == set(ids)
    assert split_train_val(ids) == (train, val)
    assert split_train_val(list(reversed(ids)))[1] == list(reversed(val))  # same ids whatever the order
    assert split_train_val(ids, seed=1)[1] != val
    assert train == [i for i in ids if i in set(train)]  # list order kept
    assert split_train_val(["a"], 0.5) == (["a"], [])  # never empties the train part
    assert len(split_train_val(ids[:3], 0.2)[1]) == 1


# -------------------------------------------------------------------------------------------- augmentation
def test_crop_flip_transpose_keep_image_and_mask_aligned():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 1000, (37, 53)).astype(np.float32)
    mask = image % 7 == 0  # a mask that is a function of the pixel value: alignment is checkable
    for _ in range(50):
        img_c, mask_c = random_crop(image, mask, 16, rng, target_prob=0.5)
        img_a, mask_a = random_flip_transpose(img_c, mask_c, rng)
        assert img_a.shape == (16, 16) and np.array_equal(mask_a, img_a % 7 == 0)


def test_target_crop_contains_a_target_and_small_images_are_padded():
    rng = np.random.default_rng(1)
    mask = np.zeros((100, 120), bool)
    mask[90:92, 5:7] = True  # one tiny target in a corner
    image = np.ones((100, 120), np.float32)
    for _ in range(30):
        _, crop = random_crop(image, mask, 24, rng, target_prob=1.0)
        assert crop.any()
    small_img, small_mask = random_crop(np.ones((10, 20), np.float32), np.ones((10, 20), bool), 32, rng,
                                        target_prob=0.0, pad_value=-5.0)
    assert small_img.shape == (32, 32) and (small_img == -5.0).sum() == 32 * 32 - 200
    assert small_mask.sum() == 200


def test_all_eight_symmetries_are_reachable():
    rng = np.random.default_rng(0)
    x = np.arange(9).reshape(3, 3)
    seen = {random_flip_transpose(x, x, rng)[0].tobytes() for _ in range(200)}
    assert len(seen) == 8


@pytest.mark.parametrize("shape", [(1, 37, 70), (64, 32), (3, 1, 5)])
def test_pad_and_crop_back_round_trip_exact(shape):
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    padded = pad_to_multiple(x, 32)
    assert padded.shape[-2] % 32 == 0 and padded.shape[-1] % 32 == 0
    assert np.array_equal(crop_to_size(padded, shape[-2:]), x)
    t = torch.from_numpy(x)
    assert torch.equal(crop_to_size(pad_to_multiple(t, 32), shape[-2:]), t)


# ------------------------------------------------------------------------------------------ torch datasets
@pytest.fixture
def tiny_index(tmp_path):
    return index_folder(make_layout(tmp_path / "ds", "uniform"))


def test_train_dataset_is_deterministic_per_seed_and_epoch(tiny_index):
    stats = compute_norm_stats(tiny_index, tiny_index.split().train)
    store = SampleStore(tiny_index)
    ds = TrainDataset(store, tiny_index.split().train, stats, crop_size=8, target_prob=1.0, seed=3)
    image, mask, sample_id = ds[1]
    assert image.shape == (1, 8, 8) and image.dtype == torch.float32 and sample_id == "a2"
    assert set(mask.unique().tolist()) <= {0.0, 1.0} and mask.sum() > 0
    again = TrainDataset(SampleStore(tiny_index, cache=False), tiny_index.split().train, stats, crop_size=8,
                         target_prob=1.0, seed=3)
    assert all(torch.equal(ds[i][0], again[i][0]) for i in range(len(ds)))
    ds.set_epoch(1)
    assert any(not torch.equal(ds[i][0], again[i][0]) for i in range(len(ds)))
    assert len(store) == 3  # decoded images were cached


def test_eval_dataset_pads_and_collate_stacks_different_sizes(tiny_index):
    stats = compute_norm_stats(tiny_index, tiny_index.split().train)
    ds = EvalDataset(SampleStore(tiny_index), tiny_index.split().test, stats)
    image, mask, size, sample_id = ds[0]
    assert image.shape == (1, 32, 32) and size == (12, 16) and sample_id == "b2"
    assert mask[:, 12:, :].sum() == 0 and mask.sum() == 4
    raw = (ds.store.get("b2").image.astype(np.float32) - stats.mean) / stats.std
    np.testing.assert_allclose(crop_to_size(image[0], size).numpy(), raw, rtol=1e-6)
    big = (torch.zeros(1, 64, 32), torch.zeros(1, 64, 32), (40, 30), "big")
    images, masks, sizes, ids = collate_eval([ds[0], big])
    assert images.shape == (2, 1, 64, 32) and masks.shape == (2, 1, 64, 32)
    assert sizes.tolist() == [[12, 16], [40, 30]] and ids == ["b2", "big"]


def test_build_data_carves_val_from_train_only(tiny_index):
    data = build_data(DataConfig(crop_size=8, val_fraction=0.34), index=tiny_index)
    assert len(data.train) == 2 and len(data.val) == 1 and len(data.test) == 2
    assert set(data.val.ids) <= set(tiny_index.split().train)
    assert set(data.test.ids).isdisjoint(data.train.ids + data.val.ids)


# ------------------------------------------------------------------------------------- normalisation cache
def test_norm_stats_cached_beside_data_and_invalidated_when_list_changes(tiny_index, data_root):
    first = norm_stats(tiny_index)
    beside = cache_candidates(tiny_index, "default")[0]
    assert beside.is_file() and beside.parent.parent == tiny_index.root.resolve()
    assert norm_stats(tiny_index) == first
    write_list(tiny_index.root / "train.txt", ["a1"])  # the split's id list changes
    changed = norm_stats(index_folder(tiny_index.root))
    assert changed.n_images == 1 and changed.mean != pytest.approx(first.mean)


def test_norm_stats_go_to_cache_home_when_data_folder_is_read_only(tiny_index, data_root, tmp_path):
    root = tiny_index.root
    os.chmod(root, 0o555)  # r-x, like ../shared (honoured even when the tests run as root)
    try:
        stats = norm_stats(tiny_index)
        beside, home = cache_candidates(tiny_index, "default")
        assert not beside.parent.exists()
        assert home.is_file() and str(home).startswith(str(tmp_path / "cache"))
        assert norm_stats(tiny_index) == stats
    finally:
        os.chmod(root, 0o755)

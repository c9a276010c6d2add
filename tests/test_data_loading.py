"""Pixel loading: every PNG mode to one float channel, the mask convention, clear errors for bad files."""

from __future__ import annotations

import numpy as np
import pytest
from data_fixtures import make_layout, write_png
from PIL import Image

from hnanas.cli import main
from hnanas.data import index_folder, load_image, load_mask, mask_to_bool
from hnanas.data.loading import mask_values
from hnanas.errors import DataError

GREY = (np.arange(48).reshape(6, 8) * 5).astype(np.uint8)


def _save(path, im: Image.Image):
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)
    return path


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "P", "LA", "I;16"])
def test_every_png_mode_becomes_the_same_grey_channel(tmp_path, mode):
    base = Image.fromarray(GREY)
    if mode == "I;16":
        im = Image.fromarray(GREY.astype(np.uint16) * 257)  # 16-bit: v * 257 maps 0..255 onto 0..65535
    elif mode == "P":
        im = base.convert("RGB").quantize(colors=256, method=Image.Quantize.MAXCOVERAGE)
    else:
        im = base.convert(mode)
    path = _save(tmp_path / f"img_{mode.replace(';', '')}.png", im)
    out = load_image(path)
    assert out.dtype == np.float32 and out.shape == GREY.shape
    np.testing.assert_allclose(out, GREY.astype(np.float32), atol=1e-3)


def test_colour_image_uses_luma(tmp_path):
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[..., 0] = 200
    out = load_image(write_png(tmp_path / "red.png", rgb))
    np.testing.assert_allclose(out, 0.299 * 200, rtol=1e-5)


@pytest.mark.parametrize("values, expected", [
    (np.array([[0, 255], [255, 0]], np.uint8), [[False, True], [True, False]]),
    (np.array([[0, 1], [1, 0]], np.uint8), [[False, True], [True, False]]),
    (np.array([[0, 127], [128, 254]], np.uint8), [[False, False], [True, True]]),
    (np.array([[0, 65535], [40000, 100]], np.uint16), [[False, True], [True, False]]),
])
def test_mask_convention(values, expected):
    assert mask_to_bool(values).tolist() == expected


def test_colour_masks_count_any_channel(tmp_path):
    rgb = np.zeros((3, 3, 3), np.uint8)
    rgb[1, 1] = (255, 0, 0)  # a red annotation: luma 76 would be lost by a grey conversion
    path = write_png(tmp_path / "m.png", rgb)
    assert mask_values(path)[1, 1] == 255
    assert load_mask(path, (3, 3)).sum() == 1


def test_sixteen_bit_mask(tmp_path):
    path = _save(tmp_path / "m16.png", Image.fromarray(np.array([[0, 65535]], np.uint16)))
    assert load_mask(path, (1, 2)).tolist() == [[False, True]]


def test_corrupt_png_is_a_one_line_error_naming_the_file(tmp_path):
    root = make_layout(tmp_path / "ds", "uniform")
    bad = root / "images" / "a2.png"
    bad.write_bytes(bad.read_bytes()[:40])  # truncated
    with pytest.raises(DataError) as exc:
        load_image(bad)
    assert str(bad) in str(exc.value) and "\n" not in str(exc.value)
    text = root / "images" / "b1.png"
    text.write_text("not an image")
    with pytest.raises(DataError, match=r"b1\.png: cannot read image"):
        load_image(text)


def test_missing_mask_is_a_clear_error_and_cli_exit_2(tmp_path, capsys):
    root = make_layout(tmp_path / "ds", "uniform")
    (root / "masks" / "b2.png").unlink()
    index = index_folder(root)
    with pytest.raises(DataError, match=r"b2\.png: mask file not found"):
        load_mask(index.paths("b2").mask, (12, 16))
    assert main(["data", "check", str(root)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hnanas: error:") and "b2.png" in err and err.count("\n") == 1


def test_corrupt_png_cli_exit_2(tmp_path, capsys):
    root = make_layout(tmp_path / "ds", "dnanet")
    bad = root / "images" / "c1.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    assert main(["data", "check", str(root)]) == 2
    captured = capsys.readouterr()
    assert "c1.png" in captured.err and "c1.png: cannot read image" in captured.out

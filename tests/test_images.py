"""load_image / letterbox / unletterbox_boxes: placement and the box round trip worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from vocli.errors import ImageReadError, VocliError
from vocli.images import LetterboxInfo, letterbox, load_image, to_tensor_batch, unletterbox_boxes


def test_load_image_rgb_grey_and_alpha(tmp_path):
    rgb = np.zeros((5, 7, 3), np.uint8)
    rgb[1, 2] = (10, 20, 30)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    Image.fromarray(np.full((4, 6), 77, np.uint8), mode="L").save(tmp_path / "grey.png")
    Image.fromarray(np.full((3, 3, 4), 200, np.uint8), mode="RGBA").save(tmp_path / "alpha.png")

    a = load_image(tmp_path / "a.png")
    assert a.shape == (5, 7, 3) and a.dtype == np.uint8
    assert tuple(a[1, 2]) == (10, 20, 30)
    grey = load_image(tmp_path / "grey.png")
    assert grey.shape == (4, 6, 3) and (grey == 77).all()
    assert load_image(tmp_path / "alpha.png").shape == (3, 3, 3)


def test_load_image_errors_name_the_file(tmp_path):
    (tmp_path / "notes.jpg").write_text("not an image")
    with pytest.raises(ImageReadError, match="notes.jpg"):
        load_image(tmp_path / "notes.jpg")
    with pytest.raises(VocliError, match="missing.png: file not found"):
        load_image(tmp_path / "missing.png")
    # A JPEG cut in half is reported, not silently returned grey.
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "ok.jpg")
    data = (tmp_path / "ok.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 3])
    with pytest.raises(ImageReadError, match="cut.jpg"):
        load_image(tmp_path / "cut.jpg")


def test_letterbox_wide_image_is_padded_top_and_bottom():
    # 200 x 100 into 64: scale = min(64/200, 64/100) = 0.32 -> 64 x 32, pad (64 - 32) / 2 = 16 rows above.
    image = np.zeros((100, 200, 3), np.uint8)
    image[:, :] = (255, 0, 0)
    out, info = letterbox(image, 64)
    assert out.shape == (64, 64, 3)
    assert info == LetterboxInfo(scale=0.32, pad_x=0.0, pad_y=16.0, orig_w=200, orig_h=100)
    assert (out[:16] == 114).all() and (out[48:] == 114).all()
    assert (out[16:48, :, 0] == 255).all()


def test_letterbox_tall_odd_padding_and_no_resize():
    image = np.zeros((64, 31, 3), np.uint8)
    out, info = letterbox(image, 64, color=0)
    # already fits: scale 1, 33 columns of padding split 16 left / 17 right
    assert info.scale == 1.0 and info.pad_x == 16.0 and info.pad_y == 0.0
    assert out.shape == (64, 64, 3)


def test_unletterbox_round_trip_and_clipping():
    image = np.zeros((100, 200, 3), np.uint8)
    _, info = letterbox(image, 64)
    # Letterboxed (0,16)-(64,48) is the whole original; (32,32) is its centre (100, 50).
    boxes = np.array([[0, 16, 64, 48], [32, 32, 32, 32], [-5, 0, 70, 60]], dtype=np.float64)
    back = unletterbox_boxes(boxes, info)
    np.testing.assert_allclose(back[0], [0, 0, 200, 100])
    np.testing.assert_allclose(back[1], [100, 50, 100, 50])
    np.testing.assert_allclose(back[2], [0, 0, 200, 100])  # clipped to the image
    t = unletterbox_boxes(torch.tensor(boxes, dtype=torch.float32), info)
    assert isinstance(t, torch.Tensor)
    np.testing.assert_allclose(t.numpy(), back, atol=1e-4)


def test_to_tensor_batch_layout():
    a = np.zeros((4, 4, 3), np.uint8)
    a[0, 1] = (255, 0, 51)
    batch = to_tensor_batch([a, a])
    assert batch.shape == (2, 3, 4, 4) and batch.dtype == torch.float32
    assert batch[1, 0, 0, 1] == 1.0 and batch[1, 2, 0, 1] == pytest.approx(0.2)

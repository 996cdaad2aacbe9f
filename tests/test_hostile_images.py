"""Hostile images: decompression bombs and unreadable files are named and skipped (detect), or stop the
command with one line naming them (evaluate, train), whatever the number of workers; inputs untouched."""

from __future__ import annotations

import io
import json
import struct
import warnings

import numpy as np
import pytest
from PIL import Image

import vocli.images as images_module
from helpers import write_voc_xml
from hostile_common import error_line, training_set, tree_state
from test_detect import tiny_weights  # noqa: F401 - a fixture
from vocli.cli.app import main
from vocli.datasets.voc import image_size_from_file
from vocli.errors import ImageReadError
from vocli.images import MAX_IMAGE_PIXELS, load_image, read_image_size


def bomb_jpeg(width: int, height: int) -> bytes:
    """A valid 8 x 8 JPEG whose frame header (SOF0) claims ``width`` x ``height``: a few hundred bytes."""
    buf = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(buf, "JPEG")
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc0")  # marker, length (2), precision (1), height (2), width (2)
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def test_bomb_is_refused_from_its_header(tmp_path):
    path = tmp_path / "bomb.jpg"
    path.write_bytes(bomb_jpeg(20000, 20000))
    assert path.stat().st_size < 1000
    # 20000 * 20000 = 400,000,000 pixels (1.2 GB of RGB), Pillow's own limit raises at 2 * 89,478,485
    with pytest.raises(ImageReadError, match=r"bomb\.jpg: image has 400,000,000 pixels, over the limit of 89,478,485"):
        load_image(path)
    with pytest.raises(ImageReadError, match="bomb.jpg"):
        read_image_size(path)
    with pytest.raises(ImageReadError, match="bomb.jpg"):
        image_size_from_file(path)


def test_between_pillows_warning_and_error_is_refused_without_a_warning(tmp_path):
    # 10000 * 10000 = 100,000,000: over 89,478,485 (Pillow warns) and under 178,956,970 (Pillow raises)
    path = tmp_path / "big.jpg"
    path.write_bytes(bomb_jpeg(10000, 10000))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning escaping load_image fails the test
        with pytest.raises(ImageReadError, match="big.jpg: image has 100,000,000 pixels"):
            load_image(path)


def test_cap_holds_when_pillows_limit_is_switched_off(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    path = tmp_path / "bomb.jpg"
    path.write_bytes(bomb_jpeg(20000, 20000))
    with pytest.raises(ImageReadError, match="bomb.jpg: image 20000x20000 has 400,000,000 pixels"):
        load_image(path)


def test_cap_boundary(tmp_path, monkeypatch):
    monkeypatch.setattr(images_module, "MAX_IMAGE_PIXELS", 64)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "at.png")       # 64 pixels: allowed
    Image.fromarray(np.zeros((9, 8, 3), np.uint8)).save(tmp_path / "over.png")     # 72 pixels: refused
    assert load_image(tmp_path / "at.png").shape == (8, 8, 3)
    with pytest.raises(ImageReadError, match="over.png: image 8x9 has 72 pixels, over the limit of 64"):
        load_image(tmp_path / "over.png")
    assert MAX_IMAGE_PIXELS == 89_478_485  # the module's own value is untouched outside the patch


@pytest.mark.slow
def test_detect_skips_the_bomb_and_runs_the_good_images(tmp_path, tiny_weights, capsys):  # noqa: F811
    weights, names = tiny_weights
    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(src / "a.jpg")
    (src / "bomb.jpg").write_bytes(bomb_jpeg(20000, 20000))
    Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(src / "c.png")
    before = tree_state(tmp_path)
    out = tmp_path / "out"
    rc = main(["detect", str(src), "--weights", str(weights), "--names", str(names), "--img-size", "64",
               "--out", str(out), "--save-txt", "--json", "--batch-size", "2"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    result = json.loads(captured.out)
    assert result["images"] == 2
    assert [(path, reason) for path, reason in result["skipped"]] == [
        (str(src / "bomb.jpg"), "image has 400,000,000 pixels, over the limit of 89,478,485 (a decompression bomb?)")]
    assert sorted(p.name for p in (out / "labels").iterdir()) == ["a.txt", "c.txt"]
    assert {k: v for k, v in tree_state(tmp_path).items() if not k.startswith("out")} == before  # only --out


@pytest.mark.slow
def test_evaluate_stops_with_one_line_naming_the_bomb(tmp_path, tiny_weights, capsys):  # noqa: F811
    weights, names = tiny_weights
    voc = tmp_path / "VOCdevkit" / "VOC2007"
    (voc / "JPEGImages").mkdir(parents=True)
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(voc / "JPEGImages" / "000001.jpg")
    (voc / "JPEGImages" / "000002.jpg").write_bytes(bomb_jpeg(20000, 20000))
    for image_id in ("000001", "000002"):
        write_voc_xml(voc / "Annotations" / f"{image_id}.xml", f"{image_id}.jpg", 64, 64, [("alpha", 1, 1, 6, 6, 0)])
    (voc / "ImageSets" / "Main").mkdir(parents=True)
    (voc / "ImageSets" / "Main" / "test.txt").write_text("000001\n000002\n")
    before = tree_state(tmp_path)
    rc = main(["evaluate", "--weights", str(weights), "--img-size", "64", "--root", str(tmp_path),
               "--sets", "2007/test", "--classes", str(names), "--workers", "1"])
    line = error_line(capsys.readouterr().err)
    assert rc == 1
    assert str(voc / "JPEGImages" / "000002.jpg") in line and "400,000,000 pixels" in line
    assert tree_state(tmp_path) == before


@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("bad", ["broken", "bomb"])
def test_train_stops_with_one_line_naming_the_image(tmp_path, capsys, workers, bad):
    # A JPEG cut short after its first bytes, or the 20000 x 20000 bomb; with DataLoader workers the
    # error used to come back as a 22-line RuntimeError.
    payload = b"\xff\xd8\xff\xe0 cut short" if bad == "broken" else bomb_jpeg(20000, 20000)
    data = training_set(tmp_path / "set", "bad.jpg", payload)
    before = tree_state(tmp_path / "set")
    rc = main(["train", "--data", str(data), "--cfg", str(tmp_path / "set" / "tiny.cfg"), "--img-size", "64",
               "--epochs", "1", "--batch-size", "2", "--workers", str(workers), "--eval-every", "0",
               "--out", str(tmp_path / "run")])
    line = error_line(capsys.readouterr().err)
    assert rc == 1
    assert line.startswith(f"error: {tmp_path / 'set' / 'img' / 'bad.jpg'}: training image: ")
    assert ("400,000,000 pixels" in line) == (bad == "bomb")
    assert tree_state(tmp_path / "set") == before

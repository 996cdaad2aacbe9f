"""`vocli convert voc`: YOLO labels + images back to VOC XML; round trips in both conventions."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from converters.voc_to_yolo import convert_yolo
from converters.yolo_to_voc import convert_voc, voc_corners
from helpers import write_voc_xml
from vocli.cli.app import main
from vocli.datasets.voc import VOC_CLASSES, parse_annotation
from vocli.errors import VocliError


def test_inverse_hand_worked():
    # 100x80 image, dog at 10..50 x 20..60 (the hand-worked forward case of test_convert_yolo).
    darknet = voc_corners(np.array([[0.29, 0.4875, 0.4, 0.5]]), np.array([100]), np.array([80]))
    exact = voc_corners(np.array([[0.295, 0.49375, 0.41, 0.5125]]), np.array([100]), np.array([80]), True)
    assert darknet.tolist() == [[10, 20, 50, 60]]
    assert exact.tolist() == [[10, 20, 50, 60]]
    # A whole-image exact box; a one-pixel darknet box (zero width) at (5, 7).
    assert voc_corners(np.array([[0.5, 0.5, 1, 1]]), [64], [48], True).tolist() == [[1, 1, 64, 48]]
    assert voc_corners(np.array([[0.4, 0.6, 0, 0]]), [10], [10]).tolist() == [[5, 7, 5, 7]]
    # Half a pixel rounds up; corners are clipped into the image.
    assert voc_corners(np.array([[0.0, 0.0, 0.1, 0.1]]), [10], [10], True).tolist() == [[1, 1, 1, 1]]
    # Corners 8.5 -> 9 and 12.5 -> 10.
    assert voc_corners(np.array([[1.0, 1.0, 0.5, 0.5]]), [10], [10], True).tolist() == [[9, 9, 10, 10]]


def make_images_tree(root: Path, rng, count: int = 12):
    """VOC tree with random boxes and real (tiny) PNG images of the annotated sizes."""
    voc = root / "VOCdevkit" / "VOC2007"
    (voc / "JPEGImages").mkdir(parents=True)
    boxes = {}
    for k in range(count):
        w, h = int(rng.integers(20, 90)), int(rng.integers(20, 90))
        objects = []
        for _ in range(int(rng.integers(1, 5))):
            x1, x2 = sorted(rng.integers(1, w + 1, size=2).tolist())
            y1, y2 = sorted(rng.integers(1, h + 1, size=2).tolist())
            objects.append((VOC_CLASSES[int(rng.integers(0, 20))], x1, y1, x2, y2, 0))
        objects.append(("dog", 1, 1, w, h, 0))  # touches every border
        image_id = f"{k:06d}"
        write_voc_xml(voc / "Annotations" / f"{image_id}.xml", f"{image_id}.png", w, h, objects)
        Image.new("RGB", (w, h), (k, 0, 0)).save(voc / "JPEGImages" / f"{image_id}.png")
        boxes[image_id] = objects
    main_dir = voc / "ImageSets" / "Main"
    main_dir.mkdir(parents=True)
    (main_dir / "train.txt").write_text("".join(f"{i}\n" for i in boxes))
    return voc, boxes


@pytest.mark.parametrize("exact", [False, True])
def test_round_trip_voc_yolo_voc(tmp_path, exact):
    voc, boxes = make_images_tree(tmp_path / "src", np.random.default_rng(7))
    yolo = convert_yolo(tmp_path / "src", exact_pixels=exact, workers=1)
    assert yolo.ok
    out = tmp_path / "back" / "VOCback"
    result = convert_voc(voc / "JPEGImages", out=out, exact_pixels=exact, workers=2)
    assert result.ok and result.images == len(boxes)
    assert (out / "ImageSets" / "Main" / "train.txt").read_text().split() == list(boxes)
    for image_id, objects in boxes.items():
        ann = parse_annotation(out / "Annotations" / f"{image_id}.xml", classes=VOC_CLASSES)
        assert [(o.name, o.xmin, o.ymin, o.xmax, o.ymax) for o in ann.objects] == [o[:5] for o in objects]
        assert (out / "JPEGImages" / f"{image_id}.png").resolve() == (voc / "JPEGImages" / f"{image_id}.png").resolve()


def test_existing_annotations_are_kept_unless_overwrite(tmp_path):
    voc, boxes = make_images_tree(tmp_path, np.random.default_rng(1), count=3)
    convert_yolo(tmp_path, workers=1)
    before = {p.name: p.read_bytes() for p in (voc / "Annotations").iterdir()}
    kept = convert_voc(voc / "JPEGImages", workers=1)  # writes beside the images by default
    assert kept.images == 0 and len(kept.invalid) == 3 and "--overwrite" in kept.invalid[0].reason
    assert {p.name: p.read_bytes() for p in (voc / "Annotations").iterdir()} == before
    assert (voc / "ImageSets" / "Main" / "train.txt").read_text().split() == list(boxes)
    split_list = voc / "ImageSets" / "Main" / "train.txt"
    split_list.write_text("other\n")
    with pytest.raises(VocliError, match="exists with other ids"):
        convert_voc(voc / "JPEGImages", workers=1)
    assert split_list.read_text() == "other\n"
    replaced = convert_voc(voc / "JPEGImages", overwrite=True, workers=1)
    assert replaced.ok and replaced.annotations_written == 3
    for image_id, objects in boxes.items():
        ann = parse_annotation(voc / "Annotations" / f"{image_id}.xml")
        assert [(o.name, *o.bbox) for o in ann.objects] == [o[:5] for o in objects]


def test_round_trip_real_sample(voc_sample, tmp_path):
    root = tmp_path / "sample"
    shutil.copytree(voc_sample, root)
    convert_yolo(root, sets="2007/train,2007/val,2007/test", workers=1)
    images = root / "VOCdevkit" / "VOC2007" / "JPEGImages"
    result = convert_voc(images, out=tmp_path / "VOCback", workers=1)
    assert result.ok and result.images == len(list(images.glob("*.jpg"))) > 0
    for xml in (tmp_path / "VOCback" / "Annotations").glob("*.xml"):
        back = parse_annotation(xml)
        original = parse_annotation(root / "VOCdevkit" / "VOC2007" / "Annotations" / xml.name)
        assert (back.width, back.height) == (original.width, original.height)
        kept = [o for o in original.objects if not o.difficult]
        assert len(back.objects) == len(kept)
        for b, o in zip(back.objects, kept):
            assert b.name == o.name
            assert np.abs(np.subtract(b.bbox, o.bbox)).max() <= 0.5


def test_bad_labels_are_listed(tmp_path):
    images = tmp_path / "data" / "images"
    labels = tmp_path / "data" / "labels"
    images.mkdir(parents=True)
    labels.mkdir()
    for name in ("ok", "fields", "range", "class", "nolabel"):
        Image.new("RGB", (40, 20)).save(images / f"{name}.jpg")
    (images / "corrupt.jpg").write_bytes(b"not a jpeg")
    (labels / "ok.txt").write_text("0 0.5 0.5 0.5 0.5\n\n1 0.25 0.25 0.5 0.5\n")
    (labels / "fields.txt").write_text("0 0.5 0.5 0.5\n")
    (labels / "range.txt").write_text("0 0.5 1.5 0.5 0.5\n")
    (labels / "class.txt").write_text("2 0.5 0.5 0.5 0.5\n")
    names = tmp_path / "two.names"
    names.write_text("a&b\ncat\n")
    out = tmp_path / "VOCmine"
    result = convert_voc(images, out=out, classes=names, split="trainval", workers=1)
    reasons = {Path(i.path).stem: i.reason for i in result.invalid}
    assert set(reasons) == {"fields", "range", "class", "corrupt"}
    assert "5 fields" in reasons["fields"] and "[0, 1]" in reasons["range"]
    assert "outside 0..1" in reasons["class"] and "unreadable" in reasons["corrupt"]
    assert result.images == 2 and result.objects == 2
    ok = parse_annotation(out / "Annotations" / "ok.xml", classes=("a&b", "cat"))
    # 40x20 image, darknet inverse xmin = cx W + 1 - w W / 2: (20 + 1 - 10, 10 + 1 - 5, 20 + 1 + 10, 10 + 1 + 5)
    # and (10 + 1 - 10, 5 + 1 - 5, 10 + 1 + 10, 5 + 1 + 5).
    assert [(o.name, o.bbox) for o in ok.objects] == [("a&b", (11, 6, 31, 16)), ("cat", (1, 1, 21, 11))]
    assert parse_annotation(out / "Annotations" / "nolabel.xml").objects == []
    assert (out / "ImageSets" / "Main" / "trainval.txt").read_text().split() == ["nolabel", "ok"]


def test_cli_voc(tmp_path, capsys):
    images = tmp_path / "VOCx" / "JPEGImages"
    images.mkdir(parents=True)
    Image.new("RGB", (10, 10)).save(images / "p.jpg")
    (tmp_path / "VOCx" / "labels").mkdir()
    (tmp_path / "VOCx" / "labels" / "p.txt").write_text("11 0.5 0.5 1 1\n")
    assert main(["convert", "voc", str(images), "--exact-pixels", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["images"] == 1 and doc["objects"] == 1 and doc["invalid"] == []
    ann = parse_annotation(tmp_path / "VOCx" / "Annotations" / "p.xml", classes=VOC_CLASSES)
    assert [(o.name, o.bbox) for o in ann.objects] == [("dog", (1, 1, 10, 10))]
    (tmp_path / "VOCx" / "labels" / "p.txt").write_text("99 0.5 0.5 1 1\n")
    assert main(["convert", "voc", str(images)]) == 1
    assert "outside 0..19" in capsys.readouterr().err
    assert main(["convert", "voc", str(tmp_path / "nothing")]) == 1


def test_a_folder_without_images_is_an_error_and_writes_nothing(tmp_path, capsys):
    from vocli.cli.app import main

    images = tmp_path / "VOCmine" / "JPEGImages"
    images.mkdir(parents=True)
    (images / "notes.txt").write_text("not an image")
    assert main(["convert", "voc", str(images)]) == 1
    assert "no image files in this folder" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "VOCmine").iterdir()) == ["JPEGImages"]  # no empty VOC tree
    empty_list = tmp_path / "list.txt"
    empty_list.write_text("\n")
    assert main(["convert", "voc", str(empty_list), "--out", str(tmp_path / "VOCother")]) == 1
    assert "the image list is empty" in capsys.readouterr().err and not (tmp_path / "VOCother").exists()

"""VOC <-> COCO: the pixel rule by hand, stable ids, difficult as iscrowd, exact round trips."""

from __future__ import annotations

import json

import numpy as np
import pytest

from converters.coco_to_voc import convert_voc_from_coco, voc_corners_from_coco
from converters.voc_to_coco import convert_coco
from vocli.boxes import coco_to_voc, voc_to_coco
from vocli.cli.app import main
from vocli.coco import coco_image_ids
from vocli.datasets.voc import VOC_CLASSES, parse_annotation, resolve_sets


def test_pixel_rule_by_hand_and_inverse():
    # VOC pixels 1..10 inclusive are continuous [0, 10]: x 0, w 10
    np.testing.assert_array_equal(voc_to_coco(np.array([[1, 1, 10, 10], [10, 20, 50, 60]], float)),
                                  [[0, 0, 10, 10], [9, 19, 41, 41]])
    np.testing.assert_array_equal(coco_to_voc(np.array([[9.0, 19, 41, 41]])), [[10, 20, 50, 60]])
    rng = np.random.default_rng(0)
    lo = rng.integers(1, 500, (1000, 2))
    corners = np.c_[lo, lo + rng.integers(0, 500, (1000, 2))].astype(float)
    np.testing.assert_array_equal(coco_to_voc(voc_to_coco(corners)), corners)
    # rounding half up and clipping into the image on the way back
    np.testing.assert_array_equal(voc_corners_from_coco(np.array([[10.4, 0.2, 5.5, 3.0], [-5, 90, 20, 30]]), 20, 100),
                                  [[11, 1, 16, 3], [1, 91, 15, 100]])


def test_image_ids():
    assert coco_image_ids(["000005", "2008_000008"]) == [5, 2008000008]
    assert coco_image_ids(["b", "a", "c"]) == [1, 2, 3]          # not numbers: positions
    assert coco_image_ids(["1_0", "10", "7"]) == [1, 2, 3]       # 1_0 and 10 collide: positions
    assert coco_image_ids(["_"]) == [1]


def test_convert_coco_by_hand(tiny_voc, tmp_path):
    result = convert_coco(tiny_voc, sets="2007/trainval", out=tmp_path / "out")
    doc = json.loads((tmp_path / "out" / "instances_2007_trainval.json").read_text())
    assert [f.path.name for f in result.files] == ["instances_2007_trainval.json"]
    assert doc["images"] == [{"id": 1, "file_name": "000001.jpg", "width": 100, "height": 80},
                             {"id": 2, "file_name": "000002.jpg", "width": 64, "height": 64}]
    assert [c["id"] for c in doc["categories"]] == list(range(1, 21))
    assert [c["name"] for c in doc["categories"]] == list(VOC_CLASSES)
    dog, person, cat = doc["annotations"]
    # dog (10, 20, 50, 60): x 9, y 19, w 41, h 41
    assert dog == {"id": 1, "image_id": 1, "category_id": 12, "bbox": [9, 19, 41, 41], "area": 1681,
                   "iscrowd": 0, "ignore": 0, "segmentation": []}
    assert person["bbox"] == [0, 0, 100, 80] and person["iscrowd"] == 1 and person["ignore"] == 0
    assert person["category_id"] == 15
    assert cat["image_id"] == 2 and cat["bbox"] == [4, 4, 16, 26] and cat["area"] == 416 and cat["id"] == 3


def _corners(voc_set):
    out = {}
    for image_id in voc_set.ids():
        ann = parse_annotation(voc_set.annotation_path(image_id))
        out[image_id] = (ann.width, ann.height,
                         [(o.name, o.xmin, o.ymin, o.xmax, o.ymax, o.difficult) for o in ann.objects])
    return out


def _round_trip(root, set_name, tmp_path):
    year, split = set_name.split("/")
    convert_coco(root, sets=set_name, out=tmp_path / "coco")
    instances = tmp_path / "coco" / f"instances_{year}_{split}.json"
    images = resolve_sets(root, set_name)[0].dir / "JPEGImages"
    back = tmp_path / "back" / "VOCdevkit" / f"VOC{year}"
    result = convert_voc_from_coco(instances, images if images.is_dir() else tmp_path, out=back, split=split)
    before = _corners(resolve_sets(root, set_name)[0])
    after = _corners(resolve_sets(tmp_path / "back", set_name)[0])
    assert list(after) == list(before) and after == before
    return result


def test_round_trip_tiny(tiny_voc, tmp_path):
    result = _round_trip(tiny_voc, "2007/trainval", tmp_path)
    assert result.objects == 3 and result.difficult == 1 and len(result.missing_images) == 2


def test_round_trip_real_sample(voc_sample, tmp_path):
    # every integer corner, class and difficult flag of the real annotations comes back
    for set_name in ("2007/trainval", "2007/test", "2012/val"):
        result = _round_trip(voc_sample, set_name, tmp_path / set_name.replace("/", "_"))
        assert result.objects > 100 and result.difficult > 0


def test_cli_convert_coco_and_back(tiny_voc, tmp_path, capsys):
    assert main(["convert", "coco", "--root", str(tiny_voc), "--sets", "2007/test", "--out", str(tmp_path / "c"),
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["files"][0]["images"] == 1 and out["files"][0]["objects"] == 1
    instances = tmp_path / "c" / "instances_2007_test.json"
    images = tmp_path / "imgs"
    images.mkdir()
    (images / "000002.jpg").write_bytes(b"not decoded")
    target = tmp_path / "VOCdevkit" / "VOCback"
    assert main(["convert", "voc", "--from-coco", str(instances), "--images", str(images), "--out", str(target),
                 "--split", "test"]) == 0
    assert (target / "JPEGImages" / "000002.jpg").is_symlink()
    ann = parse_annotation(target / "Annotations" / "000002.xml")
    assert [(o.name, o.bbox) for o in ann.objects] == [("cat", (5, 5, 20, 30))]
    assert not (target / "classes.txt").exists()  # VOC's 20 classes in order
    # --from-coco needs the image folder; a broken file is one line, exit 1
    assert main(["convert", "voc", "--from-coco", str(instances)]) == 2
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    capsys.readouterr()
    assert main(["convert", "voc", "--from-coco", str(bad), "--images", str(images), "--out", str(target)]) == 1
    err = capsys.readouterr().err
    assert "bad.json" in err and "not valid JSON" in err and "Traceback" not in err


def test_from_coco_custom_categories_and_crowd(tmp_path):
    doc = {"images": [{"id": 7, "file_name": "a.png", "width": 50, "height": 40}],
           "categories": [{"id": 3, "name": "zebra"}, {"id": 1, "name": "ant"}],
           "annotations": [{"id": 1, "image_id": 7, "category_id": 3, "bbox": [0, 0, 50, 40], "iscrowd": 1},
                           {"id": 2, "image_id": 7, "category_id": 1, "bbox": [4.6, 5, 10, 10]}]}
    path = tmp_path / "inst.json"
    path.write_text(json.dumps(doc))
    result = convert_voc_from_coco(path, tmp_path, out=tmp_path / "VOCx", split="val")
    assert result.classes == ("ant", "zebra") and result.difficult == 1
    assert (tmp_path / "VOCx" / "classes.txt").read_text() == "ant\nzebra\n"
    ann = parse_annotation(tmp_path / "VOCx" / "Annotations" / "a.xml")
    assert [(o.name, o.bbox, o.difficult) for o in ann.objects] == [
        ("zebra", (1, 1, 50, 40), True), ("ant", (6, 6, 15, 15), False)]
    with pytest.raises(Exception, match="exists with other"):
        doc["annotations"].pop()
        path.write_text(json.dumps(doc))
        convert_voc_from_coco(path, tmp_path, out=tmp_path / "VOCx", split="val")


def test_convert_coco_never_writes_over_an_input(tiny_voc, tmp_path, capsys):
    split = tiny_voc / "VOCdevkit" / "VOC2007" / "ImageSets" / "Main" / "test.txt"
    before = split.read_bytes()
    out = tmp_path / "out"
    out.mkdir()
    (out / "instances_2007_test.json").symlink_to(split)  # the planned output is the split list itself
    assert main(["convert", "coco", "--root", str(tiny_voc), "--sets", "2007/test", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"writing instances_2007_test.json there would replace the input {split}" in err
    assert split.read_bytes() == before and (out / "instances_2007_test.json").is_symlink()

"""``vocli stats``: true counts on the real sample, hand-made anomalies, plots, CLI output."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from vocli.cli.app import main
from vocli.datasets.shapes import SHAPES_CLASSES, generate_shapes
from vocli.datasets.voc import VOC_CLASSES
from vocli.stats import dataset_stats

from helpers import read_voc_plain


def _independent_counts(voc_dir: Path, split: str) -> dict:
    """Count straight from the files: split list -> XML -> <object> elements (plain ElementTree)."""
    ids = [line.split()[0] for line in (voc_dir / "ImageSets" / "Main" / f"{split}.txt").read_text().splitlines()
           if line.strip()]
    per_class, difficult, truncated, objects = Counter(), 0, 0, 0
    for image_id in ids:
        for obj in read_voc_plain(voc_dir / "Annotations" / f"{image_id}.xml")["objects"]:
            objects += 1
            per_class[obj["name"].strip()] += 1
            difficult += int(obj["difficult"] or 0)
            truncated += int(obj["truncated"] or 0)
    return {"images": len(ids), "objects": objects, "difficult": difficult, "truncated": truncated,
            "per_class": dict(per_class)}


def test_real_sample_counts_are_true(voc_sample):
    result = dataset_stats(voc_sample)
    devkit = voc_sample / "VOCdevkit"
    names = sorted(s.name for s in result.splits)
    assert "2007/test" in names and "2012/trainval" in names
    assert result.classes == VOC_CLASSES and result.classes_source == "VOC"
    for s in result.splits:
        year, split = s.name.split("/")
        expected = _independent_counts(devkit / f"VOC{year}", split)
        assert (s.images, s.annotated, s.objects, s.difficult, s.truncated) == (
            expected["images"], expected["images"], expected["objects"], expected["difficult"], expected["truncated"])
        assert {c.name: c.objects for c in s.per_class if c.objects} == expected["per_class"]
        assert s.boxes_per_image.count == s.images
        assert s.box_width.count == s.objects
    # VOC2012 in the sample ships annotations only: every listed image is reported missing.
    v12 = next(s for s in result.splits if s.name == "2012/trainval")
    assert v12.missing_images == v12.images
    jpgs = {p.stem for p in (devkit / "VOC2007" / "JPEGImages").glob("*.jpg")}
    v07 = next(s for s in result.splits if s.name == "2007/test")
    test_ids = (devkit / "VOC2007" / "ImageSets" / "Main" / "test.txt").read_text().split()
    assert v07.missing_images == len([i for i in test_ids if i not in jpgs])


def test_real_sample_cli_json(voc_sample, capsys):
    rc = main(["stats", "--root", str(voc_sample), "--sets", "2007/test", "--json"])
    out = capsys.readouterr().out
    assert rc == 0
    doc = json.loads(out)
    expected = _independent_counts(voc_sample / "VOCdevkit" / "VOC2007", "test")
    [split] = doc["splits"]
    assert split["name"] == "2007/test" and split["images"] == expected["images"]
    assert split["objects"] == expected["objects"] == doc["total"]["objects"]


# --------------------------------------------------------------------------- hand-made anomalies


def _xml(width, height, objects) -> str:
    objs = "".join(
        f"<object><name>{n}</name><truncated>{t}</truncated><difficult>{d}</difficult><bndbox><xmin>{x1}</xmin>"
        f"<ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>"
        for n, x1, y1, x2, y2, d, t in objects)
    return (f"<annotation><filename>x.jpg</filename><size><width>{width}</width><height>{height}</height>"
            f"<depth>3</depth></size>{objs}</annotation>")


@pytest.fixture
def broken_tree(tmp_path) -> Path:
    voc = tmp_path / "VOCdevkit" / "VOC2007"
    ann = voc / "Annotations"
    ann.mkdir(parents=True)
    (ann / "a.xml").write_text(_xml(100, 80, [("dog", 10, 10, 50, 50, 0, 1), ("dog", 10, 10, 50, 50, 1, 0),
                                              ("person", 5, 5, 5, 20, 0, 0)]))
    (ann / "b.xml").write_text(_xml(100, 80, []))
    (ann / "c.xml").write_text(_xml(100, 80, [("cat", 10, 10, 120, 50, 0, 0)]))
    (ann / "d.xml").write_text("this is not xml <")
    (ann / "f.xml").write_text(_xml(64, 48, [("unicorn", 1, 1, 16, 48, 0, 0)]))
    (ann / "g.xml").write_text(_xml(64, 48, [("cat", 30, 10, 20, 40, 0, 0)]))
    (voc / "JPEGImages").mkdir()
    Image.new("RGB", (100, 80)).save(voc / "JPEGImages" / "a.jpg")
    main_dir = voc / "ImageSets" / "Main"
    main_dir.mkdir(parents=True)
    (main_dir / "train.txt").write_text("a\nb\nc\nd\n")
    (main_dir / "test.txt").write_text("e\nf\ng\n")  # e.xml does not exist
    return tmp_path


def test_anomalies_are_reported_not_fatal(broken_tree):
    result = dataset_stats(broken_tree)
    train, test = result.splits
    assert (train.name, test.name) == ("2007/train", "2007/test")
    assert (train.images, train.annotated, train.objects, train.difficult, train.truncated) == (4, 2, 3, 1, 1)
    assert train.anomaly_counts == {"invalid_annotation": 1, "box_outside_image": 1, "duplicate_box": 1,
                                    "zero_size_box": 1, "no_objects": 1}
    files = {a.kind: Path(a.file).name for a in train.anomalies}
    assert files["invalid_annotation"] == "d.xml" and files["box_outside_image"] == "c.xml"
    assert files["duplicate_box"] == "a.xml" and files["no_objects"] == "b.xml"
    assert "objects 1 and 2" in next(a.detail for a in train.anomalies if a.kind == "duplicate_box")
    assert train.missing_images == 3  # only a.jpg exists
    # Names found are not all VOC's, so the class list is the sorted names found: no unknown classes.
    assert result.classes_source == "found" and result.classes == ("dog", "person", "unicorn")
    assert (test.images, test.annotated, test.objects) == (3, 1, 1)
    assert test.anomaly_counts == {"missing_annotation": 1, "inverted_box": 1}
    assert result.total.images == 7 and result.total.objects == 4


def test_hand_worked_distributions(broken_tree):
    train = dataset_stats(broken_tree, sets="2007/train").splits[0]
    # a.xml: two dogs 10..50 -> 41x41 px (VOC inclusive), person 5..5 x 5..20 -> 1x16; b.xml: none.
    assert sorted([train.box_width.min, train.box_width.median, train.box_width.max]) == [1, 41, 41]
    assert train.box_height.median == 41 and train.box_height.min == 16
    assert train.aspect.min == pytest.approx(1 / 16) and train.aspect.max == 1
    assert train.boxes_per_image.count == 2 and train.boxes_per_image.mean == 1.5  # a: 3, b: 0
    assert train.image_sizes["distinct"] == 1 and train.image_sizes["most_common"] == [(100, 80, 2)]
    dog = next(c for c in train.per_class if c.name == "dog")
    assert (dog.objects, dog.difficult, dog.truncated, dog.images) == (2, 1, 1, 1)


def test_unknown_class_with_given_classes(broken_tree):
    result = dataset_stats(broken_tree, sets="2007/test", classes=VOC_CLASSES)
    test = result.splits[0]
    assert result.classes_source == "given"
    assert test.anomaly_counts == {"missing_annotation": 1, "inverted_box": 1, "unknown_class": 1}
    # The unknown class still shows up in the per-class counts, after the given ones.
    assert test.per_class[-1].name == "unicorn" and test.per_class[-1].objects == 1
    assert len(test.per_class) == 21


def test_cli_table_plots_and_classes_file(broken_tree, tmp_path, capsys):
    classes = tmp_path / "names.txt"
    classes.write_text("dog\nperson\ncat\n")
    plots = tmp_path / "plots"
    rc = main(["stats", "--root", str(broken_tree), "--classes", str(classes), "--plots", str(plots)])
    captured = capsys.readouterr()
    assert rc == 0 and captured.out == ""
    assert "unknown_class" in captured.err and "d.xml" in captured.err
    for name in ("class_histogram.png", "box_shapes.png"):
        with Image.open(plots / name) as im:
            assert im.format == "PNG" and im.size[0] >= 400


def test_cli_errors(tmp_path, capsys):
    assert main(["stats", "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "no VOCdevkit" in err and err.count("\n") == 1


def test_shapes_dataset_counts_match_generator(tmp_path):
    generated = generate_shapes(tmp_path, images=30, size=96, seed=2)
    result = dataset_stats(tmp_path, sets="shapes/train,shapes/val,shapes/test")
    assert result.classes == SHAPES_CLASSES and result.classes_source == "shapes"
    assert result.total.images == 30 and result.total.objects == generated.objects
    assert {c.name: c.objects for c in result.total.per_class} == generated.objects_per_class
    assert result.total.difficult == generated.difficult and result.total.truncated == generated.truncated
    assert result.total.missing_images == 0 and result.total.anomaly_counts.get("no_objects", 0) == 0
    assert result.total.image_sizes["most_common"] == [(96, 96, 30)]


def test_missing_images_are_named_not_hidden_behind_no_anomalies(broken_tree, capsys):
    jpgs = broken_tree / "VOCdevkit" / "VOC2007" / "JPEGImages"
    result = dataset_stats(broken_tree)
    # Listed in train (a b c d) then test (e f g); only a.jpg exists: six missing, the first five named.
    assert result.total.missing_images == 6
    assert result.missing_image_files == [str(jpgs / f"{i}.jpg") for i in "bcdef"]
    # An annotation-clean set whose images are missing does not say "no anomalies".
    for name in "bcdefg":
        (broken_tree / "VOCdevkit" / "VOC2007" / "Annotations" / f"{name}.xml").unlink(missing_ok=True)
    (broken_tree / "VOCdevkit" / "VOC2007" / "ImageSets" / "Main" / "test.txt").unlink()
    (broken_tree / "VOCdevkit" / "VOC2007" / "ImageSets" / "Main" / "train.txt").write_text("a\nh\n")
    (broken_tree / "VOCdevkit" / "VOC2007" / "Annotations" / "h.xml").write_text(_xml(100, 80, [("cat", 1, 1, 9, 9, 0, 0)]))
    (broken_tree / "VOCdevkit" / "VOC2007" / "Annotations" / "a.xml").write_text(_xml(100, 80, [("dog", 1, 1, 9, 9, 0, 0)]))
    assert main(["stats", "--root", str(broken_tree), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["missing_image_files"] == [str(jpgs / "h.jpg")] and doc["total"]["anomaly_counts"] == {}
    assert main(["stats", "--root", str(broken_tree)]) == 0
    err = capsys.readouterr().err
    assert "warning: 1 listed image(s) missing; the first:" in err and f"  {jpgs / 'h.jpg'}" in err.splitlines()
    assert "no anomalies" not in err.replace("no annotation anomalies", "")

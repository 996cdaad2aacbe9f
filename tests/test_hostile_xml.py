"""Hostile annotations: one reading, one verdict, everywhere (issue 18, items 6, 11 and 13).

Each hostile file sits in a tree beside valid ones. Every command that reads the tree
(the bulk reading, the single-file reading, convert yolo, anchors, evaluate, stats)
must call it invalid, name it in one line, and go on with the others; exit 1 unless
--skip-invalid; nothing written outside the command's outputs (the input tree is hashed
before and after).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from helpers import write_voc_xml
from vocli.cli.app import main
from vocli.datasets.voc import MAX_OBJECTS, parse_annotation
from vocli.datasets.voc_bulk import read_annotation_bytes, read_annotations
from vocli.errors import AnnotationError

GOOD = ("<annotation><filename>{i}.jpg</filename><size><width>100</width><height>80</height><depth>3</depth>"
        "</size><object><name>dog</name><difficult>0</difficult><bndbox><xmin>10</xmin><ymin>20</ymin>"
        "<xmax>50</xmax><ymax>60</ymax></bndbox></object></annotation>")


def _deep(levels: int) -> bytes:
    return (GOOD.format(i="deep").replace("<segmented>", "").replace(
        "</size>", "</size>" + "<a>" * levels + "</a>" * levels)).encode()


HOSTILE = {
    "deep": (_deep(5000), "not valid XML"),
    "big_text": (GOOD.format(i="t").replace("<filename>t.jpg", "<filename>" + "x" * (12 << 20)).encode(),
                 "not valid XML"),
    "huge_width": (GOOD.format(i="w").replace("<width>100", "<width>99999999999999999999").encode(),
                   "<width> 100000000000000000000 is out of range"),
    "many_objects": (GOOD.format(i="m").replace(
        "</annotation>", "<object><name>cat</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>2</xmax>"
        "<ymax>2</ymax></bndbox></object>" * MAX_OBJECTS + "</annotation>").encode(),
        f"more than {MAX_OBJECTS:,} objects"),
}


def test_each_hostile_file_gets_the_same_verdict_from_both_readers():
    datas = [GOOD.format(i="a").encode(), *(data for data, _ in HOSTILE.values()), GOOD.format(i="b").encode()]
    paths = [f"t/Annotations/{name}.xml" for name in ["a", *HOSTILE, "b"]]
    table = read_annotation_bytes(datas, paths)
    assert sorted(table.errors) == list(range(1, len(HOSTILE) + 1))  # the good ones read, around them
    for k, (name, (data, reason)) in enumerate(HOSTILE.items(), start=1):
        assert reason in table.errors[k].reason, name
        with pytest.raises(AnnotationError, match=reason.replace("<", ".").replace(">", ".")):
            parse_annotation_from(data, name)
    assert table.annotation(0).objects[0].bbox == (10, 20, 50, 60)


def parse_annotation_from(data: bytes, name: str):
    from vocli.datasets.voc import parse_annotation_bytes

    return parse_annotation_bytes(data, f"t/Annotations/{name}.xml")


def test_an_annotation_over_the_size_limit_is_named_not_read(tmp_path, monkeypatch):
    import vocli.datasets.voc as voc

    monkeypatch.setattr(voc, "MAX_ANNOTATION_BYTES", 1000)
    path = tmp_path / "a.xml"
    path.write_bytes(GOOD.format(i="a").encode() + b" " * 2000)
    with pytest.raises(AnnotationError, match="a.xml: larger than the"):
        parse_annotation(path)
    table = read_annotations([path, tmp_path / "missing.xml", tmp_path])
    assert "larger than the" in table.errors[0].reason and table.errors[1].reason == "file not found"
    assert table.errors[2].reason == "is a folder, not a file"


def _tree_hash(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def hostile_tree(tmp_path):
    voc = tmp_path / "VOCdevkit" / "VOC2007"
    ids = ["000001", "000002"] + list(HOSTILE)
    for i in ("000001", "000002"):
        write_voc_xml(voc / "Annotations" / f"{i}.xml", f"{i}.jpg", 100, 80, [("dog", 10, 20, 50, 60, 0)])
    for name, (data, _) in HOSTILE.items():
        (voc / "Annotations" / f"{name}.xml").write_bytes(data)
    main_dir = voc / "ImageSets" / "Main"
    main_dir.mkdir(parents=True)
    for split in ("trainval", "test"):
        (main_dir / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
    return tmp_path


def _check_run(args, capsys, expected_code: int, listed_on: str = "err"):
    rc = main(args)
    captured = capsys.readouterr()
    assert rc == expected_code, captured.err
    for name, (_, reason) in HOSTILE.items():
        assert f"{name}.xml" in getattr(captured, listed_on), name
    assert "Traceback" not in captured.err and "OverflowError" not in captured.err
    return captured


@pytest.mark.slow
def test_commands_list_hostile_files_and_go_on(hostile_tree, tmp_path, capsys):
    root = str(hostile_tree)
    devkit = hostile_tree / "VOCdevkit"
    before = _tree_hash(devkit)
    det = tmp_path / "det"
    det.mkdir()
    (det / "comp4_det_test_dog.txt").write_text("000001 0.9 10 20 50 60\nhuge_width 0.8 1 1 5 5\n"
                                                "000002 0.7 10 20 50 60\n")
    # evaluate: the hostile images are left out with their detections; the rest is scored.
    out = _check_run(["evaluate", "--detections", str(det), "--root", root, "--sets", "2007/test", "--json"],
                     capsys, 1).out
    result = json.loads(out)
    assert result["num_images"] == 2 and {f["path"].rsplit("/", 1)[1] for f in result["invalid"]} == {
        f"{name}.xml" for name in HOSTILE}
    dog = next(c for c in result["per_class"] if c["name"] == "dog")
    assert dog["ap"] == pytest.approx(1.0) and dog["num_det"] == 2  # the detection on huge_width is gone
    # anchors: the boxes of the two valid files are clustered.
    out = _check_run(["anchors", "--k", "1", "--root", root, "--sets", "2007/trainval", "--json",
                      "--skip-invalid"], capsys, 0).out
    assert json.loads(out)["boxes"] == 2
    # stats: invalid annotations are anomalies, never fatal.
    out = _check_run(["stats", "--root", root, "--json"], capsys, 0, listed_on="out").out
    assert json.loads(out)["total"]["anomaly_counts"]["invalid_annotation"] == len(HOSTILE)
    assert _tree_hash(devkit) == before  # nothing written into the input tree
    # convert yolo: labels for the valid ones only, the hostile ones listed.
    _check_run(["convert", "yolo", "--root", root, "--sets", "2007/trainval", "--out", str(tmp_path / "out")],
               capsys, 1)
    labels = sorted(p.name for p in (tmp_path / "out" / "VOC2007" / "labels").glob("*.txt"))
    assert labels == ["000001.txt", "000002.txt"]
    assert _tree_hash(devkit) == before


def test_stats_is_not_quadratic_in_objects_of_different_classes(tmp_path):
    # 5,000 objects in one image (78 s and 5.5 GB before); here a few seconds at most on any machine.
    objects = [(("dog", "cat", "person", "car")[k % 4], 1 + k % 90, 1 + k % 70, 10 + k % 90, 10 + k % 70, 0)
               for k in range(5000)]
    voc = tmp_path / "VOCdevkit" / "VOC2007"
    write_voc_xml(voc / "Annotations" / "a.xml", "a.jpg", 100, 80, objects)
    (voc / "ImageSets" / "Main").mkdir(parents=True)
    (voc / "ImageSets" / "Main" / "train.txt").write_text("a\n")
    from vocli.stats import dataset_stats

    result = dataset_stats(tmp_path)
    dupes = [a for a in result.total.anomalies if a.kind == "duplicate_box"]
    # Objects k and k + 4 * 90 * 70 / gcd... repeat every lcm(90, 70, 4) = 1260: each later copy is
    # reported once, against its earliest twin.
    assert len(dupes) == 5000 - 1260
    assert dupes[0].detail.startswith("objects 1 and 1261 (dog)")


def test_bulk_reading_without_class_list_keeps_unknown_names(tmp_path):
    paths = [write_voc_xml(tmp_path / "Annotations" / f"{k}.xml", f"{k}.jpg", 50, 50, [("unicorn", 1, 1, 5, 5, 0)])
             for k in range(3)]
    table = read_annotations(paths)
    assert table.classes == ("unicorn",) and table.class_ids.tolist() == [0, 0, 0]

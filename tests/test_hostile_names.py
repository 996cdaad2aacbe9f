"""Ids and file names are names (issue 18, item 3): an ImageSets id or a ``<filename>`` holding a path
separator, ``..`` or an absolute path is an invalid entry, reported and skipped, never a path to follow.
"""

from __future__ import annotations

import json

import pytest
from helpers import write_voc_xml
from hostile_common import run, tree_state

from vocli.paths import entry_name_problem


@pytest.mark.parametrize("name, problem", [
    ("000001", None), ("2008_000123", None), ("img.v2", None), ("..x", None),
    ("../evil", "holds a path separator"), ("/abs/evil", "holds a path separator"), ("a\\b", "holds a path separator"),
    ("..", "is '..', not a name"), (".", "is '.', not a name"), ("", "is empty"), ("C:evil", "is a drive path"),
    ("a\0b", "holds a NUL byte"),
])
def test_entry_name_problem(name, problem):
    found = entry_name_problem(name)
    assert (found is None) if problem is None else found.startswith(problem)


@pytest.fixture
def hostile_tree(tmp_path):
    """VOC2007 with one good id, ids climbing out and an absolute id, and an XML whose <filename> climbs out.

    ``outside/`` holds files named like what the bad ids would read and write.
    """
    root = tmp_path / "data"
    voc = root / "VOCdevkit" / "VOC2007"
    write_voc_xml(voc / "Annotations" / "000001.xml", "000001.jpg", 100, 80, [("dog", 10, 20, 50, 60, 0)])
    write_voc_xml(voc / "Annotations" / "000002.xml", "../../../../outside/x.jpg", 100, 80,
                  [("cat", 5, 5, 20, 30, 0)])
    outside = tmp_path / "outside"
    write_voc_xml(outside / "evil.xml", "evil.jpg", 100, 80, [("dog", 1, 1, 9, 9, 0)])
    (outside / "evil.txt").write_text("the user's own file\n")
    main = voc / "ImageSets" / "Main"
    main.mkdir(parents=True)
    ids = ["000001", "000002", "../../../../outside/evil", str(outside / "evil")]
    for split in ("train", "test"):
        (main / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
    return root, outside


def test_convert_yolo_reports_and_skips_them_and_writes_nothing_outside(tmp_path, hostile_tree, capsys):
    root, outside = hostile_tree
    before = tree_state(outside)
    out = tmp_path / "yolo"
    for _ in range(2):  # the second run is incremental (labels exist), the case that overwrote files
        rc, err = run(capsys, "convert", "yolo", "--root", root, "--sets", "2007/train", "--out", out,
                      "--workers", "1")
        assert rc == 1
        assert "3 invalid file(s), left out" in err and "error: invalid annotations above" in err
    assert tree_state(outside) == before
    assert sorted(p.name for p in (out / "VOC2007" / "labels").iterdir() if not p.name.startswith(".")) == \
        ["000001.txt"]


def test_convert_yolo_json_lists_each_bad_entry(hostile_tree, capsys):
    root, outside = hostile_tree
    capsys.readouterr()
    from vocli.cli.app import main

    assert main(["convert", "yolo", "--root", str(root), "--sets", "2007/train", "--workers", "1", "--json",
                 "--skip-invalid"]) == 0
    result = json.loads(capsys.readouterr().out)
    split = str(root / "VOCdevkit" / "VOC2007" / "ImageSets" / "Main" / "train.txt")
    reasons = {(item["path"], item["reason"].split(" (")[0]) for item in result["invalid"]}
    assert reasons == {
        (split, "entry '../../../../outside/evil' holds a path separator"),
        (split, f"entry '{outside / 'evil'}' holds a path separator"),
        (str(root / "VOCdevkit" / "VOC2007" / "Annotations" / "000002.xml"),
         "<filename> '../../../../outside/x.jpg' holds a path separator"),
    }
    assert [s["images"] for s in result["sets"]] == [1]


def test_convert_ssd_reports_them_too(tmp_path, hostile_tree, capsys):
    root, outside = hostile_tree
    before = tree_state(outside)
    from vocli.cli.app import main

    capsys.readouterr()
    assert main(["convert", "ssd", "--root", str(root), "--sets", "2007/test", "--workers", "1", "--json",
                 "--skip-invalid", "--out", str(tmp_path / "ssd")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert len(result["invalid"]) == 3 and [f["images"] for f in result["files"]] == [1]
    assert tree_state(outside) == before


def test_every_reader_skips_them(hostile_tree):
    from vocli.datasets.voc import parse_annotation, resolve_sets, split_entries
    from vocli.errors import AnnotationError

    root, outside = hostile_tree
    (vs,) = resolve_sets(root, "2007/test")
    assert vs.ids() == ["000001", "000002"]
    ids, invalid = split_entries(vs.split_file)
    assert ids == ["000001", "000002"] and [i for i, _ in invalid] == ["../../../../outside/evil",
                                                                       str(outside / "evil")]
    with pytest.raises(AnnotationError, match="<filename> '../../../../outside/x.jpg' holds a path separator"):
        parse_annotation(vs.annotation_path("000002"))

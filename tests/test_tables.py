"""Tables at 80 columns: no set name, number or path is cut, folded or replaced by an ellipsis."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from vocli.cli.app import main
from vocli.cli.common import Col, print_table, short_path


@pytest.fixture
def narrow(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")


def test_short_path():
    assert short_path(Path("/data/run/VOC2007/labels"), Path("/data/run")) == "VOC2007/labels"
    assert short_path("/elsewhere/x.txt", Path("/data/run")) == "/elsewhere/x.txt"
    assert short_path(None) == "-"


def test_paths_relative_to_the_root_printed_once(narrow, capsys):
    root = Path("/tmp/" + "a-long-folder-name/" * 5 + "out")
    print_table("lists", [Col("set", "key"), Col("images", "num"), Col("list", "path")],
                [("2007/trainval", 5011, root / "2007_trainval.txt"), ("2007/test", 4952, root / "2007_test.txt")],
                root=root)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == f"lists in {root}"  # the root once, whole, on its own line
    assert re.search(r"^2007/trainval\s+5011\s+2007_trainval\.txt\s*$", lines[3])
    assert re.search(r"^2007/test\s+4952\s+2007_test\.txt\s*$", lines[4])
    assert all(len(line) <= 80 for line in lines[1:])


def test_paths_that_do_not_fit_move_below_the_table_whole(narrow, capsys):
    far = "/somewhere/" + "deep/" * 14 + "file-with-a-long-name.h5"
    print_table("targets", [Col("set", "key"), Col("images", "num"), Col("positives\n/image", "num"),
                            Col("file", "path")],
                [("2012/trainval", 11540, "6.3", far)], root=Path("/tmp/out"))
    lines = capsys.readouterr().err.splitlines()
    table = lines[1:-1]
    assert all(len(line) <= 80 for line in table) and not any("deep/" in line for line in table)
    assert re.search(r"^2012/trainval\s+11540\s+6\.3\s*$", table[-1])
    assert lines[-1] == f"  2012/trainval: file {far}"


def no_cuts(err: str) -> None:
    assert "…" not in err and "..." not in err.replace("... and", "")


def test_commands_at_80_columns(tmp_path, narrow, capsys, monkeypatch):
    # A deep root, as a newcomer's checkout under a long home folder would give.
    root = tmp_path / ("a-rather-long-folder-name-" * 3) / "data"
    monkeypatch.setenv("VOCLI_HOME", str(tmp_path / "home"))
    assert main(["fetch", "shapes", "--root", str(root), "--images", "10", "--size", "64"]) == 0
    err = capsys.readouterr().err
    no_cuts(err)
    assert f"fetched into {root}" in err and re.search(r"shapes\s+VOCshapes\.tar\s+[\d.]+ KB\s+generated\s+"
                                                       r"VOCdevkit/VOCshapes", err)

    assert main(["convert", "yolo", "--root", str(root)]) == 0
    err = capsys.readouterr().err
    no_cuts(err)
    assert f"lists in {root}" in err
    for split in ("train", "val", "test"):
        assert re.search(rf"^shapes/{split}\s+\d+\s+\d+\s+0\s+shapes_{split}\.txt\s*$", err, re.M), split

    assert main(["convert", "ssd", "--root", str(root), "--sets", "shapes/trainval"]) == 0
    err = capsys.readouterr().err
    no_cuts(err)
    assert re.search(r"^shapes/trainval\s+\d+\s+\d+\s+[\d.]+\s+[\d.]+\s+shapes_trainval\.h5\s*$", err, re.M)

    assert main(["verify", "shapes", "--root", str(root)]) == 0
    err = capsys.readouterr().err
    no_cuts(err)
    for split in ("train", "val", "trainval", "test"):
        assert re.search(rf"VOCshapes/{split}\s+\d+\s+\d+\s+0\s+0\s*$", err, re.M), split

    assert main(["datasets", "--root", str(root)]) == 0
    err = capsys.readouterr().err
    no_cuts(err)
    assert re.search(r"^voc2012\s+VOCtrainval_11-May-2012\.tar\s+2\.0 GB\s+absent\s+no\s*$", err, re.M)
    assert re.search(r"^yolov3-tiny\.weights\s+yolov3-tiny\.weights\s+35\.4 MB\s+absent\s*$", err, re.M)

    assert main(["models"]) == 0
    err = capsys.readouterr().err
    no_cuts(err)
    assert re.search(r"^yolov3-spp-voc\s+20\s+114\s+62,675,649\s+65\.78\s+250,917,144\s*$", err, re.M)

    for table_line in (line for line in err.splitlines() if "  " in line):
        assert len(table_line) <= 80


def test_demo_summary_names_every_path_whole(tmp_path, narrow, capsys):
    from types import SimpleNamespace

    from vocli.cli.demo import render

    out = tmp_path / ("a-rather-long-folder-name-" * 3) / "vocli-demo"
    step = SimpleNamespace(name="convert-yolo", seconds=1.25,
                           summary="shapes/train 500 images / 1201 objects, shapes/val 100 images / 250 objects")
    paths = {"dataset": out / "data/VOCdevkit/VOCshapes", "labels": out / "VOCshapes/labels",
             "data_file": out / "shapes.data", "ssd": [out / "ssd/shapes_trainval.h5", out / "ssd/shapes_test.h5"],
             "cfg": out / "yolov3-tiny-shapes.cfg", "weights": out / "train/last.pt",
             "train_curves": out / "train/results.png", "pr_curves": out / "eval/pr_curves.png",
             "ap_per_class": out / "eval/ap_per_class.png", "detect": out / "detect",
             "detect_images": [out / "detect/a.jpg"] * 8}
    render(SimpleNamespace(seconds=200.0, budget_seconds=300.0, steps=[step], paths=paths, out=out, metric="voc12",
                           map=0.81234, train_stopped="time_limit", epochs_run=7, img_size=160))
    err = capsys.readouterr().err
    no_cuts(err)
    assert re.search(r"^convert-yolo\s+1\.2\s+shapes/train 500 images / 1201", err, re.M)
    assert f"where everything is, under {out.resolve()}" in err
    for line in ("  trained weights: train/last.pt", "  SSD targets: ssd/shapes_trainval.h5, ssd/shapes_test.h5",
                 "  darknet .data: shapes.data", "  annotated test images: detect/ (8 images)"):
        assert line in err.splitlines()

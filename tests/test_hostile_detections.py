"""Hostile detection files: a NaN or infinite score or box is rejected in JSON lines as in comp4, naming
the file and the line; evaluate stops with one line and touches nothing."""

from __future__ import annotations

import json
import math

import pytest

from hostile_common import error_line, tree_state
from vocli.cli.app import main
from vocli.datasets.voc import VOC_CLASSES
from vocli.detection_files import DetectionFileError, read_comp4, read_jsonl

GOOD = {"image_id": "000001", "detections": [{"class": "dog", "score": 0.9, "bbox": [10, 20, 50, 60]}]}


def line_with(score="0.5", bbox="[5, 5, 20, 30]") -> str:
    """A JSON line written by hand, so NaN / Infinity / "nan" appear as a hostile writer would put them."""
    return f'{{"image_id": "000002", "detections": [{{"class": "cat", "score": {score}, "bbox": {bbox}}}]}}'


@pytest.mark.parametrize("score, bbox", [
    ("NaN", "[5, 5, 20, 30]"),          # Python's json writes float("nan") like this
    ('"nan"', "[5, 5, 20, 30]"),        # a string float() turns into nan
    ("Infinity", "[5, 5, 20, 30]"),
    ("-Infinity", "[5, 5, 20, 30]"),
    ("0.5", "[5, NaN, 20, 30]"),
    ("0.5", '[5, 5, "inf", 30]'),
])
def test_jsonl_non_finite_is_rejected_naming_the_line(tmp_path, score, bbox):
    f = tmp_path / "d.jsonl"
    # line 1 good, line 2 blank, line 3 bad: the blank line still counts
    f.write_text(json.dumps(GOOD) + "\n\n" + line_with(score, bbox) + "\n" + json.dumps(GOOD) + "\n")
    with pytest.raises(DetectionFileError) as info:
        read_jsonl(f, VOC_CLASSES)
    assert str(info.value) == f"{f}:3: score or box is not finite"


def test_jsonl_and_comp4_give_the_same_verdict(tmp_path):
    comp4 = tmp_path / "comp4_det_test_cat.txt"
    comp4.write_text("000001 0.9 10 20 50 60\n000002 nan 5 5 20 30\n")
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text(json.dumps(GOOD) + "\n" + line_with("NaN") + "\n")
    with pytest.raises(DetectionFileError, match=r":2: score or box is not finite$"):
        read_comp4(comp4, VOC_CLASSES.index("cat"))
    with pytest.raises(DetectionFileError, match=r":2: score or box is not finite$"):
        read_jsonl(jsonl, VOC_CLASSES)


def test_finite_extremes_are_still_accepted(tmp_path):
    f = tmp_path / "d.jsonl"
    f.write_text(line_with("1e308", "[-1e308, 0, 1e308, 1]") + "\n")
    det = read_jsonl(f, VOC_CLASSES)
    assert det.scores.tolist() == [1e308] and all(map(math.isfinite, det.boxes.ravel()))


def test_many_good_lines_then_one_nan_names_that_line(tmp_path):
    f = tmp_path / "d.jsonl"
    lines = [json.dumps(GOOD)] * 999 + [line_with("NaN")]
    f.write_text("\n".join(lines) + "\n")
    with pytest.raises(DetectionFileError, match=r"d.jsonl:1000: score or box is not finite"):
        read_jsonl(f, VOC_CLASSES)


def test_cli_evaluate_rejects_a_nan_score_in_one_line(tiny_voc, tmp_path, capsys):
    det = tmp_path / "det.jsonl"
    det.write_text(json.dumps(GOOD) + "\n" + line_with("NaN") + "\n")
    before = tree_state(tmp_path)
    rc = main(["evaluate", "--detections", str(det), "--root", str(tiny_voc), "--sets", "2007/trainval"])
    line = error_line(capsys.readouterr().err)
    assert rc == 1
    assert line == f"error: {det}:2: score or box is not finite"
    assert tree_state(tmp_path) == before

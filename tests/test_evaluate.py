"""evaluate: detection file formats, ground truth sources, the CLI on a tiny VOC tree (APs worked out by hand)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from vocli.cli.app import main
from vocli.detection_files import (DetectionFileError, comp4_class, detection_json_line, load_detections,
                                   read_comp4, read_jsonl)
from vocli.evaluate import default_metric_for_images, ground_truth_for_images
from vocli.datasets.voc import VOC_CLASSES

DOG, CAT, PERSON = VOC_CLASSES.index("dog"), VOC_CLASSES.index("cat"), VOC_CLASSES.index("person")


def test_comp4_parsing_and_class_from_name(tmp_path):
    f = tmp_path / "comp4_det_test_dog.txt"
    f.write_text("000001 0.9 10 20 50 60\n\n000002 0.25 1.5 2 3.5 4\n")
    det = read_comp4(f, DOG)
    assert list(det.image_ids) == ["000001", "000002"]
    np.testing.assert_array_equal(det.scores, [0.9, 0.25])
    np.testing.assert_array_equal(det.boxes, [[10, 20, 50, 60], [1.5, 2, 3.5, 4]])
    assert set(det.labels) == {DOG}
    empty = tmp_path / "comp4_det_test_cat.txt"
    empty.write_text("")
    assert len(read_comp4(empty, CAT)) == 0
    assert comp4_class("comp4_det_test_pottedplant.txt", VOC_CLASSES) == "pottedplant"
    assert comp4_class("yolo_det_val_tvmonitor.txt", VOC_CLASSES) == "tvmonitor"
    assert comp4_class("comp4_det_test_unicorn.txt", VOC_CLASSES) is None
    assert comp4_class("notes.txt", VOC_CLASSES) is None


def test_comp4_errors_name_the_line(tmp_path):
    f = tmp_path / "comp4_det_test_dog.txt"
    f.write_text("000001 0.9 10 20 50 60\n000002 0.5 1 2 3\n")
    with pytest.raises(DetectionFileError, match=r"comp4_det_test_dog.txt:2"):
        read_comp4(f, DOG)
    f.write_text("000001 0.9 10 20 50 60\n000002 high 1 2 3 4\n")
    with pytest.raises(DetectionFileError, match=r":2: score or box is not a number"):
        read_comp4(f, DOG)


def test_jsonl_reader_on_hand_written_lines(tmp_path):
    f = tmp_path / "d.jsonl"
    f.write_text('{"image_id": "000001", "detections": [{"class": "dog", "score": 0.5, "bbox": [1, 2, 3, 4]},'
                 ' {"class": "cat", "score": 0.25, "bbox": [5, 6, 7, 8], "class_id": 7}]}\n'
                 '{"image_id": 2, "detections": []}\n')
    det = read_jsonl(f, VOC_CLASSES)
    assert list(det.image_ids) == ["000001", "000001"]
    np.testing.assert_array_equal(det.labels, [DOG, CAT])
    np.testing.assert_array_equal(det.boxes, [[1, 2, 3, 4], [5, 6, 7, 8]])
    # the writer's line reads back
    line = detection_json_line("x", np.array([[1.25, 2, 3, 4]]), np.array([0.125]), np.array([CAT]), VOC_CLASSES)
    assert json.loads(line) == {"image_id": "x", "detections": [
        {"class": "cat", "class_id": CAT, "score": 0.125, "bbox": [1.25, 2.0, 3.0, 4.0]}]}
    f.write_text('{"image_id": "a", "detections": [{"class": "unicorn", "score": 1, "bbox": [1, 2, 3, 4]}]}\n')
    with pytest.raises(DetectionFileError, match="unknown class 'unicorn'"):
        read_jsonl(f, VOC_CLASSES)
    f.write_text('{"image_id": "a", "detections": [{"class": "dog", "bbox": [1, 2, 3, 4]}]}\n')
    with pytest.raises(DetectionFileError, match="d.jsonl:1"):
        read_jsonl(f, VOC_CLASSES)


def test_load_detections_folder(tmp_path):
    (tmp_path / "comp4_det_test_dog.txt").write_text("a 0.5 1 1 5 5\n")
    (tmp_path / "comp4_det_test_cat.txt").write_text("")
    (tmp_path / "readme.md").write_text("ignored")
    det, files = load_detections(tmp_path, VOC_CLASSES)
    assert len(det) == 1 and len(files) == 2
    with pytest.raises(DetectionFileError, match="no such file"):
        load_detections(tmp_path / "nope", VOC_CLASSES)


def _write_comp4(folder, cls, rows):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"comp4_det_test_{cls}.txt").write_text("".join(f"{r}\n" for r in rows))


def test_cli_scores_comp4_files_on_trainval(tiny_voc, capsys, tmp_path):
    # 000001: dog (10,20,50,60), person (1,1,100,80) difficult; 000002: cat (5,5,20,30)
    det = tmp_path / "results"
    _write_comp4(det, "dog", ["000001 0.9 10 20 50 60", "000001 0.8 11 20 50 60"])   # TP, duplicate FP
    _write_comp4(det, "cat", ["000001 0.95 5 5 20 30", "000002 0.6 5 5 20 30"])      # FP first, then TP
    _write_comp4(det, "person", ["000001 0.7 1 1 100 80"])                          # on a difficult: ignored
    _write_comp4(det, "bird", [])                                                    # empty file, no crash
    rc = main(["evaluate", "--detections", str(det), "--root", str(tiny_voc), "--sets", "2007/trainval", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert out["metric"] == "voc12"  # not 2007/test
    ap = {c["name"]: c["ap"] for c in out["per_class"]}
    # dog: recall 1,1 precision 1,.5 -> 1.  cat: recall 0,1 precision 0,.5 -> envelope .5 over [0,1] -> .5
    assert ap["dog"] == pytest.approx(1.0) and ap["cat"] == pytest.approx(0.5)
    # person has only a difficult object, bird nothing: both NaN (null) and excluded
    assert ap["person"] is None and ap["bird"] is None
    assert {"person", "bird"} <= set(out["excluded"])
    assert out["map"] == pytest.approx(0.75)
    assert out["num_detections"] == 5 and "stable" in out["sort"]


def test_cli_default_voc07_on_2007_test_with_plots(tiny_voc, capsys, tmp_path):
    det = tmp_path / "results"
    _write_comp4(det, "cat", ["000002 0.6 5 5 20 15", "000002 0.5 5 5 20 30"])  # IoU 11/26 -> FP, then TP
    plots = tmp_path / "plots"
    rc = main(["evaluate", "-d", str(det), "--root", str(tiny_voc), "--sets", "2007/test", "--plots", str(plots)])
    err = capsys.readouterr().err
    assert rc == 0
    # 11-point on recall 0,1 precision 0,.5: every t reaches recall 1 at precision .5 -> .5
    assert "voc07" in err and "mAP (voc07) = 0.5000" in err and "stable" in err
    for name in ("pr_curves.png", "ap_per_class.png"):
        with Image.open(plots / name) as im:
            assert im.format == "PNG" and im.width > 100


def test_cli_coco_view_and_errors(tiny_voc, capsys, tmp_path):
    det = tmp_path / "results"
    _write_comp4(det, "cat", ["000002 0.6 5 5 20 30"])
    rc = main(["evaluate", "-d", str(det), "--root", str(tiny_voc), "--sets", "2007/test", "--metric", "coco", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["metric"] == "coco"
    assert out["map"] == pytest.approx(1.0) and out["map_50_95"] == pytest.approx(1.0)
    _write_comp4(det, "dog", ["009999 0.6 5 5 20 30"])
    rc = main(["evaluate", "-d", str(det), "--root", str(tiny_voc), "--sets", "2007/test"])
    assert rc == 1 and "009999" in capsys.readouterr().err
    assert main(["evaluate", "-d", str(det), "--root", str(tiny_voc), "--metric", "voc10"]) == 2


def test_ground_truth_from_labels_and_from_xml(tiny_voc, tmp_path):
    # labels layout (no XML): 100 x 80 image, darknet label 0.5 0.5 0.5 0.5 ->
    # centre 50 + 1, half-width 25 -> xmin 26, xmax 76; y: 40 + 1 -/+ 20 -> 21, 61
    (tmp_path / "set" / "images").mkdir(parents=True)
    (tmp_path / "set" / "labels").mkdir()
    image = tmp_path / "set" / "images" / "x.jpg"
    Image.new("RGB", (100, 80)).save(image)
    (tmp_path / "set" / "labels" / "x.txt").write_text("3 0.5 0.5 0.5 0.5\n")
    no_label = tmp_path / "set" / "images" / "y.jpg"
    Image.new("RGB", (10, 10)).save(no_label)
    # VOC layout: the XML wins and keeps the difficult flag
    voc_image = tiny_voc / "VOCdevkit" / "VOC2007" / "JPEGImages" / "000001.jpg"
    voc_image.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (100, 80)).save(voc_image)
    gt = ground_truth_for_images([image, no_label, voc_image], VOC_CLASSES)
    assert gt.image_ids == [str(image), str(no_label), str(voc_image)]
    np.testing.assert_array_equal(gt.image_index, [0, 2, 2])
    np.testing.assert_array_equal(gt.boxes, [[26, 21, 76, 61], [10, 20, 50, 60], [1, 1, 100, 80]])
    np.testing.assert_array_equal(gt.labels, [3, DOG, PERSON])
    np.testing.assert_array_equal(gt.difficult, [False, False, True])


def test_default_metric_for_images(tiny_voc):
    jpeg = tiny_voc / "VOCdevkit" / "VOC2007" / "JPEGImages"
    assert default_metric_for_images([jpeg / "000002.jpg"]) == "voc07"     # exactly the 2007 test list
    assert default_metric_for_images([jpeg / "000001.jpg", jpeg / "000002.jpg"]) == "voc12"


def test_ground_truth_follows_the_jpegimages_link_of_convert_out(tiny_voc, tmp_path):
    # `convert yolo --out OUT` links OUT/VOC2007/JPEGImages to the real folder; the XML (and its
    # difficult flag) must still be found through the link.
    real = tiny_voc / "VOCdevkit" / "VOC2007" / "JPEGImages"
    real.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (100, 80)).save(real / "000001.jpg")
    linked = tmp_path / "out" / "VOC2007" / "JPEGImages"
    linked.parent.mkdir(parents=True)
    linked.symlink_to(real, target_is_directory=True)
    gt = ground_truth_for_images([linked / "000001.jpg"], VOC_CLASSES)
    np.testing.assert_array_equal(gt.difficult, [False, True])


def test_pr_curve_panels_share_the_unit_axes(tmp_path, monkeypatch):
    import vocli.plotting as plotting
    from vocli.evaluate import write_plots
    from vocli.metrics import ClassResult, EvalResult

    ranges = []
    real_range = plotting._range

    def recording(values, limit, pad_zero=False):
        ranges.append(real_range(values, limit, pad_zero))
        return ranges[-1]

    monkeypatch.setattr(plotting, "_range", recording)
    # Precision of one class stays in 0.2..0.4, of the other in 0.9..1: scaled to their data, the panels'
    # y axes would differ (0.2..0.4 and 0.9..1); both must read 0..1, as recall does.
    low = ClassResult("cat", 0.3, 10, 3, recall=np.array([0.1, 0.2, 0.3]), precision=np.array([0.4, 0.3, 0.2]))
    high = ClassResult("dog", 0.9, 10, 3, recall=np.array([0.5, 0.7, 0.9]), precision=np.array([1.0, 0.95, 0.9]))
    result = EvalResult("voc12", 0.5, 0.6, [low, high], num_images=4, num_detections=6)
    write_plots(result, tmp_path)
    assert ranges[:4] == [(0.0, 1.0)] * 4  # x then y of each panel, before the bar chart's own range

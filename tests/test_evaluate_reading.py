"""evaluate's readers: whole-file comp4 / JSON lines parsing and parallel VOC XML reading.

Expected values come from an independent line-by-line parse written here (``str.split`` and
``float``), never from the readers under test.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import write_voc_xml
from vocli.datasets.voc import VOC_CLASSES, parse_annotation
from vocli.datasets.voc_bulk import read_annotations
from vocli.detection_files import DetectionFileError, read_comp4, read_jsonl
from vocli.errors import AnnotationError, UnknownClassError

DOG = VOC_CLASSES.index("dog")


def independent_comp4(text: str):
    rows = [line.split() for line in text.splitlines() if line.strip()]
    return ([r[0] for r in rows], np.array([[float(v) for v in r[1:]] for r in rows]).reshape(-1, 5))


def test_comp4_whole_file_read_equals_line_by_line(tmp_path):
    rng = np.random.default_rng(0)
    lines = []
    for i in range(500):
        score = rng.random() * 10.0 ** rng.integers(-9, 3)
        box = rng.random(4) * 500
        # repr (17 significant digits), scientific notation, few digits, and mixed separators
        style = i % 4
        fields = ([repr(float(score))] + [repr(float(v)) for v in box] if style == 0 else
                  [f"{score:.6e}"] + [f"{v:.3E}" for v in box] if style == 1 else
                  [f"{score:.3f}"] + [f"{v:.1f}" for v in box])
        sep = "\t" if style == 3 else " "
        lines.append(sep.join([f"{2007 + i % 3}_{i % 37:06d}"] + fields))
    lines.insert(10, "")
    lines.insert(20, "   ")
    text = "\r\n".join(lines[:250]) + "\n" + "\n".join(lines[250:])  # no final newline
    f = tmp_path / "comp4_det_test_dog.txt"
    f.write_text(text, newline="")
    det = read_comp4(f, DOG)
    ids, numbers = independent_comp4(text)
    assert list(det.image_ids) == ids
    np.testing.assert_array_equal(det.scores, numbers[:, 0])  # bit-exact, like float()
    np.testing.assert_array_equal(det.boxes, numbers[:, 1:])
    assert det.labels.dtype == np.int64 and set(det.labels) == {DOG}


def test_comp4_scientific_notation_scores(tmp_path):
    f = tmp_path / "comp4_det_test_dog.txt"
    f.write_text("a 1e-3 1 2 3 4\nb 2.5E-07 1.0e2 2e+1 3.5E2 4\nc 7E0 1 2 3 4\n")
    det = read_comp4(f, DOG)
    assert det.scores.tolist() == [0.001, 2.5e-07, 7.0]
    assert det.boxes[1].tolist() == [100.0, 20.0, 350.0, 4.0]


@pytest.mark.parametrize("text", ["", "\n\n", "  \n\t\n"])
def test_comp4_empty_files_have_no_detections(tmp_path, text):
    f = tmp_path / "comp4_det_test_dog.txt"
    f.write_text(text)
    det = read_comp4(f, DOG)
    assert len(det) == 0 and det.boxes.shape == (0, 4) and det.labels.dtype == np.int64


@pytest.mark.parametrize("lines, number, message", [
    (["a 0.5 1 2 3 4", "", "b 0.5 1 2 3"], 3, "expected 6 fields"),        # too few
    (["a 0.5 1 2 3 4", "b 0.5 1 2 3", "c 0.5 1 2 3 4 5"], 2, "got 5"),      # 5 + 7: same total, still caught
    (["", "", "x 0.5 1 2 3 4", "my image 0.5 1 2 3 4"], 4, "cannot hold spaces"),  # ids cannot hold spaces
    (["a 0.5 1 2 3 4", "b high 1 2 3 4"], 2, "score or box is not a number"),
    (["a 0.5 1 2 3 4", "", "b 0.5 1 2 nan 4"], 3, "not finite"),
    (["a 0.5 1 2 3 4", "b 0.5 1 2 inf 4"], 2, "not finite"),
])
def test_comp4_malformed_lines_are_named(tmp_path, lines, number, message):
    f = tmp_path / "comp4_det_test_dog.txt"
    f.write_text("\n".join(lines) + "\n")
    with pytest.raises(DetectionFileError, match=rf"comp4_det_test_dog\.txt:{number}: .*") as err:
        read_comp4(f, DOG)
    assert message in str(err.value)


def test_comp4_non_utf8_and_long_lines(tmp_path):
    f = tmp_path / "comp4_det_test_dog.txt"
    f.write_bytes(b"a 0.5 1 2 3 4\n\xff\xfe 0.5 1 2 3 4\n")
    with pytest.raises(DetectionFileError, match=r":2: not UTF-8"):
        read_comp4(f, DOG)
    # a UTF-8 id is kept as text; an id longer than the fast reader's field goes the line-by-line way
    long_id = "é" + "x" * 3000
    f.write_text(f"café 0.5 1 2 3 4\n{long_id} 0.25 1 2 3 4\n", encoding="utf-8")
    det = read_comp4(f, DOG)
    assert list(det.image_ids) == ["café", long_id]
    assert det.scores.tolist() == [0.5, 0.25]


def test_jsonl_whole_file_read_equals_line_by_line(tmp_path):
    rng = np.random.default_rng(1)
    records = []
    for i in range(60):
        n = int(rng.integers(0, 5))
        dets = [{"class": VOC_CLASSES[int(rng.integers(0, 20))], "score": float(rng.random()),
                 "bbox": [float(v) for v in rng.random(4) * 300], "class_id": 3} for _ in range(n)]
        records.append({"image_id": f"{i:06d}", "width": 500, "detections": dets})
    records.append({"image_id": 7})  # no detections key: no detections
    f = tmp_path / "d.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in records) + "\n\n")
    det = read_jsonl(f, VOC_CLASSES)
    flat = [(str(r["image_id"]), d) for r in records for d in r.get("detections", [])]
    assert list(det.image_ids) == [i for i, _ in flat]
    assert det.labels.tolist() == [VOC_CLASSES.index(d["class"]) for _, d in flat]
    assert det.scores.tolist() == [d["score"] for _, d in flat]
    assert det.boxes.tolist() == [d["bbox"] for _, d in flat]
    f.write_text("")
    assert len(read_jsonl(f, VOC_CLASSES)) == 0


@pytest.mark.parametrize("second_line, message", [
    ('{"image_id": "b", "detections": [{"class": "dog", "score": 0.5, "bbox": [1, 2, 3]}]}', "bbox needs 4"),
    ('{"image_id": "b", "detections": [{"class": "dog", "score": "x", "bbox": [1, 2, 3, 4]}]}', "ValueError"),
    ('{"detections": []}', "KeyError"),
    ('[1, 2]', "TypeError"),
    ('{"image_id": "b", "detections": [{"class": "unicorn", "score": 1, "bbox": [1, 2, 3, 4]}]}', "unicorn"),
    ('{"image_id": "b", ', "JSONDecodeError"),
])
def test_jsonl_malformed_lines_are_named(tmp_path, second_line, message):
    f = tmp_path / "d.jsonl"
    first = '{"image_id": "a", "detections": [{"class": "dog", "score": 0.5, "bbox": [1, 2, 3, 4]}]}'
    f.write_text(f"{first}\n\n{second_line}\n")
    with pytest.raises(DetectionFileError, match=r"d\.jsonl:3: ") as err:
        read_jsonl(f, VOC_CLASSES)
    assert message in str(err.value)


# --------------------------------------------------------------------------- VOC XML in parallel


def _xml_tree(tmp_path, count):
    rng = np.random.default_rng(2)
    paths = []
    for i in range(count):
        n = int(rng.integers(0, 4))
        objects = [(VOC_CLASSES[int(rng.integers(0, 20))], int(x), int(y), int(x) + 20, int(y) + 10, bool(d))
                   for x, y, d in zip(rng.integers(1, 50, n), rng.integers(1, 50, n), rng.random(n) < 0.3)]
        paths.append(write_voc_xml(tmp_path / "Annotations" / f"{i:06d}.xml", f"{i:06d}.jpg", 100, 80, objects))
    return paths


def test_parallel_xml_reading_equals_sequential(tmp_path):
    paths = _xml_tree(tmp_path, 600)
    one_by_one = [parse_annotation(p, classes=VOC_CLASSES) for p in paths]
    seen = []
    table = read_annotations(paths, classes=VOC_CLASSES, workers=3, progress=seen.append)
    # dataclass equality: paths, sizes, every object field, same order
    assert [table.annotation(i) for i in range(len(paths))] == one_by_one
    assert sum(seen) == len(paths) and not table.errors
    small = read_annotations(paths[:5], workers=4)  # small sets: in-process
    assert [small.annotation(i) for i in range(5)] == one_by_one[:5]
    assert len(read_annotations([], workers=2)) == 0


def test_parallel_xml_reading_lists_every_invalid_file_and_reads_the_rest(tmp_path):
    paths = _xml_tree(tmp_path, 600)
    write_voc_xml(paths[150], "x.jpg", 100, 80, [("unicorn", 1, 1, 5, 5, 0)])
    paths[450].write_text("<annotation><size>")
    table = read_annotations(paths, classes=VOC_CLASSES, workers=3)
    assert sorted(table.errors) == [150, 450]
    assert isinstance(table.errors[150], UnknownClassError) and "unknown class 'unicorn'" in str(table.errors[150])
    assert "000450.xml: not valid XML" in str(table.errors[450])
    assert table.annotation(151) == parse_annotation(paths[151], classes=VOC_CLASSES)
    without = read_annotations(paths, workers=3)  # without a class list, the unicorn is fine
    assert sorted(without.errors) == [450] and without.annotation(150).objects[0].name == "unicorn"
    with pytest.raises(AnnotationError, match="000450.xml: not valid XML"):
        without.raise_first_error()


def test_ground_truth_beside_images_lists_an_invalid_xml_and_leaves_its_image_out(tiny_voc):
    from vocli.evaluate import ground_truth_for_images

    voc = tiny_voc / "VOCdevkit" / "VOC2007"
    (voc / "JPEGImages").mkdir()
    images = [voc / "JPEGImages" / "000001.jpg", voc / "JPEGImages" / "000002.jpg"]
    (voc / "Annotations" / "000002.xml").write_text("<annotation><size>")
    gt = ground_truth_for_images(images, VOC_CLASSES)
    # 000001.xml (conftest): a dog 10,20,50,60 and a difficult person 1,1,100,80.
    assert gt.image_ids == [str(images[0])] and gt.invalid_ids == [str(images[1])]
    assert [f.path.rsplit("/", 1)[1] for f in gt.invalid] == ["000002.xml"]
    assert "not valid XML" in gt.invalid[0].reason
    assert gt.boxes.tolist() == [[10, 20, 50, 60], [1, 1, 100, 80]]
    assert gt.labels.tolist() == [DOG, VOC_CLASSES.index("person")] and gt.difficult.tolist() == [False, True]

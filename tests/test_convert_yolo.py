"""`vocli convert yolo`: hand-worked label lines, darknet byte-compatibility, lists, .data, bad files, re-runs."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from converters.voc_to_yolo import convert_yolo, label_path_for, read_data_file
from helpers import read_voc_plain, write_voc_xml
from vocli.cli.app import main
from vocli.datasets.voc import VOC_CLASSES
from vocli.errors import VocliError

DOG, PERSON, CAT = VOC_CLASSES.index("dog"), VOC_CLASSES.index("person"), VOC_CLASSES.index("cat")


def make_tree(root: Path, year: str = "2007", splits=None, files=None) -> Path:
    """A VOC tree with the given {id: (w, h, objects)} and {split: [ids]}."""
    voc = root / "VOCdevkit" / f"VOC{year}"
    for image_id, (w, h, objects) in files.items():
        write_voc_xml(voc / "Annotations" / f"{image_id}.xml", f"{image_id}.jpg", w, h, objects)
    main_dir = voc / "ImageSets" / "Main"
    main_dir.mkdir(parents=True, exist_ok=True)
    for split, ids in splits.items():
        (main_dir / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
    return root


def read_lines(path: Path) -> list[list[float]]:
    return [[float(v) for v in line.split()] for line in path.read_text().splitlines()]


HAND_FILES = {
    "a": (100, 80, [("dog", 10, 20, 50, 60, 0), ("person", 1, 1, 100, 80, 0), ("cat", 3, 3, 9, 9, 1)]),
    "b": (10, 10, [("cat", 5, 7, 5, 7, 0)]),  # a one-pixel box
}


@pytest.fixture
def hand_tree(tmp_path) -> Path:
    return make_tree(tmp_path, splits={"train": ["a"], "val": ["b"], "test": ["a", "b"]}, files=HAND_FILES)


def test_darknet_convention_hand_worked(hand_tree):
    result = convert_yolo(hand_tree, workers=1)
    assert result.ok and result.convention == "darknet"
    labels = hand_tree / "VOCdevkit" / "VOC2007" / "labels"
    # dog 10..50 x 20..60 in 100x80: centre (30 - 1, 40 - 1) = (29, 39) px, size (40, 40) px.
    # person 1..100 x 1..80 (touches every border): centre (49.5, 39.5), size (99, 79).
    # The difficult cat is skipped.
    expected = [[DOG, 0.29, 0.4875, 0.4, 0.5], [PERSON, 0.495, 0.49375, 0.99, 0.9875]]
    got = read_lines(labels / "a.txt")
    assert len(got) == 2
    for g, e in zip(got, expected):
        assert g == pytest.approx(e, abs=1e-12)
    # One pixel at (5, 7): centre (4, 6) / 10, width and height 0 in darknet's numbers;
    # 6 * (1 / 10) is 0.6000000000000001 in floats, and voc_label.py writes exactly that.
    assert read_lines(labels / "b.txt")[0] == pytest.approx([CAT, 0.4, 0.6, 0.0, 0.0], abs=1e-12)
    assert (labels / "b.txt").read_text() == f"{CAT} 0.4 0.6000000000000001 0.0 0.0\n"


def test_exact_pixels_convention_hand_worked(hand_tree):
    result = convert_yolo(hand_tree, exact_pixels=True, include_difficult=True, workers=1)
    assert result.convention == "exact"
    labels = hand_tree / "VOCdevkit" / "VOC2007" / "labels"
    # Box spans [xmin - 1, xmax]: dog [9, 50] x [19, 60], person the whole image, cat [2, 9]^2.
    expected = [[DOG, 29.5 / 100, 39.5 / 80, 41 / 100, 41 / 80], [PERSON, 0.5, 0.5, 1.0, 1.0],
                [CAT, 5.5 / 100, 5.5 / 80, 7 / 100, 7 / 80]]
    for g, e in zip(read_lines(labels / "a.txt"), expected, strict=True):
        assert g == pytest.approx(e, abs=1e-12)
    # One pixel at (5, 7) covers [4, 5] x [6, 7]: centre (4.5, 6.5), size one pixel.
    assert read_lines(labels / "b.txt")[0] == pytest.approx([CAT, 0.45, 0.65, 0.1, 0.1], abs=1e-12)


def test_lists_names_and_data_file(hand_tree):
    result = convert_yolo(hand_tree, workers=1)
    images = (hand_tree / "VOCdevkit" / "VOC2007" / "JPEGImages").resolve()
    a, b = str(images / "a.jpg"), str(images / "b.jpg")
    assert (hand_tree / "2007_train.txt").read_text().split() == [a]
    assert (hand_tree / "2007_test.txt").read_text().split() == [a, b]
    assert result.train_list.read_text().split() == [a, b]  # train + val
    assert result.test_list.read_text().split() == [a, b]
    assert result.train_all_list.read_text().split() == [a, b]  # deduplicated
    assert [s.name for s in result.sets] == ["2007/train", "2007/val", "2007/test"]
    assert [(s.images, s.objects) for s in result.sets] == [(1, 2), (1, 1), (2, 3)]
    data = read_data_file(result.data_file)
    assert data.classes == 20 and data.names == VOC_CLASSES
    assert data.train == result.train_list and data.valid == result.test_list
    assert (hand_tree / "voc.names").read_text().splitlines() == list(VOC_CLASSES)
    for line in result.train_list.read_text().split():
        assert label_path_for(line) == images.parent / "labels" / (Path(line).stem + ".txt")


def test_no_test_set_validates_on_val(hand_tree):
    result = convert_yolo(hand_tree, sets="2007/train,2007/val", workers=1)
    images = (hand_tree / "VOCdevkit" / "VOC2007" / "JPEGImages").resolve()
    assert result.test_list.read_text().split() == [str(images / "b.jpg")]
    assert result.train_list.read_text().split() == [str(images / "a.jpg")]
    assert result.notes


def voc_label_reference(xml_path: Path, classes=VOC_CLASSES) -> str:
    """darknet's voc_label.py rule, rewritten here with ElementTree: the expected bytes."""
    doc = read_voc_plain(xml_path)
    w, h = doc["width"], doc["height"]
    lines = []
    for obj in doc["objects"]:
        if obj["name"] not in classes or (obj["difficult"] is not None and int(obj["difficult"]) == 1):
            continue
        xmin, ymin, xmax, ymax = (float(v) for v in obj["box"])
        dw, dh = 1.0 / w, 1.0 / h
        values = (((xmin + xmax) / 2.0 - 1) * dw, ((ymin + ymax) / 2.0 - 1) * dh, (xmax - xmin) * dw,
                  (ymax - ymin) * dh)
        lines.append(str(classes.index(obj["name"])) + " " + " ".join(str(v) for v in values) + "\n")
    return "".join(lines)


def test_real_sample_matches_voc_label_bytes(voc_sample, tmp_path):
    root = tmp_path / "sample"
    shutil.copytree(voc_sample, root)
    result = convert_yolo(root, workers=2)
    assert result.ok
    checked = 0
    for s in result.sets:
        for image in s.list_file.read_text().split():
            image_id = Path(image).stem
            year = Path(image).parent.parent.name
            xml = root / "VOCdevkit" / year / "Annotations" / f"{image_id}.xml"
            assert label_path_for(image).read_text() == voc_label_reference(xml), image_id
            checked += 1
    assert checked == sum(s.images for s in result.sets) > 400


def test_reruns_are_cached_and_notice_changes(hand_tree):
    first = convert_yolo(hand_tree, workers=1)
    assert first.labels_written == 2 and first.labels_cached == 0
    second = convert_yolo(hand_tree, workers=1)
    assert second.labels_written == 0 and second.labels_cached == 2
    assert [(s.images, s.objects) for s in second.sets] == [(s.images, s.objects) for s in first.sets]
    voc = hand_tree / "VOCdevkit" / "VOC2007"
    write_voc_xml(voc / "Annotations" / "b.xml", "b.jpg", 10, 10, [("dog", 1, 1, 10, 10, 0)])
    os.utime(voc / "Annotations" / "b.xml", ns=(1, 1))  # a different mtime even on coarse clocks
    third = convert_yolo(hand_tree, workers=1)
    assert third.labels_written == 1 and third.labels_cached == 1
    assert read_lines(voc / "labels" / "b.txt")[0] == pytest.approx([DOG, 0.45, 0.45, 0.9, 0.9], abs=1e-12)
    # A run over fewer sets keeps the cache of the others.
    assert convert_yolo(hand_tree, sets="2007/val", workers=1).labels_cached == 1
    assert convert_yolo(hand_tree, workers=1).labels_cached == 2
    # Other options invalidate the cache; identical output is not rewritten.
    fourth = convert_yolo(hand_tree, include_difficult=True, workers=1)
    assert fourth.labels_cached == 0 and fourth.labels_written == 1 and fourth.labels_unchanged == 1


def test_labels_changed_by_hand_are_rewritten(hand_tree):
    assert convert_yolo(hand_tree, workers=1).labels_written == 2  # a first run: into a staging folder
    labels = hand_tree / "VOCdevkit" / "VOC2007" / "labels"
    good_a, good_b = (labels / "a.txt").read_bytes(), (labels / "b.txt").read_bytes()

    def edited(good: bytes) -> bytes:  # the last digit changed: same size, other bytes
        return good[:-2] + (b"8" if good[-2:-1] == b"9" else b"9") + b"\n"

    # Same size, other bytes, written after the run: its mtime is past the span the cache knows.
    (labels / "a.txt").write_bytes(edited(good_a))
    second = convert_yolo(hand_tree, workers=1)
    assert (second.labels_cached, second.labels_written) == (1, 1) and (labels / "a.txt").read_bytes() == good_a
    # Same size, other bytes, and an old mtime (a copy that kept its time): before the span.
    (labels / "b.txt").write_bytes(edited(good_b))
    os.utime(labels / "b.txt", ns=(1, 1))
    third = convert_yolo(hand_tree, workers=1)
    assert (third.labels_cached, third.labels_written) == (1, 1) and (labels / "b.txt").read_bytes() == good_b
    assert convert_yolo(hand_tree, workers=1).labels_cached == 2


def test_lists_name_the_image_the_annotation_names(tmp_path):
    files = {f"{i:03d}": (50, 40, [("dog", 1, 2, 20, 30, 0)]) for i in range(6)}
    root = make_tree(tmp_path, splits={"train": sorted(files)}, files=files)
    ann = root / "VOCdevkit" / "VOC2007" / "Annotations"
    write_voc_xml(ann / "001.xml", "001.png", 50, 40, [("dog", 1, 2, 20, 30, 0)])      # another extension
    write_voc_xml(ann / "004.xml", "elsewhere.jpg", 50, 40, [("dog", 1, 2, 20, 30, 0)])  # not this image: ignored
    images = root / "VOCdevkit" / "VOC2007" / "JPEGImages"
    expected = [f"{images}/{i}.png" if i == "001" else f"{images}/{i}.jpg" for i in sorted(files)]
    for run in range(2):  # the second from the cache
        result = convert_yolo(root, workers=1)
        assert result.labels_cached == (6 if run else 0)
        assert Path(result.train_list).read_text().split() == expected
        assert (root / "2007_train.txt").read_text().split() == expected


@pytest.mark.parametrize("damage", [b"", b"{not json", b'{"options": 1}\n', b"[]\n123", None])
def test_a_damaged_cache_only_costs_a_full_run(hand_tree, damage):
    from converters.label_cache import CACHE_NAME

    convert_yolo(hand_tree, workers=1)
    cache = hand_tree / "VOCdevkit" / "VOC2007" / "labels" / CACHE_NAME
    # None: the right header with its numbers cut short.
    cache.write_bytes(cache.read_bytes()[:-8] if damage is None else damage)
    again = convert_yolo(hand_tree, workers=1)
    assert (again.labels_cached, again.labels_unchanged, again.labels_written) == (0, 2, 0)
    assert convert_yolo(hand_tree, workers=1).labels_cached == 2  # the cache is whole again


def test_an_older_cache_file_is_replaced(hand_tree):
    from converters.label_cache import CACHE_NAME, OLD_CACHE_NAMES

    labels = hand_tree / "VOCdevkit" / "VOC2007" / "labels"
    labels.mkdir(parents=True)
    (labels / OLD_CACHE_NAMES[0]).write_text('{"options": {}, "entries": {}}')
    assert convert_yolo(hand_tree, workers=1).labels_written == 2
    assert sorted(p.name for p in labels.iterdir() if p.name.startswith(".")) == [CACHE_NAME]


def test_invalid_files_are_listed_and_the_rest_converted(tmp_path):
    files = {f"{i:03d}": (50, 50, [("dog", 1, 1, 20, 20, 0)]) for i in range(40)}
    root = make_tree(tmp_path, splits={"train": list(files) + ["missing", "broken", "alien", "nobox"]},
                     files=files)
    ann = root / "VOCdevkit" / "VOC2007" / "Annotations"
    (ann / "broken.xml").write_text("<annotation><size>")
    write_voc_xml(ann / "alien.xml", "alien.jpg", 50, 50, [("martian", 1, 1, 5, 5, 0)])
    (ann / "nobox.xml").write_text("<annotation><size><width>5</width><height>5</height></size>"
                                   "<object><name>dog</name></object></annotation>")
    result = convert_yolo(root, workers=2)
    reasons = {Path(i.path).stem: i.reason for i in result.invalid}
    assert set(reasons) == {"missing", "broken", "alien", "nobox"}
    assert "file not found" in reasons["missing"]
    assert "not valid XML" in reasons["broken"]
    assert "martian" in reasons["alien"]
    assert "bndbox" in reasons["nobox"]
    assert result.sets[0].images == 40 and result.labels_written == 40
    assert len(result.train_list.read_text().split()) == 40
    assert not (ann.parent / "labels" / "alien.txt").exists()


def test_files_left_to_the_checked_reading_keep_their_place(tmp_path):
    # One chunk of plain files, files the batch reader leaves to lxml (CRLF, a comment,
    # an entity in a name) and invalid ones: every label as voc_label.py would write it.
    files = {f"{i:03d}": (50, 40, [("dog", 1, 2, 20 + i % 5, 30, 0), ("cat", 3, 3, 9, 9, i % 3 == 0)])
             for i in range(30)}
    root = make_tree(tmp_path, splits={"train": sorted(files)}, files=files)
    ann = root / "VOCdevkit" / "VOC2007" / "Annotations"
    for image_id, edit in (("004", lambda t: t.replace("\n", "\r\n")),
                           ("011", lambda t: t.replace("<object>", "<!-- note --><object>", 1)),
                           ("017", lambda t: t.replace("<name>cat</name>", "<name>c&#97;t</name>")),
                           ("023", lambda t: t.replace("<xmin>1</xmin>", "<xmin>x</xmin>"))):
        path = ann / f"{image_id}.xml"
        path.write_bytes(edit(path.read_text()).encode())
    result = convert_yolo(root, workers=1)
    assert [Path(i.path).stem for i in result.invalid] == ["023"]
    labels = root / "VOCdevkit" / "VOC2007" / "labels"
    for image_id in sorted(files):
        if image_id != "023":
            assert (labels / f"{image_id}.txt").read_text() == voc_label_reference(ann / f"{image_id}.xml"), image_id
    assert result.sets[0].objects == sum(1 + (i % 3 != 0) for i in range(30) if i != 23)


def test_a_chunk_with_no_plain_file(tmp_path):
    files = {f"{i:03d}": (50, 40, [("dog", 1, 2, 20, 30, 0), ("cat", 3, 3, 9, 9, i % 2)]) for i in range(5)}
    root = make_tree(tmp_path, splits={"train": sorted(files)}, files=files)
    ann = root / "VOCdevkit" / "VOC2007" / "Annotations"
    for path in ann.iterdir():
        path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))  # CR: all read by lxml
    result = convert_yolo(root, workers=1)
    assert result.ok and result.sets[0].objects == 8
    for image_id in files:
        label = root / "VOCdevkit" / "VOC2007" / "labels" / f"{image_id}.txt"
        assert label.read_text() == voc_label_reference(ann / f"{image_id}.xml")


def test_workers_give_identical_output(voc_sample, tmp_path):
    outputs = []
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        convert_yolo(voc_sample, out=out, workers=workers)
        files = sorted(p for p in out.rglob("*.txt") if not p.name.startswith("."))
        outputs.append({str(p.relative_to(out)): p.read_text().replace(str(out.resolve()), "OUT") for p in files})
    assert len(outputs[0]) > 400 and outputs[0] == outputs[1]


def test_out_folder_links_images_and_keeps_label_rule(hand_tree, tmp_path):
    out = tmp_path / "yolo"
    result = convert_yolo(hand_tree, out=out, workers=1)
    assert result.data_file == out.resolve() / "voc.data"
    assert not (hand_tree / "VOCdevkit" / "VOC2007" / "labels").exists()
    link = out / "VOC2007" / "JPEGImages"
    assert link.is_symlink() and link.resolve() == (hand_tree / "VOCdevkit" / "VOC2007" / "JPEGImages").resolve()
    for line in result.train_all_list.read_text().split():
        assert line.startswith(str(out.resolve()))
        assert label_path_for(line).is_file()
    convert_yolo(hand_tree, out=out, workers=1)  # the existing link is reused


def test_custom_classes_and_discovered_sets(tmp_path):
    root = make_tree(tmp_path, year="shapes", splits={"train": ["s1"], "test": ["s2"]},
                     files={"s1": (64, 64, [("star", 1, 1, 32, 32, 0)]),
                            "s2": (64, 64, [("circle", 33, 33, 64, 64, 0)])})
    names = tmp_path / "shapes.names"
    names.write_text("circle\nstar\n")
    result = convert_yolo(root, classes=names, workers=1)
    assert [s.name for s in result.sets] == ["shapes/train", "shapes/test"]
    assert result.data_file.name == "shapes.data" and result.names_file.name == "shapes.names"
    labels = root / "VOCdevkit" / "VOCshapes" / "labels"
    assert read_lines(labels / "s1.txt")[0][0] == 1 and read_lines(labels / "s2.txt")[0][0] == 0
    data = read_data_file(result.data_file)
    assert data.classes == 2 and data.names == ("circle", "star")
    # Without the class list every object is an unknown class, named in the reason.
    plain = convert_yolo(root, workers=1)
    assert {"star", "circle"} == {i.reason.split("'")[1] for i in plain.invalid}


def test_label_path_for():
    assert label_path_for("/d/VOC2007/JPEGImages/x.jpg") == Path("/d/VOC2007/labels/x.txt")
    assert label_path_for("/JPEGImages/d/JPEGImages/x.png") == Path("/JPEGImages/d/labels/x.txt")
    assert label_path_for("/data/images/train/x.jpg") == Path("/data/labels/train/x.txt")
    assert label_path_for("/data/x.jpg") == Path("/data/x.txt")


def test_read_data_file_relative_paths_and_errors(tmp_path):
    (tmp_path / "my.names").write_text("a\nb\n")
    data_file = tmp_path / "my.data"
    data_file.write_text("# comment\nclasses= 2\ntrain  = lists/train.txt\nvalid = /abs/test.txt\nnames = my.names\n")
    data = read_data_file(data_file)
    assert data.train == tmp_path / "lists" / "train.txt"
    assert data.valid == Path("/abs/test.txt")
    assert data.backup == tmp_path / "backup" and data.names == ("a", "b")
    data_file.write_text("classes = 3\ntrain = t.txt\nnames = my.names\n")
    with pytest.raises(VocliError, match="lists 2 names"):
        read_data_file(data_file)
    data_file.write_text("classes = 2\nnames = my.names\n")
    with pytest.raises(VocliError, match="missing train"):
        read_data_file(data_file)
    with pytest.raises(VocliError, match="not found"):
        read_data_file(tmp_path / "nope.data")


def test_cli_json_and_exit_codes(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("VOCLI_HOME", str(tmp_path / "home"))
    root = make_tree(tmp_path / "home" / "data", splits={"train": ["a", "bad"]},
                     files={"a": (10, 10, [("dog", 1, 1, 10, 10, 0)])})
    (root / "VOCdevkit" / "VOC2007" / "Annotations" / "bad.xml").write_text("not xml")
    assert main(["convert", "yolo", "--json", "--workers", "1"]) == 1
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert doc["invalid"][0]["path"].endswith("bad.xml") and doc["sets"][0]["images"] == 1
    assert "bad.xml" in captured.err and "--skip-invalid" in captured.err
    assert main(["convert", "yolo", "--skip-invalid", "--exact-pixels", "--workers", "1"]) == 0
    assert read_lines(root / "VOCdevkit" / "VOC2007" / "labels" / "a.txt") == [[DOG, 0.5, 0.5, 1.0, 1.0]]
    assert main(["convert", "yolo", "--workers", "0"]) == 2


def test_interrupted_first_run_leaves_no_labels(hand_tree, monkeypatch):
    import converters.voc_to_yolo as voc_to_yolo

    calls = []

    def interrupt_after_first(names, datas, folder):
        real(names[:1], datas[:1], folder)
        calls.append(names[0])
        raise KeyboardInterrupt

    real = voc_to_yolo.write_new_files
    monkeypatch.setattr(voc_to_yolo, "write_new_files", interrupt_after_first)
    with pytest.raises(KeyboardInterrupt):
        convert_yolo(hand_tree, workers=1)
    voc = hand_tree / "VOCdevkit" / "VOC2007"
    # The first label was written, but into a staging folder that is gone now.
    assert len(calls) == 1 and not (voc / "labels").exists()
    assert sorted(p.name for p in voc.iterdir()) == ["Annotations", "ImageSets"]
    monkeypatch.setattr(voc_to_yolo, "write_new_files", real)
    assert convert_yolo(hand_tree, workers=1).labels_written == 2


def test_class_list_carried_by_the_dataset_is_the_default(tmp_path):
    from vocli.datasets.shapes import SHAPES_CLASSES, generate_shapes

    generate_shapes(tmp_path, images=12, size=64, seed=1)
    voc = tmp_path / "VOCdevkit" / "VOCshapes"
    assert (voc / "classes.txt").read_text().split() == list(SHAPES_CLASSES)
    result = convert_yolo(tmp_path, sets="shapes/trainval,shapes/test", workers=1)
    assert result.ok and result.classes == SHAPES_CLASSES
    assert result.names_file.name == "shapes.names" and result.data_file.name == "shapes.data"
    assert sum(s.objects for s in result.sets) > 0
    # A second folder without a list: the default is ambiguous, said in one line.
    make_tree(tmp_path, splits={"test": ["a"]}, files={"a": (10, 10, [("dog", 1, 1, 10, 10, 0)])})
    with pytest.raises(VocliError, match="VOCshapes carry classes.txt but VOC2007 do not"):
        convert_yolo(tmp_path, sets="shapes/test,2007/test", workers=1)


def test_many_invalid_files_are_summed_up_by_reason(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("VOCLI_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "400")  # no folded paths
    files = {f"{i:03d}": (10, 10, [("unicorn" if i % 3 else "griffin", 1, 1, 10, 10, 0)]) for i in range(30)}
    make_tree(tmp_path / "home" / "data", splits={"train": sorted(files)}, files=files)
    assert main(["convert", "yolo", "--workers", "1"]) == 1
    err = capsys.readouterr().err
    assert "30 invalid file(s), left out, for 2 reason(s)" in err
    assert "unknown class 'unicorn'" in err and "unknown class 'griffin'" in err
    assert err.count("Annotations/") == 2  # one example file per reason, not thirty rows


def test_missing_images_are_reported_per_set_with_the_first_files(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("VOCLI_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "80")
    files = {f"{i:03d}": (10, 10, [("dog", 1, 1, 10, 10, 0)]) for i in range(8)}
    root = tmp_path / "home" / "data"
    make_tree(root, splits={"train": ["000", "001", "002", "003"], "val": ["004", "005"], "test": ["006", "007"]},
              files=files)
    jpgs = root / "VOCdevkit" / "VOC2007" / "JPEGImages"
    jpgs.mkdir()
    for stem in ("000", "002", "004", "006"):  # 001, 003, 005, 007 have no image
        (jpgs / f"{stem}.jpg").write_bytes(b"")
    result = convert_yolo(root, workers=1)
    assert result.missing_images == 4
    assert {s.name: s.missing_images for s in result.sets} == {"2007/train": 2, "2007/val": 1, "2007/test": 1}
    assert result.missing_image_files == [str(jpgs / f"{s}.jpg") for s in ("001", "003", "005", "007")]
    assert main(["convert", "yolo", "--workers", "1"]) == 0  # reported, not fatal: the lists keep them
    err = capsys.readouterr().err
    assert "warning: 4 listed image(s) missing (kept in the lists; `vocli train` needs them); the first:" in err
    assert f"  {jpgs / '001.jpg'}" in err.splitlines()
    assert re.search(r"^2007/train\s+4\s+4\s+2\s+2007_train\.txt\s*$", err, re.M)

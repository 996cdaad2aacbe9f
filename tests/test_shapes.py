"""The synthetic VOC-layout shapes dataset: determinism, VOC schema, boxes, flags, splits, atomicity."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vocli.datasets.shapes import SHAPES_CLASSES, generate_shapes
from vocli.errors import VocliError
from vocli.datasets.voc import parse_annotation, resolve_sets

from helpers import read_voc_plain

SIZE = 128


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("shapes")
    generate_shapes(root, images=160, size=SIZE, seed=3)
    return root / "VOCdevkit" / "VOCshapes"


def _objects(xml_path: Path) -> list[dict]:
    """Independent reader: plain ElementTree, every field as written."""
    return read_voc_plain(xml_path)["objects"]


def _tree_bytes(voc: Path) -> dict[str, bytes]:
    return {str(p.relative_to(voc)): p.read_bytes() for p in sorted(voc.rglob("*")) if p.is_file()}


def test_same_seed_is_byte_identical_and_other_seed_differs(tmp_path):
    a = generate_shapes(tmp_path / "a", images=12, size=96, seed=7)
    b = generate_shapes(tmp_path / "b", images=12, size=96, seed=7)
    c = generate_shapes(tmp_path / "c", images=12, size=96, seed=8)
    ta, tb, tc = _tree_bytes(a.root), _tree_bytes(b.root), _tree_bytes(c.root)
    assert ta == tb  # XML, lists and JPEG bytes
    assert len([k for k in ta if k.endswith(".xml")]) == 12
    differing = [k for k in ta if k.endswith(".xml") and ta[k] != tc[k]]
    assert len(differing) >= 10


def test_image_i_does_not_depend_on_dataset_length(tmp_path):
    small = generate_shapes(tmp_path / "s", images=3, size=96, seed=1)
    large = generate_shapes(tmp_path / "l", images=6, size=96, seed=1)
    for i in ("000001", "000002", "000003"):
        assert (small.root / "Annotations" / f"{i}.xml").read_bytes() == \
               (large.root / "Annotations" / f"{i}.xml").read_bytes()


def test_schema_matches_real_voc_files(dataset):
    xml = (dataset / "Annotations" / "000001.xml").read_text()
    root = ET.fromstring(xml)
    assert [c.tag for c in root] [:6] == ["folder", "filename", "source", "size", "segmented", "object"]
    assert root.findtext("folder") == "VOCshapes" and root.findtext("filename") == "000001.jpg"
    assert [c.tag for c in root.find("size")] == ["width", "height", "depth"]
    obj = root.find("object")
    assert [c.tag for c in obj] == ["name", "pose", "truncated", "difficult", "bndbox"]
    assert [c.tag for c in obj.find("bndbox")] == ["xmin", "ymin", "xmax", "ymax"]
    # Formatting as in VOC2007: tab indentation, one element per line, trailing newline.
    assert xml.startswith("<annotation>\n\t<folder>") and xml.endswith("</annotation>\n")


def test_every_object_inside_its_image_and_parses(dataset):
    xmls = sorted((dataset / "Annotations").glob("*.xml"))
    assert len(xmls) == 160
    counts = []
    for path in xmls:
        doc = read_voc_plain(path)
        w, h = doc["width"], doc["height"]
        with Image.open(dataset / "JPEGImages" / doc["filename"]) as im:
            assert im.size == (w, h) == (SIZE, SIZE) and im.mode == "RGB"
        objs = _objects(path)
        counts.append(len(objs))
        for o in objs:
            assert all(v.isdigit() for v in o["box"]), o  # integer pixel coordinates
            x1, y1, x2, y2 = map(int, o["box"])
            assert 1 <= x1 < x2 <= w and 1 <= y1 < y2 <= h
            assert o["name"] in SHAPES_CLASSES and o["difficult"] in "01" and o["truncated"] in "01"
        ann = parse_annotation(path, classes=SHAPES_CLASSES)
        assert len(ann.objects) == len(objs)
        assert ann.boxes().tolist() == [[float(v) for v in o["box"]] for o in objs]
    assert min(counts) >= 1 and max(counts) <= 6
    assert np.mean(counts) > 2


def test_class_balance_and_box_sizes(dataset):
    names, longest = [], []
    for path in (dataset / "Annotations").glob("*.xml"):
        for o in _objects(path):
            names.append(o["name"])
            x1, y1, x2, y2 = map(int, o["box"])
            longest.append(max(x2 - x1 + 1, y2 - y1 + 1) / SIZE)
    shares = {c: n / len(names) for c, n in Counter(names).items()}
    assert set(shares) == set(SHAPES_CLASSES)
    assert all(0.17 <= s <= 0.33 for s in shares.values()), shares
    # Learnable at 160 px: most boxes span at least ~12 % of the image side.
    assert np.mean(np.array(longest) >= 0.12) > 0.8


def test_difficult_marks_tiny_and_truncated_touches_border(dataset):
    difficult = truncated = 0
    for path in (dataset / "Annotations").glob("*.xml"):
        for o in _objects(path):
            x1, y1, x2, y2 = map(int, o["box"])
            longest = max(x2 - x1 + 1, y2 - y1 + 1)
            if o["difficult"] == "1":
                difficult += 1
                assert longest < 0.1 * SIZE
            if longest < 0.06 * SIZE:
                assert o["difficult"] == "1"
            if o["truncated"] == "1":
                truncated += 1
                assert x1 == 1 or y1 == 1 or x2 == SIZE or y2 == SIZE
    assert difficult >= 3 and truncated >= 5


def test_splits_disjoint_and_complete(dataset):
    main = dataset / "ImageSets" / "Main"
    lists = {s: (main / f"{s}.txt").read_text().split() for s in ("train", "val", "trainval", "test")}
    train, val, test = set(lists["train"]), set(lists["val"]), set(lists["test"])
    assert not (train & val) and not (train & test) and not (val & test)
    assert set(lists["trainval"]) == train | val
    all_ids = {p.stem for p in (dataset / "Annotations").glob("*.xml")}
    assert train | val | test == all_ids
    assert len(test) >= 0.3 * len(all_ids) and len(val) >= 1
    assert all(lst == sorted(lst) for lst in lists.values())
    # The splits are usable as VOC sets by the shared reader.
    sets = resolve_sets(dataset.parent.parent, "shapes/train,shapes/test")
    assert [len(s.ids()) for s in sets] == [len(train), len(test)]


def test_result_describes_the_tree(tmp_path):
    result = generate_shapes(tmp_path, images=20, size=96, seed=0)
    names = [o["name"] for p in (result.root / "Annotations").glob("*.xml") for o in _objects(p)]
    assert result.root == tmp_path / "VOCdevkit" / "VOCshapes"
    assert result.objects == len(names)
    assert result.objects_per_class == {c: names.count(c) for c in SHAPES_CLASSES}
    assert result.splits == {s: len((result.root / "ImageSets" / "Main" / f"{s}.txt").read_text().split())
                             for s in ("train", "val", "trainval", "test")}
    assert result.classes == SHAPES_CLASSES and result.sets[0] == "shapes/train"


def test_interrupted_generation_leaves_nothing_and_keeps_old(tmp_path):
    old = generate_shapes(tmp_path, images=4, size=64, seed=0)
    before = _tree_bytes(old.root)
    calls = []

    def progress(n):
        calls.append(n)
        if len(calls) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate_shapes(tmp_path, images=10, size=64, seed=5, progress=progress)
    devkit = tmp_path / "VOCdevkit"
    assert [p.name for p in devkit.iterdir()] == ["VOCshapes"]  # no temp folders left
    assert _tree_bytes(old.root) == before
    # A completed run replaces the old tree.
    new = generate_shapes(tmp_path, images=5, size=64, seed=5)
    assert len(list((new.root / "Annotations").glob("*.xml"))) == 5
    assert [p.name for p in devkit.iterdir()] == ["VOCshapes"]


def test_bad_arguments():
    with pytest.raises(VocliError):
        generate_shapes("/nonexistent-never-written", images=0)
    with pytest.raises(VocliError):
        generate_shapes("/nonexistent-never-written", size=8)

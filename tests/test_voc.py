
import numpy as np
import pytest
from PIL import Image

from helpers import read_voc_plain, write_voc_xml
from vocli.datasets.voc import (VOC_CLASSES, devkit_dir, discover_sets, parse_annotation,
                                parse_annotation_bytes, read_classes, resolve_sets)
from vocli.errors import AnnotationError, DatasetNotFoundError, UnknownClassError


def test_parse_good_file(tiny_voc):
    ann = parse_annotation(tiny_voc / "VOCdevkit/VOC2007/Annotations/000001.xml", classes=VOC_CLASSES)
    assert (ann.filename, ann.width, ann.height, ann.depth) == ("000001.jpg", 100, 80, 3)
    assert ann.image_id == "000001"
    assert [o.name for o in ann.objects] == ["dog", "person"]
    np.testing.assert_array_equal(ann.boxes(), [[10, 20, 50, 60], [1, 1, 100, 80]])
    np.testing.assert_array_equal(ann.boxes(include_difficult=False), [[10, 20, 50, 60]])
    np.testing.assert_array_equal(ann.labels(), [VOC_CLASSES.index("dog"), VOC_CLASSES.index("person")])
    np.testing.assert_array_equal(ann.difficult(), [False, True])


def test_decimal_coordinates_parse():
    xml = (b"<annotation><filename>a.jpg</filename><size><width>500</width><height>375</height>"
           b"<depth>3</depth></size><object><name>car</name><bndbox><xmin>10.5</xmin><ymin>2.25</ymin>"
           b"<xmax>100.75</xmax><ymax>50</ymax></bndbox></object></annotation>")
    ann = parse_annotation_bytes(xml, "a.xml")
    assert ann.objects[0].bbox == (10.5, 2.25, 100.75, 50.0)
    assert ann.objects[0].difficult is False and ann.objects[0].pose == "Unspecified"


def test_parts_and_owner_names_are_not_objects():
    xml = (b"<annotation><filename>a.jpg</filename><owner><name>Someone</name></owner>"
           b"<size><width>50</width><height>50</height><depth>3</depth></size>"
           b"<object><name>person</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>40</xmax><ymax>40</ymax>"
           b"</bndbox><part><name>hand</name><bndbox><xmin>2</xmin><ymin>2</ymin><xmax>5</xmax><ymax>5</ymax>"
           b"</bndbox></part></object></annotation>")
    ann = parse_annotation_bytes(xml, "a.xml", classes=VOC_CLASSES)
    assert [o.name for o in ann.objects] == ["person"]


@pytest.mark.parametrize("body, reason", [
    (b"not xml at all", "not valid XML"),
    (b"", "not valid XML"),
    (b"<foo/>", "expected <annotation>"),
    (b"<annotation><filename>a.jpg</filename></annotation>", "missing <size>"),
    (b"<annotation><size><width>10</width><depth>3</depth></size></annotation>", "missing <height>"),
    (b"<annotation><size><width>ten</width><height>10</height></size></annotation>", "not a number"),
    (b"<annotation><size><width>50</width><height>50</height></size><object><name>dog</name></object></annotation>",
     "has no <bndbox>"),
    (b"<annotation><size><width>50</width><height>50</height></size><object><name>dog</name><bndbox>"
     b"<xmin>1</xmin><ymin>1</ymin><xmax>5</xmax></bndbox></object></annotation>", "missing <ymax>"),
    (b"<annotation><size><width>50</width><height>50</height></size><object><name>dog</name><bndbox>"
     b"<xmin>1</xmin><ymin>1</ymin><xmax>x5</xmax><ymax>5</ymax></bndbox></object></annotation>", "not a number"),
    (b"<annotation><size><width>50</width><height>50</height></size><object><name>dog</name><bndbox>"
     b"<xmin>30</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax></bndbox></object></annotation>", "inverted"),
    (b"<annotation><size><width>50</width><height>50</height></size><object><name>dog</name><bndbox>"
     b"<xmin>1</xmin><ymin>1</ymin><xmax>51</xmax><ymax>5</ymax></bndbox></object></annotation>", "outside"),
])
def test_broken_files_name_file_and_reason(tmp_path, body, reason):
    path = tmp_path / "bad.xml"
    path.write_bytes(body)
    with pytest.raises(AnnotationError) as err:
        parse_annotation(path)
    assert str(path) in str(err.value)
    assert reason in str(err.value)


def test_unknown_class_lists_known_classes(tiny_voc):
    path = write_voc_xml(tiny_voc / "x.xml", "x.jpg", 10, 10, [("unicorn", 1, 1, 5, 5, 0)])
    with pytest.raises(UnknownClassError) as err:
        parse_annotation(path, classes=VOC_CLASSES)
    assert "unicorn" in str(err.value) and "aeroplane" in str(err.value) and str(path) in str(err.value)


def test_entities_are_not_expanded(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET")
    xml = (f'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file://{secret}">]>'
           f"<annotation><filename>&x;</filename><size><width>5</width><height>5</height></size></annotation>")
    path = tmp_path / "xxe.xml"
    path.write_text(xml)
    try:
        ann = parse_annotation(path)
    except AnnotationError:
        return  # refusing the file is fine too
    assert "TOPSECRET" not in ann.filename


def test_zero_size_falls_back_to_jpeg_header(tmp_path):
    voc = tmp_path / "VOC2012"
    (voc / "JPEGImages").mkdir(parents=True)
    Image.new("RGB", (37, 21)).save(voc / "JPEGImages" / "z.jpg")
    path = write_voc_xml(voc / "Annotations" / "z.xml", "z.jpg", 0, 0, [("dog", 1, 1, 30, 20, 0)])
    ann = parse_annotation(path)
    assert (ann.width, ann.height) == (37, 21)


def test_zero_size_without_image_is_an_error(tmp_path):
    path = write_voc_xml(tmp_path / "Annotations" / "z.xml", "z.jpg", 0, 0, [])
    with pytest.raises(AnnotationError, match="size is 0x0"):
        parse_annotation(path)


def test_sets_resolution(tiny_voc):
    assert devkit_dir(tiny_voc) == tiny_voc / "VOCdevkit"
    assert devkit_dir(tiny_voc / "VOCdevkit") == tiny_voc / "VOCdevkit"
    default = resolve_sets(tiny_voc)
    assert [s.name for s in default] == ["2007/train", "2007/val", "2007/test"]
    assert [s.name for s in discover_sets(tiny_voc)] == ["2007/train", "2007/val", "2007/trainval", "2007/test"]
    (trainval,) = resolve_sets(tiny_voc, "2007/trainval")
    assert trainval.ids() == ["000001", "000002"]
    assert trainval.image_path("000001").name == "000001.jpg"
    with pytest.raises(DatasetNotFoundError, match="2012/train"):
        resolve_sets(tiny_voc, "2012/train")
    with pytest.raises(DatasetNotFoundError, match="bad set name"):
        resolve_sets(tiny_voc, "2007")
    with pytest.raises(DatasetNotFoundError, match="no VOCdevkit"):
        devkit_dir(tiny_voc / "VOCdevkit" / "VOC2007" / "Annotations")


def test_non_standard_year_discovered(tmp_path):
    voc = tmp_path / "VOCdevkit" / "VOCshapes"
    write_voc_xml(voc / "Annotations" / "a.xml", "a.jpg", 10, 10, [])
    (voc / "ImageSets" / "Main").mkdir(parents=True)
    (voc / "ImageSets" / "Main" / "trainval.txt").write_text("a\n")
    assert [s.name for s in resolve_sets(tmp_path)] == ["shapes/trainval"]


def test_read_classes(tmp_path):
    (tmp_path / "c.names").write_text("a\nb\n\n")
    assert read_classes(tmp_path / "c.names") == ("a", "b")
    (tmp_path / "d.names").write_text("a\na\n")
    with pytest.raises(DatasetNotFoundError, match="duplicate"):
        read_classes(tmp_path / "d.names")


def test_real_sample_matches_independent_reader(voc_sample):
    """Every real annotation parses, and agrees with a plain ElementTree reading."""
    files = sorted((voc_sample / "VOCdevkit").glob("VOC*/Annotations/*.xml"))
    assert len(files) == 455
    total = 0
    for path in files:
        ann = parse_annotation(path, classes=VOC_CLASSES)
        doc = read_voc_plain(path)
        expected = [(o["name"], *map(float, o["box"]), o["difficult"] is not None and int(o["difficult"]) == 1)
                    for o in doc["objects"]]
        got = [(o.name, o.xmin, o.ymin, o.xmax, o.ymax, o.difficult) for o in ann.objects]
        assert got == expected, path
        assert ann.width == doc["width"]
        total += len(got)
    assert total == 1295


def test_real_sample_splits(voc_sample):
    sets = resolve_sets(voc_sample, "2007/trainval,2007/test,2012/trainval")
    assert [len(s.ids()) for s in sets] == [200, 105, 150]

"""The plain-file scan must read exactly what the checked lxml path reads, or decline.

Differential tests: real VOC files, generated shapes files, hand-made edge cases and a
seeded fuzz of mutated files. Whenever ``scan_plain_annotation`` returns a result, the
checked path (lxml, field by field) must accept the same bytes and give the same fields;
whenever the checked path rejects a file, the scan must have declined it.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from vocli.datasets.shapes import generate_shapes
from vocli.datasets.voc import VOC_CLASSES, _parse_annotation_checked, scan_plain_annotation
from vocli.errors import AnnotationError

PLAIN = (b'<?xml version="1.0" encoding="utf-8"?>\n<annotation>\n\t<folder>VOC2012</folder>\n'
         b"\t<filename>2008_000001.jpg</filename>\n\t<source><database>x</database><annotation>PASCAL"
         b"</annotation></source>\n\t<owner><name>Someone</name></owner>\n"
         b"\t<size>\n\t\t<width>500</width>\n\t\t<height>375</height>\n\t\t<depth>3</depth>\n\t</size>\n"
         b"\t<segmented>0</segmented>\n"
         b"\t<object>\n\t\t<name>person</name>\n\t\t<pose>Left</pose>\n\t\t<truncated>1</truncated>\n"
         b"\t\t<occluded>0</occluded>\n\t\t<difficult>0</difficult>\n\t\t<bndbox>\n\t\t\t<xmin>10</xmin>\n"
         b"\t\t\t<ymin>20.5</ymin>\n\t\t\t<xmax>300</xmax>\n\t\t\t<ymax>375</ymax>\n\t\t</bndbox>\n"
         b"\t\t<part>\n\t\t\t<name>head</name>\n\t\t\t<bndbox>\n\t\t\t\t<xmin>12</xmin>\n\t\t\t\t<ymin>22</ymin>"
         b"\n\t\t\t\t<xmax>40</xmax>\n\t\t\t\t<ymax>50</ymax>\n\t\t\t</bndbox>\n\t\t</part>\n"
         b"\t\t<actions><jumping>0</jumping><other>1</other></actions>\n\t</object>\n"
         b"\t<object>\n\t\t<name>dog</name>\n\t\t<difficult>1</difficult>\n\t\t<bndbox><xmin>1</xmin>"
         b"<ymin>1</ymin><xmax>500</xmax><ymax>2</ymax></bndbox>\n\t</object>\n</annotation>\n")


def checked(data: bytes, classes=VOC_CLASSES):
    """The lxml reading as a comparable tuple, or the error."""
    try:
        ann = _parse_annotation_checked(data, Path("x/Annotations/a.xml"), classes, None)
    except AnnotationError as err:
        return err
    return (ann.filename, ann.width, ann.height, ann.depth,
            [(o.name, o.xmin, o.ymin, o.xmax, o.ymax, o.difficult, o.truncated, o.pose) for o in ann.objects])


def agrees(data: bytes, classes=VOC_CLASSES) -> bool:
    """True when the scan took the file (after checking it agrees); False when it declined."""
    plain = scan_plain_annotation(data, classes)
    if plain is None:
        return False
    expected = checked(data, classes)
    assert not isinstance(expected, Exception), (data, expected)
    filename, width, height, depth, objects = plain
    assert (filename or "a.jpg", width, height, depth, objects) == expected, data
    return True


def test_plain_file_read_field_by_field():
    filename, width, height, depth, objects = scan_plain_annotation(PLAIN, VOC_CLASSES)
    assert (filename, width, height, depth) == ("2008_000001.jpg", 500, 375, 3)
    # The part's <name>head</name> and the owner's <name> are not objects or object names.
    assert objects == [("person", 10.0, 20.5, 300.0, 375.0, False, True, "Left"),
                       ("dog", 1.0, 1.0, 500.0, 2.0, True, False, "Unspecified")]
    assert agrees(PLAIN)


@pytest.mark.parametrize("edit", [
    (b"<object>", b"<!-- c --><object>"),                     # comment
    (b"<name>dog</name>", b"<name>d&#111;g</name>"),           # character reference
    (b"<segmented>0</segmented>", b"<segmented/>"),            # empty-element tag
    (b"<folder>", b'<folder id="1">'),                         # attribute
    (b"<name>dog</name>", b"<name><![CDATA[dog]]></name>"),    # CDATA
    (b"</annotation>", b"</annotation><?pi x?>"),              # processing instruction
    (b"<name>dog</name>", "<name>dög</name>".encode()),        # not ASCII
    (b'encoding="utf-8"', b'encoding="utf-16"'),               # other encoding
    (b"<difficult>1</difficult>", b"<difficult>yes</difficult>"),
    (b"<difficult>1</difficult>", b"<difficult>1.0</difficult>"),
    (b"<name>dog</name>", b"<name>unicorn</name>"),            # unknown class
    (b"<xmax>500</xmax><ymax>2</ymax>", b"<xmax>501</xmax><ymax>2</ymax>"),  # outside the image
    (b"<width>500</width>", b"<width>0</width>"),              # size from the image
    (b"<width>500</width>", b"<width>500.5</width>"),
    (b"<depth>3</depth>", b"<depth>3.0</depth>"),
    (b"<name>dog</name>\n\t\t<difficult>1</difficult>", b"<difficult>1</difficult>"),  # no name
    (b"<ymax>2</ymax></bndbox>", b"</bndbox>"),                # no ymax
    (b"</object>\n</annotation>", b"</object>\n</annotatio>"),  # not well-formed
    (b"<object>\n\t\t<name>dog", b"<extra><object>\n\t\t<name>dog"),  # object not a child of the root
    (b"<xmin>1</xmin>", b"<xmin>1</xmin><xmin>7</xmin>"),      # box fields not xmin, ymin, xmax, ymax
    (b"<name>person</name>", b"<name><b>person</b></name>"),    # a field with children
])
def test_scan_declines_what_it_cannot_read_exactly(edit):
    old, new = edit
    assert old in PLAIN
    data = PLAIN.replace(old, new, 1)
    assert scan_plain_annotation(data, VOC_CLASSES) is None


@pytest.mark.parametrize("edit", [
    (b"<annotation>\n\t<folder>", b"\r\n<annotation>\r\n\t<folder>"),           # CRLF
    (b'<?xml version="1.0" encoding="utf-8"?>', b""),                           # no declaration
    (b'<?xml version="1.0" encoding="utf-8"?>', b"<?xml version='1.0'?>"),
    (b"<pose>Left</pose>", b"<pose>  </pose>"),                                  # blank pose
    (b"<filename>2008_000001.jpg</filename>", b""),                              # no filename
    (b"<difficult>1</difficult>", b"<difficult> 1 </difficult><difficult>0</difficult>"),
    (b"<name>dog</name>", b"<name> dog </name><name>cat</name>"),               # first one wins
])
def test_scan_reads_variants_like_the_checked_path(edit):
    old, new = edit
    assert agrees(PLAIN.replace(old, new, 1))


ACTION_OBJECT = (b"<annotation><filename>2011_000001.jpg</filename><size><width>500</width><height>400</height>"
                 b"<depth>3</depth></size><segmented>0</segmented><object><name>person</name>"
                 b"<actions><jumping>0</jumping><phoning>1</phoning><other>0</other></actions>"
                 b"<bndbox><xmin>10</xmin><ymin>20</ymin><xmax>200</xmax><ymax>390</ymax></bndbox>"
                 b"<point><x>100</x><y>50</y></point><pose>Frontal</pose><truncated>1</truncated>"
                 b"<difficult>1</difficult></object></annotation>")


def test_action_layout_objects_take_the_plain_path():
    # VOC 2012's action images: <actions> and <point> around the box, fields after it.
    assert agrees(ACTION_OBJECT)
    assert scan_plain_annotation(ACTION_OBJECT, VOC_CLASSES)[4] == [
        ("person", 10.0, 20.0, 200.0, 390.0, True, True, "Frontal")]


def test_real_sample_files_agree(voc_sample):
    files = sorted(voc_sample.glob("VOCdevkit/*/Annotations/*.xml"))
    taken = sum(agrees(f.read_bytes(), classes=None) for f in files)
    # Every real file is plain: the fast path is the normal path, not an exception.
    assert taken == len(files) > 400


def test_generated_shapes_files_agree(tmp_path):
    generate_shapes(tmp_path, images=40, size=96, seed=3)
    files = sorted(tmp_path.rglob("Annotations/*.xml"))
    assert files and all(agrees(f.read_bytes(), classes=None) for f in files)


SNIPPETS = [b"<!-- c -->", b"&amp;", b"&#60;", b"<x/>", b"<name>cat</name>", b"</object>", b"<object>",
            b"<part><name>z</name></part>", b' a="1"', b"\r\n", b"\r", b"<![CDATA[x]]>", b"<?pi x?>", b"\x01",
            "é".encode(), b"<difficult>1</difficult>", b"<bndbox>", b"</bndbox>", b" ", b"\t", b"7", b"-", b".5",
            b"<", b">", b"]]>", b"<size><width>9</width><height>9</height></size>", b"<filename>b.png</filename>",
            b"<truncated>1</truncated>", b"<pose>Up</pose>", b"<xmin>3</xmin>", b"nan", b"1e3", b"</name>"]


def element_span(rng: random.Random, data: bytes) -> tuple[int, int] | None:
    """A random element's span, from its start tag to the next end tag of that name."""
    starts = [m for m in re.finditer(rb"<([A-Za-z_]+)>", data)]
    if not starts:
        return None
    m = rng.choice(starts)
    end = data.find(b"</" + m.group(1) + b">", m.end())
    return None if end < 0 else (m.start(), end + len(m.group(1)) + 3)


def mutate(rng: random.Random, data: bytes) -> bytes:
    """One to three edits: whole elements copied, dropped or moved (files mostly stay valid), or bytes spliced."""
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(6)
        span = element_span(rng, data)
        gaps = [m.end() for m in re.finditer(rb">\s*", data)]
        at = rng.choice(gaps) if gaps else 0
        if op <= 2 and span is not None:
            i, j = span
            piece, rest = data[i:j], data[:i] + data[j:]
            if op == 0:    # copy the element elsewhere
                data = data[:at] + piece + data[at:]
            elif op == 1:  # drop it
                data = rest
            else:          # move it
                gaps = [m.end() for m in re.finditer(rb">\s*", rest)] or [0]
                at = rng.choice(gaps)
                data = rest[:at] + piece + rest[at:]
        elif op == 3:      # a snippet between elements
            data = data[:at] + rng.choice(SNIPPETS) + data[at:]
        elif op == 4:      # a snippet anywhere
            i = rng.randrange(len(data) + 1)
            data = data[:i] + rng.choice(SNIPPETS) + data[i:]
        else:              # a few bytes gone
            i = rng.randrange(len(data) + 1)
            data = data[:i] + data[i + rng.randint(1, 6):]
    return data


def test_fuzzed_files_agree():
    rng = random.Random(1234)
    seeds = [PLAIN, PLAIN.replace(b"\n", b"\r\n"),
             b"<annotation><size><width>20</width><height>10</height></size><object><name>cat</name>"
             b"<bndbox><xmin>1</xmin><ymin>2</ymin><xmax>20</xmax><ymax>10</ymax></bndbox></object></annotation>"]
    taken = declined = 0
    for _ in range(4000):
        data = mutate(rng, rng.choice(seeds))
        if agrees(data, classes=rng.choice([VOC_CLASSES, None])):
            taken += 1
        else:
            declined += 1
    # Both branches are exercised: many mutants stay plain and valid, many do not.
    assert taken > 300 and declined > 300

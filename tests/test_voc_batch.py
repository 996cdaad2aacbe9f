"""The batch reader must read exactly what the checked lxml path reads, or leave the file to it.

Hand-made files with values worked out by hand, the edits each check exists for,
the eight-digit number reading against ``float()``, the real sample, and a seeded
differential fuzz in mixed batches (a bad file must never change how its
neighbours are read).
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from voc_fixtures import ACTION_OBJECT, PLAIN, checked, mutate
from vocli.datasets.shapes import generate_shapes
from vocli.datasets.voc import VOC_CLASSES
from vocli.datasets.byte_spans import span_decimals, words_at_every_offset
from vocli.datasets.voc_batch import read_plain_batch
from vocli.datasets.voc_bulk import read_annotation_bytes

SMALL = (b"<annotation><size><width>20</width><height>10</height></size><object><name>cat</name>"
         b"<bndbox><xmin>1</xmin><ymin>2</ymin><xmax>20</xmax><ymax>10</ymax></bndbox></object></annotation>")


def rows(batch, i: int, classes=VOC_CLASSES) -> list[tuple]:
    """File i's objects as (name, xmin, ymin, xmax, ymax, difficult, truncated)."""
    s = slice(batch.first[i], batch.first[i + 1])
    return [(classes[c], *map(float, box), bool(d), bool(t)) for c, box, d, t in zip(
        batch.class_ids[s].tolist(), batch.boxes[s], batch.difficult[s].tolist(), batch.truncated[s].tolist())]


def agree(datas: list[bytes], classes=VOC_CLASSES) -> int:
    """Check every file the batch took against the checked path; the number taken."""
    batch = read_plain_batch(datas, classes)
    assert len(batch.plain) == len(datas) and len(batch.first) == len(datas) + 1
    for i, data in enumerate(datas):
        if not batch.plain[i]:
            assert batch.first[i] == batch.first[i + 1]
            continue
        expected = checked(data, classes)
        assert not isinstance(expected, Exception), (data, expected)
        got = (batch.filenames[i] or "a.jpg", int(batch.width[i]), int(batch.height[i]), int(batch.depth[i]),
               rows(batch, i, batch.classes))
        assert got == (*expected[:4], [o[:7] for o in expected[4]]), data
    return int(batch.plain.sum())


def test_hand_made_files_read_field_by_field():
    batch = read_plain_batch([PLAIN, ACTION_OBJECT, SMALL], VOC_CLASSES)
    assert batch.plain.tolist() == [True, True, True]
    assert batch.filenames == ["2008_000001.jpg", "2011_000001.jpg", ""]
    assert batch.width.tolist() == [500, 500, 20] and batch.height.tolist() == [375, 400, 10]
    assert batch.depth.tolist() == [3, 3, 3] and batch.first.tolist() == [0, 2, 3, 4]
    # The part's <name>head</name> and box, and the owner's <name>, are not objects.
    assert rows(batch, 0) == [("person", 10.0, 20.5, 300.0, 375.0, False, True),
                              ("dog", 1.0, 1.0, 500.0, 2.0, True, False)]
    assert rows(batch, 1) == [("person", 10.0, 20.0, 200.0, 390.0, True, True)]
    assert rows(batch, 2) == [("cat", 1.0, 2.0, 20.0, 10.0, False, False)]
    assert agree([PLAIN, ACTION_OBJECT, SMALL]) == 3


@pytest.mark.parametrize("edit", [
    (b"<object>", b"<!-- c --><object>"),                     # comment
    (b"<name>dog</name>", b"<name>d&#111;g</name>"),           # character reference
    (b"<name>dog</name>", b"<name>d&amp;g</name>"),            # a reference in a field read
    (b"<folder>", b"<folder>&nbsp;"),                          # an entity XML does not predefine
    (b"<segmented>0</segmented>", b"<segmented/>"),            # empty-element tag
    (b"<folder>", b'<folder id="1">'),                         # attribute
    (b"<folder>", b"<folder >"),                               # space in a tag
    (b"<name>dog</name>", b"<name><![CDATA[dog]]></name>"),    # CDATA
    (b"</annotation>", b"</annotation><?pi x?>"),              # processing instruction
    (b"</object>\n</annotation>\n", b"</object>\n</annotation>\nx"),  # text after the root
    (b"<name>dog</name>", "<name>dög</name>".encode()),        # not ASCII
    (b"<name>dog</name>", b"<name>dog\r</name>"),              # CR
    (b"<folder>", b"<folder>\x7f"),                            # DEL
    (b"<folder>", b"<folder>\x0c"),                            # another control
    (b'encoding="utf-8"', b'encoding="utf-16"'),               # other encoding
    (b"<folder>", b"<folder>a > b"),                           # '>' in text
    (b"<folder>VOC2012</folder>", b"<a:folder>VOC2012</a:folder>"),  # a name outside the subset
    (b"<difficult>1</difficult>", b"<difficult>yes</difficult>"),
    (b"<difficult>1</difficult>", b"<difficult>1e0</difficult>"),
    (b"<name>dog</name>", b"<name>unicorn</name>"),            # unknown class
    (b"<name>dog</name>", b"<name> </name>"),                  # blank name
    (b"<xmax>500</xmax><ymax>2</ymax>", b"<xmax>501</xmax><ymax>2</ymax>"),  # outside the image
    (b"<xmin>1</xmin><ymin>1</ymin><xmax>500</xmax>", b"<xmin>9</xmin><ymin>1</ymin><xmax>8</xmax>"),  # inverted
    (b"<width>500</width>", b"<width>0</width>"),              # size from the image
    (b"<width>500</width>", b"<width>500.5</width>"),
    (b"<width>500</width>", b"<width>-500</width>"),
    (b"<depth>3</depth>", b"<depth>3.5</depth>"),
    (b"<name>dog</name>\n\t\t<difficult>1</difficult>", b"<difficult>1</difficult>"),  # no name
    (b"<ymax>2</ymax></bndbox>", b"</bndbox>"),                # no ymax
    (b"<xmin>1</xmin>", b"<xmin>1</xmin><xmin>7</xmin>"),      # a corner twice
    (b"<name>dog</name>", b"<name>dog</name><name>cat</name>"),  # a name twice (the first would win)
    (b"<size>", b"<size><width>5</width></size><size>"),      # two sizes
    (b"</object>\n</annotation>", b"</object>\n</annotatio>"),  # not well-formed
    (b"</bndbox>\n\t</object>\n</annotation>", b"</object>\n\t</bndbox>\n</annotation>"),  # crossed
    (b"<object>\n\t\t<name>dog", b"<extra><object>\n\t\t<name>dog"),  # unclosed
    (b"<name>person</name>", b"<name><b>person</b></name>"),    # a field with children
    (b"<annotation>", b"<annotations>"),                       # another root
])
def test_declines_what_it_cannot_read_exactly(edit):
    old, new = edit
    assert old in PLAIN
    data = PLAIN.replace(old, new, 1)
    batch = read_plain_batch([SMALL, data, SMALL], VOC_CLASSES)
    assert batch.plain.tolist() == [True, False, True]
    assert batch.first.tolist() == [0, 1, 1, 2]  # the neighbours keep their objects
    assert agree([SMALL, data, SMALL]) == 2


@pytest.mark.parametrize("edit", [
    (b'<?xml version="1.0" encoding="utf-8"?>', b""),                           # no declaration
    (b'<?xml version="1.0" encoding="utf-8"?>', b"<?xml version='1.0'?>"),
    (b"<pose>Left</pose>", b"<pose>  </pose>"),                                  # blank pose
    (b"<filename>2008_000001.jpg</filename>", b""),                              # no filename
    (b"<filename>2008_000001.jpg</filename>", b"<filename> </filename>"),       # blank filename
    (b"<difficult>1</difficult>", b"<difficult> 1 </difficult>"),
    (b"<difficult>1</difficult>", b"<difficult>2</difficult>"),                 # any whole number but 0 is set
    (b"<difficult>1</difficult>", b"<difficult>0.5</difficult>"),               # int(0.5) is 0
    (b"<name>dog</name>", b"<name> dog\n</name>"),
    (b"<xmin>1</xmin>", b"<xmin>\t1.</xmin>"),
    (b"<ymin>20.5</ymin>", b"<ymin>.5</ymin>"),
    (b"<width>500</width>", b"<width>500.000</width>"),
    (b"<width>500</width>", b"<width>000000000500</width>"),                    # more than eight digits
    (b"<depth>3</depth>", b""),                                                  # depth defaults to 3
    (b"<folder>VOC2012</folder>", b"<folder>Tom &amp; Jerry</folder>"),          # references elsewhere
    (b"<source>", b"<source>mixed <i>content</i> text"),                        # mixed content elsewhere
    (b"<owner>", b"<owner><name>someone</name><object>not an object</object>"),  # deeper names
    (b"\t<object>", b"\t<point><x>1</x></point>\t<object>"),
])
def test_reads_variants_like_the_checked_path(edit):
    old, new = edit
    assert old in PLAIN
    assert agree([PLAIN.replace(old, new, 1)]) == 1


def test_numbers_read_as_float_reads_them():
    rng = random.Random(7)
    texts = ["0", "7", "12345678", "99999999", "123456789", "9" * 15, "9" * 16, "1.5", ".5", "5.", ".", "1.2.3",
             " 7 ", "\t12\n", "1 2", "", "  ", "+1", "-1", "1e3", "0x1", "nan", "inf", "1_0", "١"]
    texts += ["".join(rng.choice("0123456789. \t\n") for _ in range(rng.randint(0, 18))) for _ in range(3000)]
    buf, starts, ends = b"", [], []
    for t in texts:
        starts.append(len(buf))
        buf += t.encode()
        ends.append(len(buf))
        buf += b"<"
    buf += bytes(16)
    a = np.frombuffer(buf, dtype=np.uint8)
    values, blank, valid = span_decimals(a, words_at_every_offset(buf, len(buf) - 7), np.array(starts), np.array(ends))
    taken = 0
    for text, value, is_blank, ok in zip(texts, values.tolist(), blank.tolist(), valid.tolist()):
        if ok and is_blank:
            assert text.strip() == ""
        elif ok:
            assert value == float(text), text
            taken += 1
        else:  # declined: float() refuses it, or it is outside the plain decimals
            body = text.strip()
            assert (not body or not set(body) <= set("0123456789.") or body.count(".") > 1
                    or sum(c.isdigit() for c in body) > 15 or body == "."), text
    assert taken > 500


def test_real_sample_files_agree(voc_sample):
    files = sorted(voc_sample.glob("VOCdevkit/*/Annotations/*.xml"))
    datas = [f.read_bytes() for f in files]
    classes = tuple(sorted({o[0] for d in datas for o in checked(d, None)[4]}))
    # Every real file is plain, including the three with '&amp;' in an owner's name.
    assert agree(datas, classes) == len(files) > 400


def test_generated_shapes_files_agree(tmp_path):
    generate_shapes(tmp_path, images=40, size=96, seed=3)
    datas = [f.read_bytes() for f in sorted(tmp_path.rglob("Annotations/*.xml"))]
    classes = tuple(sorted({o[0] for d in datas for o in checked(d, None)[4]}))
    assert datas and agree(datas, classes) == len(datas)


def test_empty_batch():
    batch = read_plain_batch([], VOC_CLASSES)
    assert batch.plain.size == 0 and batch.first.tolist() == [0] and batch.boxes.shape == (0, 4)


@pytest.mark.parametrize("classes", [VOC_CLASSES, None])
def test_fuzzed_batches_agree(classes):
    rng = random.Random(4321)
    seeds = [PLAIN, ACTION_OBJECT, SMALL, PLAIN.replace(b"\n", b"\r\n")]
    taken = total = 0
    for _ in range(200):
        datas = [mutate(rng, rng.choice(seeds)) for _ in range(rng.randint(1, 40))]
        taken += agree(datas, classes)
        total += len(datas)
    # Both branches are exercised: many mutants stay plain and valid, many do not.
    assert 300 < taken < total - 300


def test_unknown_names_are_read_in_order_found_without_a_class_list():
    other = SMALL.replace(b"<name>cat</name>", b"<name>unicorn</name>")
    batch = read_plain_batch([other, SMALL, other], None)
    assert batch.plain.all() and batch.classes == ("unicorn", "cat")
    assert batch.class_ids.tolist() == [0, 1, 0]
    blank = SMALL.replace(b"<name>cat</name>", b"<name> </name>")
    assert not read_plain_batch([blank], None).plain[0]  # the checked reading says why


@pytest.mark.parametrize("classes", [VOC_CLASSES, None])
def test_fuzzed_bulk_reading_gives_the_checked_verdict_file_by_file(classes):
    # The bulk reading (batch reader, then lxml for what it leaves) against lxml alone: the same
    # fields for every file read, the same error for every file refused.
    rng = random.Random(99)
    seeds = [PLAIN, ACTION_OBJECT, SMALL, PLAIN.replace(b"\n", b"\r\n")]
    refused = 0
    for _ in range(60):
        datas = [mutate(rng, rng.choice(seeds)) for _ in range(rng.randint(1, 30))]
        table = read_annotation_bytes(datas, ["x/Annotations/a.xml"] * len(datas), classes)
        for i, data in enumerate(datas):
            expected = checked(data, classes)
            if isinstance(expected, Exception):
                refused += 1
                assert str(table.errors[i]) == str(expected), data
                continue
            ann = table.annotation(i)
            got = (ann.filename, ann.width, ann.height, ann.depth,
                   [(o.name, o.xmin, o.ymin, o.xmax, o.ymax, o.difficult, o.truncated) for o in ann.objects])
            assert got == (*expected[:4], [o[:7] for o in expected[4]]), data
    assert refused > 50

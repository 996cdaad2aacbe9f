"""Annotations shared by the reader tests: a plain VOC file, an action-layout object, the checked
reading as a comparable tuple, and a seeded mutator for differential fuzzing."""

from __future__ import annotations

import random
import re
from pathlib import Path

from vocli.datasets.voc import VOC_CLASSES, _parse_annotation_checked
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


ACTION_OBJECT = (b"<annotation><filename>2011_000001.jpg</filename><size><width>500</width><height>400</height>"
                 b"<depth>3</depth></size><segmented>0</segmented><object><name>person</name>"
                 b"<actions><jumping>0</jumping><phoning>1</phoning><other>0</other></actions>"
                 b"<bndbox><xmin>10</xmin><ymin>20</ymin><xmax>200</xmax><ymax>390</ymax></bndbox>"
                 b"<point><x>100</x><y>50</y></point><pose>Frontal</pose><truncated>1</truncated>"
                 b"<difficult>1</difficult></object></annotation>")


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

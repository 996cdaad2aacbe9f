"""PASCAL VOC annotations and splits: the one place that reads a VOC XML file.

(``voc_batch`` reads many plain files at once for the converters and leaves every
other file to this module's checked reading.)

Coordinates are kept exactly as written in the file: VOC uses 1-based,
inclusive pixel corners (``1 <= xmin <= xmax <= width``). Conversions to other
conventions (0-based, normalised) happen in the consumers, each documenting
its rule; this module never shifts them.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
from lxml import etree

from vocli.errors import AnnotationError, DatasetNotFoundError, UnknownClassError, VocliError
from vocli.paths import entry_name_problem

VOC_CLASSES: tuple[str, ...] = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)

#: Sets converted by default when present, in darknet's recipe order.
STANDARD_SETS: tuple[str, ...] = ("2007/train", "2007/val", "2007/test", "2012/train", "2012/val")
SPLITS: tuple[str, ...] = ("train", "val", "trainval", "test")


def _hardened_parser() -> etree.XMLParser:
    # No entity expansion (billion laughs / XXE), no DTD or network access, no huge trees.
    return etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
        huge_tree=False, remove_comments=True, remove_pis=True,
    )


_PARSER = _hardened_parser()


@dataclass(frozen=True)
class VocObject:
    """One ``<object>``: class name and box as written (1-based inclusive pixels)."""

    name: str
    xmin: float
    ymin: float
    xmax: float
    ymax: float
    difficult: bool = False
    truncated: bool = False
    pose: str = "Unspecified"

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        return (self.xmin, self.ymin, self.xmax, self.ymax)


@dataclass
class Annotation:
    """One VOC XML file."""

    path: Path
    filename: str
    width: int
    height: int
    depth: int = 3
    objects: list[VocObject] = field(default_factory=list)

    @property
    def image_id(self) -> str:
        return self.path.stem

    def boxes(self, include_difficult: bool = True) -> np.ndarray:
        """(N, 4) float64 xyxy, 1-based inclusive pixels as in the file."""
        objs = self._select(include_difficult)
        return np.array([o.bbox for o in objs], dtype=np.float64).reshape(-1, 4)

    def labels(self, classes: Sequence[str] = VOC_CLASSES, include_difficult: bool = True) -> np.ndarray:
        """(N,) int64 class indices into ``classes`` (0-based)."""
        index = {c: i for i, c in enumerate(classes)}
        out = []
        for o in self._select(include_difficult):
            if o.name not in index:
                raise unknown_class(self.path, o.name, classes)
            out.append(index[o.name])
        return np.array(out, dtype=np.int64)

    def difficult(self, include_difficult: bool = True) -> np.ndarray:
        """(N,) bool difficult flags."""
        return np.array([o.difficult for o in self._select(include_difficult)], dtype=bool)

    def _select(self, include_difficult: bool) -> list[VocObject]:
        return self.objects if include_difficult else [o for o in self.objects if not o.difficult]


def unknown_class(path, name: str, classes: Sequence[str]) -> UnknownClassError:
    return UnknownClassError(
        path, f"unknown class {name!r}",
        hint=f"known classes: {', '.join(classes)}; pass --classes FILE for a custom list",
    )


def _children(node) -> dict:
    """Direct children by tag (first occurrence wins), read in one pass: lxml's find() is slow."""
    out = {}
    for child in node:
        tag = child.tag
        if tag not in out and isinstance(tag, str):
            out[tag] = child
    return out


def _text(children: dict, tag: str, path, where: str, required: bool = True,
          default: str | None = None) -> str | None:
    child = children.get(tag)
    text = child.text if child is not None else None
    if text is None or not text.strip():
        if required:
            raise AnnotationError(path, f"missing <{tag}> in <{where}>")
        return default
    return text.strip()


def _number(children: dict, tag: str, path, where: str, kind=float) -> float:
    raw = _text(children, tag, path, where)
    try:
        value = float(raw)
    except ValueError:
        raise AnnotationError(path, f"<{tag}> is not a number: {raw!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise AnnotationError(path, f"<{tag}> is not a finite number: {raw!r}")
    if kind is int:
        if value != int(value):
            raise AnnotationError(path, f"<{tag}> must be a whole number: {raw!r}")
        return int(value)
    return value


def _flag(children: dict, tag: str, path) -> bool:
    raw = _text(children, tag, path, "object", required=False, default="0")
    if raw == "0":
        return False
    if raw == "1":
        return True
    try:
        return bool(int(float(raw)))
    except ValueError:
        raise AnnotationError(path, f"<{tag}> must be 0 or 1, got {raw!r}") from None


def image_size_from_file(image_path: Path) -> tuple[int, int, int]:
    """(width, height, depth) read from the image header only (Pillow, lazy)."""
    from PIL import Image

    with Image.open(image_path) as im:
        depth = len(im.getbands())
        return im.width, im.height, depth


# --------------------------------------------------------------------------- plain-file fast path
#
# Nearly every VOC file is plain: ASCII, elements without attributes, no comments, CDATA,
# processing instructions or references beyond ``&amp;`` and its kin, at most five levels
# deep. For those, regular expressions prove the file well-formed and capture the fields:
# in one pass for the VOC layout (``_scan_voc_layout``), else one pass to check and a few
# searches to read. Both are several times faster than building an lxml tree. Anything
# else (and any value the checked path would reject) gets None and goes through lxml,
# which also words the errors.

_NAME = rb"[A-Za-z_][A-Za-z0-9_.\-]*"


def _compile(pattern: bytes) -> re.Pattern:
    """Compile, making ``[^<]*`` and ``\\s*`` possessive where Python has them (3.11+).

    What follows either is always '<' (or the end), which neither can match, so giving
    characters back never helps: possessive only skips the futile backtracking.
    """
    if sys.version_info >= (3, 11):
        pattern = pattern.replace(rb"[^<]*", rb"[^<]*+").replace(rb"\s*", rb"\s*+")
    return re.compile(pattern)
_QUOTED = lambda values: rb"(?:\"(?:%s)\"|'(?:%s)')" % (values, values)  # noqa: E731
#: The XML declarations a plain file may open with (pattern source; ASCII-compatible encodings only).
XML_DECLARATION = (
    rb"<\?xml\s+version\s*=\s*" + _QUOTED(rb"1\.0")
    + rb"(?:\s+encoding\s*=\s*" + _QUOTED(rb"(?i:utf-8|us-ascii|ascii|iso-8859-1)") + rb")?"
    + rb"(?:\s+standalone\s*=\s*" + _QUOTED(rb"yes|no") + rb")?\s*\?>"
)


def _element(level: int, levels: int, name: bytes = _NAME, below: bytes | None = None) -> bytes:
    """An element with no attributes, its children nesting at most ``levels - level`` deeper.

    ``name``: the pattern of this element's tag; ``below``: that of its descendants'
    tags (default: the same). Text is ``[^<]*``: the characters it may not hold are
    ruled out beforehand, file-wide.
    """
    below = name if below is None else below
    group = b"t%d" % level
    start, end = b"<(?P<" + group + b">" + name + b")>", b"</(?P=" + group + b")>"
    if level == levels:
        return start + rb"[^<]*" + end
    return start + rb"(?:[^<]*" + end + rb"|\s*(?:" + _element(level + 1, levels, below) + rb"\s*)+" + end + b")"


# A child of the root. Below the root's children, no <object>, <size> or <filename>: so each
# of those found anywhere in a matching file is a direct child of <annotation>, as the
# checked path reads them.
_NOT_ROOT_FIELD = rb"(?!(?:object|size|filename)>)" + _NAME
_ROOT_CHILD = _element(2, 5, _NAME, below=_NOT_ROOT_FIELD)
_PLAIN_DOCUMENT = _compile(
    b"(?:" + XML_DECLARATION + rb")?\s*<annotation>(?:\s*" + _ROOT_CHILD + rb")*\s*</annotation>\s*")
# Bytes XML forbids in a document (tab, LF and CR aside), and '&' not starting a predefined entity.
_CONTROL_BYTES = bytes(b for b in range(32) if b not in (9, 10, 13))
_BAD_REFERENCE = _compile(rb"&(?!(?:amp|lt|gt|quot|apos);)")
_LEAF = _compile(b"<(" + _NAME + rb")>([^<]*)</\1>")
def _items(group: str, first: bytes = b"") -> bytes:
    """Children of an object: leaves, or containers up to two levels deep (a <part> with its <bndbox>)."""
    def el(level: int, name: bytes = _NAME) -> bytes:
        g = f"{group}{level}".encode()
        start, end = b"<(?P<" + g + b">" + name + b")>", b"</(?P=" + g + b")>"
        if level == 3:
            return start + rb"[^<]*" + end
        return start + rb"(?:[^<]*|(?:\s*" + el(level + 1) + rb")+\s*)" + end
    return rb"(?:\s*" + el(1, first + _NAME) + rb")*"


_BOX = (rb"<bndbox>\s*<xmin>([^<]*)</xmin>\s*<ymin>([^<]*)</ymin>\s*<xmax>([^<]*)</xmax>\s*<ymax>([^<]*)</ymax>"
        rb"\s*</bndbox>")
# A container child of an object (one child at least) whose tag is not a field's.
_CONTAINER = _compile(
    rb"<(?!(?:name|pose|truncated|difficult|bndbox)>)(?P<c1>" + _NAME + rb")>(?:\s*<(?P<c2>" + _NAME
    + rb")>(?:[^<]*|(?:\s*<(?P<c3>" + _NAME + rb")>[^<]*</(?P=c3)>)+\s*)</(?P=c2)>)+\s*</(?P=c1)>")
# The two layouts of every object in VOC 2007 and 2012 (name, pose, truncated, [occluded,]
# difficult before or after the box, then <part>s), read in one pass.
_VOC_OBJECT_PATTERN = (
    rb"<object>\s*<name>([^<]*)</name>\s*<pose>([^<]*)</pose>\s*<truncated>([^<]*)</truncated>\s*"
    rb"(?:<occluded>[^<]*</occluded>\s*)?(?:(<difficult>)([^<]*)</difficult>\s*)?" + _BOX
    + rb"\s*(?:<difficult>([^<]*)</difficult>)?(?:\s*<part>" + _items("p") + rb"\s*</part>)*\s*</object>")
_VOC_OBJECT = _compile(_VOC_OBJECT_PATTERN)
# Any other object whose box lists xmin, ymin, xmax, ymax in that order: its fields are
# read from the blocks before and after the box.
_PLAIN_OBJECT = _compile(
    b"<object>(" + _items("a", rb"(?!bndbox>)") + rb")\s*" + _BOX + b"(" + _items("b") + rb")\s*</object>")
_PLAIN_SIZE = _compile(rb"<size>\s*<width>([^<]*)</width>\s*<height>([^<]*)</height>\s*"
                         rb"(?:<depth>([^<]*)</depth>\s*)?</size>")
_PLAIN_FILENAME = _compile(rb"<filename>([^<]*)</filename>")
# The VOC layout in one pass: the root's children up to the first <object> (<filename> and
# a <size> of width, height, depth captured on the way), the objects one by one, then the end.
_OTHER_CHILD = _element(2, 5, _NOT_ROOT_FIELD)
_VOC_HEAD = _compile(
    b"(?:" + XML_DECLARATION + rb")?\s*<annotation>(?:\s*(?:<filename>(?P<filename>[^<]*)</filename>"
    rb"|<size>\s*<width>(?P<width>[^<]*)</width>\s*<height>(?P<height>[^<]*)</height>\s*"
    rb"(?:<depth>(?P<depth>[^<]*)</depth>\s*)?</size>|" + _OTHER_CHILD + b"))*")
_VOC_NEXT_OBJECT = _compile(rb"\s*" + _VOC_OBJECT_PATTERN)
_VOC_TAIL = _compile(rb"(?:\s*" + _OTHER_CHILD + rb")*\s*</annotation>\s*")
#: Larger files take the lxml path: bounds the regular expressions' backtracking.
_PLAIN_MAX_BYTES = 1 << 16
_FLAGS = {b"0": False, b"1": True, b"": False}  # blank reads as the default, 0

#: One object as ``scan_plain_annotation`` returns it:
#: (name, xmin, ymin, xmax, ymax, difficult, truncated, pose), corners as written.
ObjectRow = tuple


def _leaves(block: bytes) -> dict[bytes, bytes]:
    """Leaf children of an object's block by tag, first one winning; KeyError if a field has children.

    Containers (a <part> with its own <name> and <bndbox>, <actions>, <point>) are skipped:
    no field is read from inside them.
    """
    if _CONTAINER.search(block):
        block = _CONTAINER.sub(b"", block)
    pairs = _LEAF.findall(block)
    if block.count(b"<") != 2 * len(pairs):
        raise KeyError("a field with children")
    return dict(reversed(pairs))


def _field(text: bytes) -> str:
    """A text field as the checked path reads it: stripped, XML's line ends (\r\n or \r read as \n)."""
    text = text.strip()
    if b"&" in text:
        raise ValueError("holds an entity reference: left to lxml")
    if b"\r" in text:
        text = text.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return text.decode()


def scan_plain_annotation(
    data: bytes, classes: Sequence[str] | None = None,
) -> tuple[str | None, int, int, int, list[ObjectRow]] | None:
    """(filename or None, width, height, depth, objects) of a plain, valid VOC file; None otherwise.

    Equal to what the checked lxml path reads from the same bytes; None for every
    file that is not plain or that the checked path would reject (which then
    explains why), so callers fall back to it.
    """
    if (len(data) > _PLAIN_MAX_BYTES or not data.isascii() or b"]]>" in data
            or len(data.translate(None, _CONTROL_BYTES)) != len(data)
            or (b"&" in data and _BAD_REFERENCE.search(data))):
        return None
    try:
        if b"&" not in data and b"\r" not in data:
            found = _scan_voc_layout(data)
            if found is not None:
                return _checked_rows(*found, classes)
        if _PLAIN_DOCUMENT.fullmatch(data) is None:
            return None
        filename = None
        found = data.count(b"<filename>")
        if found:
            m = _PLAIN_FILENAME.search(data)
            if found > 1 or m is None:
                return None
            filename = _field(m.group(1)) or None
        m = _PLAIN_SIZE.search(data)
        if m is None or data.count(b"<size>") != 1:
            return None
        width, height = float(m.group(1)), float(m.group(2))
        if not (0 < width == int(width) and 0 < height == int(height)):
            return None
        width, height = int(width), int(height)
        depth = (m.group(3) or b"").strip()
        depth = int(depth) if depth else 3

        n = data.count(b"<object>")
        found = _VOC_OBJECT.findall(data) if b"&" not in data and b"\r" not in data else ()
        if len(found) == n:
            objects = _rows(found)
        else:
            objects = []
            found = _PLAIN_OBJECT.findall(data)
            if len(found) != n:
                return None
            for match in found:
                before, x1, y1, x2, y2, after = match[0], match[4], match[5], match[6], match[7], match[8]
                fields = _leaves(after) if after.strip() else {}
                fields.update(_leaves(before))
                objects.append((
                    _field(fields[b"name"]), float(x1), float(y1), float(x2), float(y2),
                    _FLAGS[fields[b"difficult"].strip()] if b"difficult" in fields else False,
                    _FLAGS[fields[b"truncated"].strip()] if b"truncated" in fields else False,
                    (_field(fields[b"pose"]) if b"pose" in fields else "") or "Unspecified"))
        return _checked_rows(filename, width, height, depth, objects, classes)
    except (KeyError, ValueError, OverflowError):
        return None


def _rows(found: list[tuple]) -> list[ObjectRow]:
    """Object rows from ``_VOC_OBJECT`` groups (files without '&' or '\\r', so no ``_field`` needed)."""
    return [(name.strip().decode(), float(x1), float(y1), float(x2), float(y2),
             _FLAGS[(d1 if first else d2).strip()], _FLAGS[truncated.strip()],
             pose.strip().decode() or "Unspecified")
            for name, pose, truncated, first, d1, x1, y1, x2, y2, d2, *_ in found]


def _scan_voc_layout(data: bytes) -> tuple | None:
    """The common VOC layout read in one pass; None for any other layout (the general scan then tries)."""
    head = _VOC_HEAD.match(data)
    if head is None:
        return None
    end = head.end()
    if (head.group("width") is None or data.count(b"<size>", 0, end) != 1
            or data.count(b"<filename>", 0, end) > 1):
        return None
    found, match = [], _VOC_NEXT_OBJECT.match
    m = match(data, end)
    while m is not None:
        found.append(m.groups(b""))
        end = m.end()
        m = match(data, end)
    if _VOC_TAIL.fullmatch(data, end) is None:
        return None
    width, height = float(head.group("width")), float(head.group("height"))
    if not (0 < width == int(width) and 0 < height == int(height)):
        return None
    depth = (head.group("depth") or b"").strip()
    filename = head.group("filename")
    return (filename.strip().decode() or None if filename is not None else None, int(width), int(height),
            int(depth) if depth else 3, _rows(found))


def _checked_rows(filename, width, height, depth, objects, classes):
    """The scan's result, or None when a value would make the checked path raise."""
    if filename is not None and entry_name_problem(filename) is not None:
        return None
    for name, xmin, ymin, xmax, ymax, *_ in objects:
        if (not name or (classes is not None and name not in classes)
                or not (0 <= xmin <= xmax <= width and 0 <= ymin <= ymax <= height)):
            return None
    return filename, width, height, depth, objects


def parse_annotation_bytes(
    data: bytes,
    path: str | os.PathLike = "<bytes>",
    classes: Sequence[str] | None = None,
    image_dir: str | os.PathLike | None = None,
) -> Annotation:
    """Parse the bytes of one VOC XML file (see ``parse_annotation``)."""
    path = Path(path)
    plain = scan_plain_annotation(data, classes)
    if plain is not None:
        filename, width, height, depth, rows = plain
        return Annotation(path=path, filename=filename or f"{path.stem}.jpg", width=width, height=height,
                          depth=depth, objects=[VocObject(*row) for row in rows])
    return _parse_annotation_checked(data, path, classes, image_dir)


def annotation_rows(
    data: bytes, path: str, classes: Sequence[str] | None = None,
) -> tuple[str, int, int, list[ObjectRow]]:
    """(filename, width, height, objects) of one file's bytes, as plain tuples: the converters' hot loop.

    The same reading and errors as ``parse_annotation_bytes`` without building dataclasses;
    ``path`` (a string) names the file in errors and gives the default file name.
    """
    plain = scan_plain_annotation(data, classes)
    if plain is not None:
        filename, width, height, _depth, rows = plain
        if filename is None:
            filename = os.path.splitext(os.path.basename(path))[0] + ".jpg"
        return filename, width, height, rows
    ann = _parse_annotation_checked(data, Path(path), classes, None)
    return ann.filename, ann.width, ann.height, [
        (o.name, o.xmin, o.ymin, o.xmax, o.ymax, o.difficult, o.truncated, o.pose) for o in ann.objects]


def _parse_annotation_checked(data: bytes, path: Path, classes: Sequence[str] | None,
                              image_dir: str | os.PathLike | None) -> Annotation:
    """The lxml reading of any well-formed file, naming exactly what is wrong with a bad one."""
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as err:
        raise AnnotationError(path, f"not valid XML ({err.msg})", hint="re-download or fix the file") from None
    if root is None or root.tag != "annotation":
        tag = None if root is None else root.tag
        raise AnnotationError(path, f"root element is <{tag}>, expected <annotation>")

    top = _children(root)
    filename = _text(top, "filename", path, "annotation", required=False, default=f"{path.stem}.jpg")
    problem = entry_name_problem(filename)
    if problem is not None:
        raise AnnotationError(path, f"<filename> {filename!r} {problem}",
                              hint="give the image's file name only; images live in JPEGImages/")
    size = top.get("size")
    if size is None:
        raise AnnotationError(path, "missing <size>")
    size_fields = _children(size)
    width = _number(size_fields, "width", path, "size", int)
    height = _number(size_fields, "height", path, "size", int)
    depth = _number(size_fields, "depth", path, "size", int) if _text(
        size_fields, "depth", path, "size", required=False) is not None else 3
    if width <= 0 or height <= 0:
        # A few real VOC files say 0x0; the JPEG header knows better.
        img_dir = Path(image_dir) if image_dir is not None else path.parent.parent / "JPEGImages"
        image_path = img_dir / filename
        if not image_path.exists():
            raise AnnotationError(
                path, f"image size is {width}x{height} and {image_path} is missing to read it from",
                hint="fix <size> or put the image in JPEGImages/",
            )
        try:
            width, height, depth = image_size_from_file(image_path)
        except Exception as err:  # noqa: BLE001 - any decoder error is a bad image
            raise AnnotationError(path, f"image size is 0 and {image_path} is unreadable ({err})") from None

    objects = _build_objects_checked(root, path, classes, width, height)
    return Annotation(path=path, filename=filename, width=width, height=height, depth=depth, objects=objects)


def _build_objects_checked(root, path, classes, width, height) -> list[VocObject]:
    """Field-by-field parse that names exactly what is wrong (every file the plain scan declines)."""
    objects = []
    i = 0
    for obj in root:
        if obj.tag != "object":
            continue
        i += 1
        fields = _children(obj)
        name = _text(fields, "name", path, "object")
        if classes is not None and name not in classes:
            raise unknown_class(path, name, classes)
        box = fields.get("bndbox")
        if box is None:
            raise AnnotationError(path, f"object {i} ({name}) has no <bndbox>")
        corners = _children(box)
        xmin, ymin, xmax, ymax = (_number(corners, t, path, "bndbox") for t in ("xmin", "ymin", "xmax", "ymax"))
        if xmax < xmin or ymax < ymin:
            raise AnnotationError(
                path, f"object {i} ({name}) has inverted coordinates "
                f"xmin={xmin:g} ymin={ymin:g} xmax={xmax:g} ymax={ymax:g}",
            )
        # VOC is 1-based; 0 is tolerated because many hand-labelled trees are 0-based.
        if xmin < 0 or ymin < 0 or xmax > width or ymax > height:
            raise AnnotationError(
                path, f"object {i} ({name}) box {xmin:g},{ymin:g},{xmax:g},{ymax:g} "
                f"lies outside the {width}x{height} image",
            )
        objects.append(VocObject(
            name=name, xmin=xmin, ymin=ymin, xmax=xmax, ymax=ymax,
            difficult=_flag(fields, "difficult", path), truncated=_flag(fields, "truncated", path),
            pose=_text(fields, "pose", path, "object", required=False, default="Unspecified"),
        ))
    return objects


def parse_annotation(
    path: str | os.PathLike,
    classes: Sequence[str] | None = None,
    image_dir: str | os.PathLike | None = None,
) -> Annotation:
    """Parse one VOC XML file into an ``Annotation``.

    ``classes``: when given, an object whose name is not in it raises
    ``UnknownClassError``. ``image_dir``: where to find the image when
    ``<size>`` is 0 (default: ``../JPEGImages`` beside the Annotations folder).
    Raises ``AnnotationError`` naming the file and the problem.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise AnnotationError(path, "file not found") from None
    except OSError as err:
        raise AnnotationError(path, f"cannot read ({err.strerror})") from None
    return parse_annotation_bytes(data, path, classes=classes, image_dir=image_dir)


#: Fewer files than this are parsed in the calling process: starting workers costs more.
PARALLEL_MIN_FILES = 128


def parse_annotations(
    paths: Sequence[str | os.PathLike],
    classes: Sequence[str] | None = None,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[Annotation]:
    """``parse_annotation`` of every path, in order, split over ``workers`` processes (default: all cores).

    Same annotations and the same first error as parsing one by one. ``progress(n)`` is
    called with the number of files just parsed. The calling process parses chunks too
    (the converters' ``gather_chunks``).
    """
    from converters._common import chunked, gather_chunks, resolve_workers

    paths = [os.fspath(p) for p in paths]
    workers = resolve_workers(workers) if len(paths) >= PARALLEL_MIN_FILES else 1
    names = None if classes is None else tuple(classes)
    chunks = chunked(paths, workers)
    reported = 0

    def report(done: int, _total: int) -> None:
        nonlocal reported
        if progress is not None and done > reported:
            progress(done - reported)
        reported = done

    annotations: list[Annotation] = []
    jobs = [(tuple(chunk), names) for chunk in chunks]
    for parsed in gather_chunks(_parse_chunk, jobs, workers, [len(c) for c in chunks], report):
        if isinstance(parsed, _ChunkFailure):
            raise parsed.kind(parsed.path, parsed.reason, hint=parsed.hint)
        annotations.extend(parsed)
    return annotations


@dataclass(frozen=True)
class _ChunkFailure:
    # AnnotationError does not survive pickling (its __init__ takes more than the message), so
    # workers send back its parts and the caller raises it again.
    kind: type
    path: str
    reason: str
    hint: str | None


def _parse_chunk(job: tuple[tuple[str, ...], tuple[str, ...] | None]) -> list[Annotation] | _ChunkFailure:
    paths, classes = job
    try:
        return [parse_annotation(path, classes=classes) for path in paths]
    except AnnotationError as err:
        return _ChunkFailure(type(err), err.path, err.reason, err.hint)


# --------------------------------------------------------------------------- splits and sets


def devkit_dir(root: str | os.PathLike) -> Path:
    """The ``VOCdevkit`` folder under ``root`` (or ``root`` itself if it holds ``VOC*`` folders)."""
    root = Path(root).expanduser()
    if (root / "VOCdevkit").is_dir():
        return root / "VOCdevkit"
    if root.is_dir() and any(p.is_dir() and p.name.startswith("VOC") for p in root.iterdir()):
        return root
    raise DatasetNotFoundError(
        f"{root}: no VOCdevkit folder found",
        hint="pass --root pointing at the folder that holds VOCdevkit/, or run `vocli fetch`",
    )


@dataclass(frozen=True)
class VocSet:
    """One split of one ``VOC<year>`` folder, named ``<year>/<split>`` (``2007/test``, ``shapes/train``)."""

    year: str
    split: str
    dir: Path  # the VOC<year> folder

    @property
    def name(self) -> str:
        return f"{self.year}/{self.split}"

    @property
    def split_file(self) -> Path:
        return self.dir / "ImageSets" / "Main" / f"{self.split}.txt"

    def ids(self) -> list[str]:
        """Image ids listed in ``ImageSets/Main/<split>.txt``, in file order (invalid entries left out)."""
        return read_split(self.split_file)

    def invalid_ids(self) -> list[tuple[str, str]]:
        """(entry, reason) for the list's entries that are not plain names (see ``split_entries``)."""
        return split_entries(self.split_file)[1]

    def annotation_path(self, image_id: str) -> Path:
        return self.dir / "Annotations" / f"{image_id}.xml"

    def image_path(self, image_id: str) -> Path:
        return self.dir / "JPEGImages" / f"{image_id}.jpg"


def split_entries(path: str | os.PathLike) -> tuple[list[str], list[tuple[str, str]]]:
    """(ids, invalid) of a VOC split list: first column, blank lines ignored.

    ``invalid``: (entry, reason) for every entry that is not a plain name (``../x``, ``/abs``,
    ``a/b``; ``vocli.paths.entry_name_problem``); those are left out of ``ids``.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DatasetNotFoundError(f"{path}: split list not found", hint="check --sets and --root") from None
    if text.isascii() and " " not in text and "\t" not in text and "\x1f" not in text:
        ids = text.split()  # one column: the only whitespace left breaks lines (and blank ones vanish)
    else:
        ids = [line.split()[0] for line in text.splitlines() if line.strip()]
    if "/" not in text and "\\" not in text and "." not in text and ":" not in text and "\0" not in text:
        return ids, []  # the usual list: nothing there can make an id a path
    invalid = [(i, reason) for i in ids if (reason := entry_name_problem(i)) is not None]
    if invalid:
        bad = {i for i, _ in invalid}
        ids = [i for i in ids if i not in bad]
    return ids, invalid


def read_split(path: str | os.PathLike) -> list[str]:
    """The valid ids of a VOC split list (see ``split_entries``; invalid entries are left out)."""
    return split_entries(path)[0]


def discover_sets(root: str | os.PathLike) -> list[VocSet]:
    """Every ``<year>/<split>`` with a split list under ``root``, sorted by year then split order."""
    devkit = devkit_dir(root)
    found = []
    for voc_dir in sorted(p for p in devkit.iterdir() if p.is_dir() and p.name.startswith("VOC")):
        main = voc_dir / "ImageSets" / "Main"
        for split in SPLITS:
            if (main / f"{split}.txt").is_file():
                found.append(VocSet(voc_dir.name[3:], split, voc_dir))
    return found


def parse_set_names(sets: str | Iterable[str]) -> list[tuple[str, str]]:
    """``"2007/train,2012/val"`` -> ``[("2007", "train"), ("2012", "val")]``."""
    names = [s.strip() for s in sets.split(",")] if isinstance(sets, str) else [s.strip() for s in sets]
    out = []
    for name in names:
        if not name:
            continue
        year, sep, split = name.partition("/")
        if not sep or not year or not split or "/" in split:
            raise DatasetNotFoundError(f"bad set name {name!r}", hint="use <year>/<split>, e.g. 2007/test or shapes/train")
        out.append((year, split))
    return out


def resolve_sets(
    root: str | os.PathLike,
    sets: str | Iterable[str] | None = None,
    default: Sequence[str] = STANDARD_SETS,
) -> list[VocSet]:
    """Turn ``--sets`` into ``VocSet``s under ``root``.

    Explicit sets must exist. ``sets=None`` means the ``default`` sets that are
    present, else every split of every ``VOC*`` folder found.
    """
    devkit = devkit_dir(root)
    if sets is None:
        present = [VocSet(y, s, devkit / f"VOC{y}") for y, s in parse_set_names(default)]
        present = [vs for vs in present if vs.split_file.is_file()]
        if present:
            return present
        found = discover_sets(root)
        if not found:
            raise DatasetNotFoundError(f"{devkit}: no ImageSets/Main/<split>.txt lists found", hint="is this a VOC-layout tree?")
        return found
    out = []
    for year, split in parse_set_names(sets):
        vs = VocSet(year, split, devkit / f"VOC{year}")
        if not vs.split_file.is_file():
            known = ", ".join(v.name for v in discover_sets(root)) or "none"
            raise DatasetNotFoundError(f"set {vs.name}: {vs.split_file} not found", hint=f"sets present: {known}")
        out.append(vs)
    if not out:
        raise DatasetNotFoundError("no sets given", hint="e.g. --sets 2007/trainval")
    return out


#: A VOC folder may carry its class list (one name per line) under this name, as ``VOCshapes`` does.
CLASS_LIST_FILE = "classes.txt"


def dataset_classes(voc_sets: Sequence[VocSet]) -> tuple[tuple[str, ...], str] | None:
    """(class names, a name for them) from the ``classes.txt`` the sets' VOC folders carry; None if none does.

    The name is the folder's year (``shapes`` for ``VOCshapes``). Folders that disagree,
    or carry a list beside folders that do not, are an error: pass ``--classes``.
    """
    folders = list(dict.fromkeys(vs.dir for vs in voc_sets))
    found = {d: d / CLASS_LIST_FILE for d in folders if (d / CLASS_LIST_FILE).is_file()}
    if not found:
        return None
    if len(found) != len(folders):
        without = ", ".join(d.name for d in folders if d not in found)
        raise VocliError(f"{', '.join(d.name for d in found)} carry {CLASS_LIST_FILE} but {without} do not",
                         hint="convert them separately, or pass --classes FILE")
    lists = {d: read_classes(f) for d, f in found.items()}
    first = folders[0]
    if any(names != lists[first] for names in lists.values()):
        raise VocliError(f"the {CLASS_LIST_FILE} files of {', '.join(d.name for d in folders)} differ",
                         hint="convert them separately, or pass --classes FILE")
    return lists[first], first.name[3:] if first.name.startswith("VOC") else first.name


def read_classes(path: str | os.PathLike) -> tuple[str, ...]:
    """A class-list file: one name per line (darknet ``.names`` format)."""
    path = Path(path)
    try:
        names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except FileNotFoundError:
        raise DatasetNotFoundError(f"{path}: class list not found") from None
    if not names:
        raise DatasetNotFoundError(f"{path}: class list is empty", hint="one class name per line")
    if len(set(names)) != len(names):
        raise DatasetNotFoundError(f"{path}: class list has duplicate names")
    return tuple(names)

"""PASCAL VOC annotations and splits: the checked reading of a VOC XML file (lxml).

One file is read here. Many files are read by ``voc_bulk.read_annotations``: the numpy
batch reader (``voc_batch``) takes the plain, valid ones and leaves every other file to
this module's reading, which also words every error. The limits below hold for both
readers (``voc_batch`` leaves anything near them to this reading, which decides).

Coordinates are kept exactly as written in the file: VOC uses 1-based,
inclusive pixel corners (``1 <= xmin <= xmax <= width``). Conversions to other
conventions (0-based, normalised) happen in the consumers, each documenting
its rule; this module never shifts them.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

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


#: Limits of one annotation, each an error naming the file (real VOC: at most 56 objects,
#: 500 x 500 pixels, 2 KB). Generous: they only stop files no tool means to write, which
#: would otherwise cost memory and time without bound, or overflow a 64-bit integer.
MAX_OBJECTS = 10_000
MAX_IMAGE_SIDE = 1_000_000
MAX_ANNOTATION_BYTES = 16 << 20
#: libxml2's own limit on one text node (XML_MAX_TEXT_LENGTH without huge_tree), applied here too, so
#: that the verdict does not depend on the libxml2 version lxml was built with (4.9.1's accepts more).
MAX_TEXT_BYTES = 10_000_000


@functools.cache
def _hardened_parser():
    """The one lxml parser of annotations, made on first use: a command whose files the batch
    reader takes whole never imports lxml (5 ms of its start)."""
    from lxml import etree

    # No entity expansion (billion laughs / XXE), no DTD or network access, no huge trees.
    return etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
        huge_tree=False, remove_comments=True, remove_pis=True,
    )


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
    """(width, height, depth) read from the image header only (Pillow, lazy).

    Raises ``ImageReadError`` naming the file (unreadable, or over ``images.MAX_IMAGE_PIXELS``).
    """
    from vocli.images import read_image_size

    return read_image_size(image_path)


def parse_annotation_bytes(
    data: bytes,
    path: str | os.PathLike = "<bytes>",
    classes: Sequence[str] | None = None,
    image_dir: str | os.PathLike | None = None,
) -> Annotation:
    """Parse the bytes of one VOC XML file with the checked lxml reading (see ``parse_annotation``)."""
    check_annotation_size(path, len(data))
    return _parse_annotation_checked(data, Path(path), classes, image_dir)


def _parse_annotation_checked(data: bytes, path: Path, classes: Sequence[str] | None,
                              image_dir: str | os.PathLike | None) -> Annotation:
    """The lxml reading of any well-formed file, naming exactly what is wrong with a bad one."""
    from lxml import etree

    try:
        root = etree.fromstring(data, _hardened_parser())
    except etree.XMLSyntaxError as err:
        raise AnnotationError(path, f"not valid XML ({err.msg})", hint="re-download or fix the file") from None
    if root is not None and len(data) > MAX_TEXT_BYTES and any(len(t) > MAX_TEXT_BYTES for t in root.itertext()):
        raise AnnotationError(path, f"not valid XML (a text node over {MAX_TEXT_BYTES:,} bytes)",
                              hint="re-download or fix the file")
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
    for tag, value in (("width", width), ("height", height), ("depth", depth)):
        if value > MAX_IMAGE_SIDE:
            raise AnnotationError(path, f"<{tag}> {value} is out of range",
                                  hint=f"at most {MAX_IMAGE_SIDE:,} is read")
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
        if i > MAX_OBJECTS:
            raise AnnotationError(path, f"more than {MAX_OBJECTS:,} objects",
                                  hint="real VOC images hold at most 56; split the annotation")
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
    return parse_annotation_bytes(read_annotation_file(path), path, classes=classes, image_dir=image_dir)


def read_annotation_file(path: str | os.PathLike) -> bytes:
    """The bytes of one annotation, at most ``MAX_ANNOTATION_BYTES``; ``AnnotationError`` naming the file otherwise."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_ANNOTATION_BYTES + 1)
    except FileNotFoundError:
        raise AnnotationError(path, "file not found") from None
    except IsADirectoryError:
        raise AnnotationError(path, "is a folder, not a file") from None
    except OSError as err:
        raise AnnotationError(path, f"cannot read ({err.strerror})") from None
    check_annotation_size(path, len(data))
    return data


def check_annotation_size(path, size: int) -> None:
    """``AnnotationError`` when a file of ``size`` bytes exceeds ``MAX_ANNOTATION_BYTES``."""
    if size > MAX_ANNOTATION_BYTES:
        raise AnnotationError(path, f"larger than the {MAX_ANNOTATION_BYTES / 2**20:g} MB limit of an annotation",
                              hint=f"real VOC annotations are about 1 KB; at most {MAX_OBJECTS:,} objects are read")


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

    def annotation_files(self, ids: Sequence[str]) -> list[str]:
        """``annotation_path`` of each id, as strings (for many ids: no ``Path`` per file)."""
        prefix = f"{self.dir}{os.sep}Annotations{os.sep}"
        return [f"{prefix}{image_id}.xml" for image_id in ids]

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

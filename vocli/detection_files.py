"""Detection files other tools and vocli exchange: darknet/devkit comp4 text files and vocli JSON lines.

Both hold boxes in VOC pixels, 1-based corners, like the VOC XML and the devkit:

- comp4 (one file per class, class taken from the file name ``*_det_*_<class>.txt``,
  e.g. ``comp4_det_test_dog.txt``): lines ``image_id score xmin ymin xmax ymax``.
- vocli JSON lines (``*.jsonl``, what ``vocli detect --save-json`` writes), one image per line:
  ``{"image_id": "000001", "detections": [{"class": "dog", "score": 0.91,
  "bbox": [xmin, ymin, xmax, ymax]}, ...]}``; extra keys (``class_id``, ``width``, ...) are ignored.
"""

from __future__ import annotations

import io
import itertools
import json
import math
import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from vocli.errors import VocliError
from vocli.metrics import Detections

COMP4_PATTERN = re.compile(r"^.*_det_.*_(?P<cls>.+)\.txt$")


class DetectionFileError(VocliError):
    """A detection file (comp4 text or JSON lines) is malformed."""


def comp4_class(path: str | os.PathLike, classes: Sequence[str]) -> str | None:
    """The class a ``*_det_*_<class>.txt`` file holds (longest known class name that ends the stem)."""
    name = Path(path).name
    if not COMP4_PATTERN.match(name):
        return None
    stem = name[:-4]
    found = [c for c in classes if stem.endswith("_" + c)]
    return max(found, key=len) if found else None


def read_comp4(path: str | os.PathLike, class_index: int) -> Detections:
    """Parse one comp4 file; every line becomes a detection of ``class_index``. Empty file -> none.

    The whole file goes through numpy's C text reader at once; only when it refuses the
    text does a line-by-line pass run, to name the offending line (or to accept what
    Python's ``float`` accepts and numpy does not, e.g. ``1_000``).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DetectionFileError(f"{path}: cannot read ({err.strerror})") from None
    if not data.strip():
        return _comp4_detections(np.empty(0, dtype=object), np.empty((0, 5)), class_index)
    raw = np.frombuffer(data, np.uint8)
    breaks = np.flatnonzero(raw == 10)
    # The longest line bounds every id; a giant line (never a real comp4 one) goes the slow way.
    longest = int(np.diff(breaks, prepend=-1, append=len(raw)).max())
    if longest > _LONGEST_FAST_LINE:
        return _read_comp4_lines(path, data, class_index)
    try:
        rows = np.loadtxt(io.BytesIO(data), dtype=[("image_id", f"S{longest}"), ("numbers", np.float64, (5,))],
                          comments=None, ndmin=1, encoding="bytes")
    except ValueError:
        return _read_comp4_lines(path, data, class_index)
    numbers = rows["numbers"]
    _check_finite(path, numbers, data)
    raw_ids = rows["image_id"]
    raw_ids = raw_ids.astype(f"S{max(1, int(np.char.str_len(raw_ids).max()))}")  # narrower sorts faster
    ids, codes = np.unique(raw_ids, return_inverse=True)  # decode each distinct id once
    try:
        names = np.array([name.decode("utf-8") for name in ids], dtype=object)
    except UnicodeDecodeError:
        return _read_comp4_lines(path, data, class_index)
    return _comp4_detections(names[codes.reshape(-1)], numbers, class_index)


# Lines longer than this (bytes) skip numpy's reader: its id field is as wide as the longest line.
_LONGEST_FAST_LINE = 1024


def _comp4_detections(image_ids: np.ndarray, numbers: np.ndarray, class_index: int) -> Detections:
    """numbers: (n, 5) score, xmin, ymin, xmax, ymax per line."""
    numbers = numbers.reshape(-1, 5)
    return Detections(image_ids=image_ids, boxes=numbers[:, 1:], scores=numbers[:, 0],
                      labels=np.full(len(numbers), class_index, np.int64))


def _read_comp4_lines(path: Path, data: bytes, class_index: int) -> Detections:
    """Line-by-line comp4 parse: the error path of ``read_comp4``, naming the first bad line."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        number = data[:err.start].count(b"\n") + 1
        raise DetectionFileError(f"{path}:{number}: not UTF-8 text", hint="comp4 files are plain text") from None
    ids, numbers = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 6:
            raise DetectionFileError(
                f"{path}:{number}: expected 6 fields `image_id score xmin ymin xmax ymax`, got {len(fields)}: "
                f"{line.strip()[:80]!r}", hint="fields are separated by whitespace, so image ids cannot hold spaces")
        try:
            numbers.append([float(v) for v in fields[1:]])
        except ValueError:
            raise DetectionFileError(f"{path}:{number}: score or box is not a number: {line.strip()[:80]!r}") from None
        ids.append(fields[0])
    numbers = np.array(numbers, np.float64).reshape(-1, 5)
    _check_finite(path, numbers, data)
    return _comp4_detections(np.array(ids, dtype=object), numbers, class_index)


def _check_finite(path: Path, numbers: np.ndarray, data: bytes) -> None:
    """numbers: (n, 5), one row per non-blank line of ``data``."""
    finite = np.isfinite(numbers).all(axis=1)
    if finite.all():
        return
    bad = int(np.flatnonzero(~finite)[0])
    # Blank lines before the bad row are counted only now, on the error path.
    nonblank = [i for i, line in enumerate(data.decode("utf-8", "replace").splitlines()) if line.strip()]
    raise DetectionFileError(f"{path}:{nonblank[bad] + 1}: score or box is not finite")


def read_jsonl(path: str | os.PathLike, classes: Sequence[str]) -> Detections:
    """Parse vocli JSON lines (see module docstring); class names must be in ``classes``.

    Fields of all detections are converted column by column; when anything is off, a
    line-by-line pass names the first bad line.
    """
    path = Path(path)
    index = {c: i for i, c in enumerate(classes)}
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise DetectionFileError(f"{path}: cannot read ({err.strerror})") from None
    except UnicodeDecodeError:
        raise DetectionFileError(f"{path}: not UTF-8 text", hint="vocli JSON lines are UTF-8") from None
    try:
        records = [json.loads(line) for line in text.splitlines() if line.strip()]
        per_image = [record.get("detections", []) for record in records]
        ids = np.array([str(record["image_id"]) for record in records], dtype=object)
        dets = [det for image in per_image for det in image]
        labels = np.fromiter(map(index.__getitem__, [det["class"] for det in dets]), np.int64, len(dets))
        scores = np.fromiter(map(float, [det["score"] for det in dets]), np.float64, len(dets))
        bboxes = [det["bbox"] for det in dets]
        if any(n != 4 for n in map(len, bboxes)):
            raise ValueError("bbox needs 4 numbers")
        boxes = np.fromiter(map(float, itertools.chain.from_iterable(bboxes)), np.float64, 4 * len(dets))
        if not (np.isfinite(scores).all() and np.isfinite(boxes).all()):  # NaN, Infinity: as comp4 does
            raise ValueError("not finite")
    except (ValueError, KeyError, TypeError, AttributeError):
        return _read_jsonl_lines(path, text, index)
    return Detections(np.repeat(ids, [len(image) for image in per_image]), boxes.reshape(-1, 4), scores, labels)


def _read_jsonl_lines(path: Path, text: str, index: dict[str, int]) -> Detections:
    """Line-by-line JSON lines parse: the error path of ``read_jsonl``, naming the first bad line."""
    ids, boxes, scores, labels = [], [], [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            image_id = str(record["image_id"])
            for det in record.get("detections", []):
                name = det["class"]
                if name not in index:
                    raise DetectionFileError(f"{path}:{number}: unknown class {name!r}",
                                             hint="pass the class list the detections use (--classes)")
                box = [float(v) for v in det["bbox"]]
                if len(box) != 4:
                    raise ValueError("bbox needs 4 numbers")
                score = float(det["score"])
                if not all(map(math.isfinite, [score, *box])):
                    raise DetectionFileError(f"{path}:{number}: score or box is not finite")
                ids.append(image_id)
                boxes.append(box)
                scores.append(score)
                labels.append(index[name])
        except DetectionFileError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise DetectionFileError(
                f"{path}:{number}: not a vocli detection line ({type(err).__name__}: {err})",
                hint='expected {"image_id": ..., "detections": [{"class", "score", "bbox"}]}') from None
    return Detections(np.array(ids, dtype=object), np.array(boxes, np.float64).reshape(-1, 4),
                      np.array(scores, np.float64), np.array(labels, np.int64))


def load_detections(source: str | os.PathLike, classes: Sequence[str]) -> tuple[Detections, list[Path]]:
    """Detections from a comp4 file, a ``.jsonl`` file, or a folder of them. Returns them and the files read."""
    source = Path(source).expanduser()
    if source.is_dir():
        files = sorted(p for p in source.iterdir()
                       if p.is_file() and (p.suffix in (".jsonl", ".json") or COMP4_PATTERN.match(p.name)))
        if not files:
            raise DetectionFileError(f"{source}: no *_det_*_<class>.txt or *.jsonl files",
                                     hint="point --detections at darknet's results/ folder or a vocli .jsonl")
    elif source.is_file():
        files = [source]
    else:
        raise DetectionFileError(f"{source}: no such file or folder")
    parts = []
    for path in files:
        if path.suffix in (".jsonl", ".json"):
            parts.append(read_jsonl(path, classes))
            continue
        name = comp4_class(path, classes)
        if name is None:
            raise DetectionFileError(f"{path}: cannot tell the class from the file name",
                                     hint=f"name it <prefix>_det_<set>_<class>.txt with a class from: {', '.join(classes)}")
        parts.append(read_comp4(path, list(classes).index(name)))
    return Detections.concat(parts), files


def to_voc_pixels(boxes: np.ndarray, width: float, height: float) -> np.ndarray:
    """(N, 4) xyxy original 0-based continuous pixels -> VOC 1-based corners (darknet convention: + 1),
    clipped to ``1 <= x <= width``, ``1 <= y <= height`` as the VOC XML of the same boxes is.

    The inverse of ``converters.voc_to_yolo``'s default labels, so model boxes and
    ground truth converted to labels meet in the same frame. A box reaching the image's
    right edge (x2 = width) would be ``width + 1`` unclipped, a pixel outside the image.
    """
    corners = np.asarray(boxes, np.float64).reshape(-1, 4) + 1.0
    limit = np.array([width, height, width, height], np.float64)
    return np.minimum(np.maximum(corners, 1.0), limit)


def detection_json_line(image_id: str, boxes_voc: np.ndarray, scores: np.ndarray, class_ids: np.ndarray,
                        classes: Sequence[str], **extra) -> str:
    """One vocli JSON line. boxes_voc: (n, 4) VOC 1-based pixels; scores, class_ids: (n,)."""
    # Full float precision, so scoring the file gives exactly what scoring the model gives.
    dets = [{"class": classes[int(c)], "class_id": int(c), "score": float(s), "bbox": [float(v) for v in box]}
            for box, s, c in zip(np.asarray(boxes_voc).reshape(-1, 4), scores, class_ids)]
    return json.dumps({"image_id": image_id, **extra, "detections": dets}) + "\n"

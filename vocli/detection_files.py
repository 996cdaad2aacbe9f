"""Detection files other tools and vocli exchange: darknet/devkit comp4 text files and vocli JSON lines.

Both hold boxes in VOC pixels, 1-based corners, like the VOC XML and the devkit:

- comp4 (one file per class, class taken from the file name ``*_det_*_<class>.txt``,
  e.g. ``comp4_det_test_dog.txt``): lines ``image_id score xmin ymin xmax ymax``.
- vocli JSON lines (``*.jsonl``, what ``vocli detect --save-json`` writes), one image per line:
  ``{"image_id": "000001", "detections": [{"class": "dog", "score": 0.91,
  "bbox": [xmin, ymin, xmax, ymax]}, ...]}``; extra keys (``class_id``, ``width``, ...) are ignored.
"""

from __future__ import annotations

import json
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
    """Parse one comp4 file; every line becomes a detection of ``class_index``. Empty file -> none."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise DetectionFileError(f"{path}: cannot read ({err.strerror})") from None
    lines = [line for line in text.splitlines() if line.strip()]
    tokens = text.split()
    if len(tokens) != 6 * len(lines):
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip() and len(line.split()) != 6:
                raise DetectionFileError(
                    f"{path}:{number}: expected `image_id score xmin ymin xmax ymax`, got {line.strip()[:80]!r}")
    try:
        numbers = np.array([tokens[i::6] for i in range(1, 6)], dtype=np.float64).T.reshape(-1, 5)
    except ValueError:
        for number, row in enumerate((line.split() for line in lines), start=1):
            try:
                [float(v) for v in row[1:]]
            except ValueError:
                raise DetectionFileError(f"{path}:{number}: score or box is not a number: {' '.join(row)!r}") from None
        raise
    if not np.isfinite(numbers).all():
        bad = int(np.flatnonzero(~np.isfinite(numbers).all(axis=1))[0]) + 1
        raise DetectionFileError(f"{path}:{bad}: score or box is not finite")
    return Detections(image_ids=np.array(tokens[0::6], dtype=object), boxes=numbers[:, 1:], scores=numbers[:, 0],
                      labels=np.full(len(numbers), class_index, np.int64))


def read_jsonl(path: str | os.PathLike, classes: Sequence[str]) -> Detections:
    """Parse vocli JSON lines (see module docstring); class names must be in ``classes``."""
    path = Path(path)
    index = {c: i for i, c in enumerate(classes)}
    ids, boxes, scores, labels = [], [], [], []
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise DetectionFileError(f"{path}: cannot read ({err.strerror})") from None
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
                ids.append(image_id)
                boxes.append(box)
                scores.append(float(det["score"]))
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


def to_voc_pixels(boxes: np.ndarray) -> np.ndarray:
    """(N, 4) xyxy original 0-based continuous pixels -> VOC 1-based corners (darknet convention: + 1).

    The inverse of ``converters.voc_to_yolo``'s default labels, so model boxes and
    ground truth converted to labels meet in the same frame.
    """
    return np.asarray(boxes, np.float64).reshape(-1, 4) + 1.0


def detection_json_line(image_id: str, boxes_voc: np.ndarray, scores: np.ndarray, class_ids: np.ndarray,
                        classes: Sequence[str], **extra) -> str:
    """One vocli JSON line. boxes_voc: (n, 4) VOC 1-based pixels; scores, class_ids: (n,)."""
    # Full float precision, so scoring the file gives exactly what scoring the model gives.
    dets = [{"class": classes[int(c)], "class_id": int(c), "score": float(s), "bbox": [float(v) for v in box]}
            for box, s, c in zip(np.asarray(boxes_voc).reshape(-1, 4), scores, class_ids)]
    return json.dumps({"image_id": image_id, **extra, "detections": dets}) + "\n"

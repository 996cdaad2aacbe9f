"""COCO JSON both ways: "instances" ground truth and "results" detections.

Boxes: ``vocli.boxes.voc_to_coco`` / ``coco_to_voc`` hold the one pixel rule.

Ids are stable, so files written at different times agree:

* image id: the VOC id as an integer with underscores dropped (``000005`` -> 5,
  ``2008_000008`` -> 2008000008) when every id of the list is digits and underscores and
  no two collide; otherwise the 1-based position in the list, for every image of it.
* category id: 1..C in class-list order (0 is never used: pycocotools reads a match to
  an annotation id 0 as "no match", so annotation ids also start at 1).

Difficult objects are kept with ``iscrowd: 1`` and ``ignore: 0``, exactly as mmdetection's
``tools/dataset_converters/pascal_voc.py`` marks them: pycocotools' ``COCOeval`` overwrites
``ignore`` with ``iscrowd``, so ``iscrowd`` is the flag that leaves them out of the count (a
detection on one is neither TP nor FP); and mmdetection's COCO loader drops an annotation with
``ignore: 1`` altogether but puts an ``iscrowd`` one among the boxes to ignore in training.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from vocli.boxes import voc_to_coco
from vocli.errors import VocliError

_NUMERIC_ID = re.compile(r"[0-9_]+")


class CocoFormatError(VocliError):
    """A COCO JSON file that cannot be read as instances or results."""


def coco_image_ids(voc_ids: Sequence[str]) -> list[int]:
    """The COCO image id of each VOC id (see the module docstring for the rule)."""
    numeric = [int(i.replace("_", "")) for i in voc_ids
               if _NUMERIC_ID.fullmatch(i) and any(ch.isdigit() for ch in i)]
    if len(numeric) == len(voc_ids) and len(set(numeric)) == len(numeric):
        return numeric
    return list(range(1, len(voc_ids) + 1))


def category_list(classes: Sequence[str]) -> list[dict]:
    """COCO ``categories``: ids 1..C in class-list order."""
    return [{"id": i + 1, "name": name, "supercategory": "none"} for i, name in enumerate(classes)]


def instances_document(images: Sequence[dict], classes: Sequence[str], description: str = "") -> dict:
    """A COCO instances document.

    images: per image ``{"voc_id", "file_name", "width", "height", "boxes" (n, 4) VOC corners,
    "labels" (n,) class indices, "difficult" (n,) bool}``.
    """
    image_ids = coco_image_ids([im["voc_id"] for im in images])
    out_images, annotations = [], []
    next_id = 1
    for image_id, im in zip(image_ids, images):
        out_images.append({"id": image_id, "file_name": im["file_name"], "width": int(im["width"]),
                           "height": int(im["height"])})
        xywh = voc_to_coco(np.asarray(im["boxes"], np.float64).reshape(-1, 4))
        for box, label, difficult in zip(xywh.tolist(), np.asarray(im["labels"]).tolist(),
                                         np.asarray(im["difficult"]).tolist()):
            annotations.append({"id": next_id, "image_id": image_id, "category_id": int(label) + 1,
                                "bbox": [_number(v) for v in box], "area": _number(box[2] * box[3]),
                                "iscrowd": int(bool(difficult)), "ignore": 0,
                                "segmentation": []})
            next_id += 1
    return {"info": {"description": description, "version": "1.0", "contributor": "vocli"},
            "licenses": [], "images": out_images, "annotations": annotations,
            "categories": category_list(classes)}


def results_list(image_ids: Sequence[int], boxes_voc: np.ndarray, scores: np.ndarray,
                 labels: np.ndarray) -> list[dict]:
    """COCO results entries ``{image_id, category_id, bbox, score}``; boxes (n, 4) VOC corners."""
    xywh = voc_to_coco(np.asarray(boxes_voc, np.float64).reshape(-1, 4)).tolist()
    return [{"image_id": int(i), "category_id": int(c) + 1, "bbox": box, "score": float(s)}
            for i, box, s, c in zip(image_ids, xywh, np.asarray(scores).tolist(), np.asarray(labels).tolist())]


def _number(v: float):
    """Whole numbers as JSON integers (the usual look of COCO files), others exactly."""
    return int(v) if float(v).is_integer() else float(v)


def load_json(path: str | os.PathLike, what: str):
    path = Path(path).expanduser()
    try:
        with open(path, "rb") as f:
            return json.load(f)
    except FileNotFoundError:
        raise CocoFormatError(f"{path}: {what} not found") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise CocoFormatError(f"{path}: not valid JSON ({err})", hint=f"expected a COCO {what}") from None


def read_instances(path: str | os.PathLike) -> dict:
    """A COCO instances file, checked for the keys vocli uses."""
    doc = load_json(path, "instances file")
    if not isinstance(doc, dict) or not all(isinstance(doc.get(k), list) for k in ("images", "annotations",
                                                                                    "categories")):
        raise CocoFormatError(f"{path}: not a COCO instances file",
                              hint="expected a JSON object with images, annotations and categories lists")
    return doc


def read_results(path: str | os.PathLike, classes: Sequence[str], image_ids: Sequence[int]):
    """A COCO results file -> (image index (K,) into ``image_ids``, xywh (K, 4), scores (K,), labels (K,)).

    category_id c is class ``c - 1``; ids outside 1..C or images not in ``image_ids`` are errors.
    """
    doc = load_json(path, "results file")
    if not isinstance(doc, list):
        raise CocoFormatError(f"{path}: not a COCO results file",
                              hint='expected a JSON list of {"image_id", "category_id", "bbox", "score"}')
    try:
        img = np.array([d["image_id"] for d in doc], np.int64)
        cat = np.array([d["category_id"] for d in doc], np.int64)
        xywh = np.array([d["bbox"] for d in doc], np.float64).reshape(-1, 4)
        scores = np.array([d["score"] for d in doc], np.float64)
    except (KeyError, TypeError, ValueError) as err:
        raise CocoFormatError(f"{path}: a result lacks image_id, category_id, a 4-number bbox or score ({err})",
                              hint='each entry: {"image_id": int, "category_id": int, "bbox": [x, y, w, h], '
                                   '"score": float}') from None
    if len(cat) and (cat.min() < 1 or cat.max() > len(classes)):
        raise CocoFormatError(f"{path}: category_id outside 1..{len(classes)}",
                              hint="category ids are 1..C in class-list order (vocli convert coco)")
    known = np.asarray(image_ids, np.int64)
    order = np.argsort(known, kind="stable")
    if len(known) == 0:
        found, pos = np.zeros(len(img), bool), np.zeros(len(img), np.int64)
    else:
        pos = np.minimum(np.searchsorted(known[order], img), len(known) - 1)
        found = known[order][pos] == img
    if not np.all(found):
        missing = sorted(set(img[~found].tolist()))
        raise CocoFormatError(f"{path}: {len(missing)} image id(s) not in the evaluated set, e.g. {missing[0]}",
                              hint="evaluate the sets the detections were made on (--sets); ids as `vocli "
                                   "convert coco` gives them")
    return order[pos], xywh, scores, cat - 1

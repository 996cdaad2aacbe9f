"""COCO "instances" JSON + images to a VOC tree (``vocli convert voc --from-coco``).

Corners by ``vocli.boxes.coco_to_voc`` (``xmin = x + 1``, ``xmax = x + w``), rounded half up
to VOC's whole 1-based pixels and clipped into the image, so a file written by ``vocli
convert coco`` gives back every integer corner exactly. ``iscrowd`` (or ``ignore``) objects
come back ``difficult``. VOC ids are the image file names without extension; sizes come
from ``images[].width/height``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from converters._common import Progress, write_if_changed
from converters.yolo_to_voc import annotation_xml, place_image
from vocli.boxes import coco_to_voc
from vocli.coco import CocoFormatError, read_instances
from vocli.datasets.voc import CLASS_LIST_FILE, VOC_CLASSES
from vocli.errors import VocliError
from vocli.paths import atomic_write_text


@dataclass
class CocoToVocResult:
    out: Path  # the VOC<name> folder written
    split_file: Path
    classes: tuple[str, ...]
    images: int
    objects: int
    difficult: int
    annotations_written: int
    annotations_unchanged: int
    seconds: float
    missing_images: list[str] = field(default_factory=list)  # annotations written, no image to link


def voc_corners_from_coco(xywh: np.ndarray, width: float, height: float) -> np.ndarray:
    """(N, 4) COCO boxes of one image -> (N, 4) int64 VOC corners, rounded half up, ``1 <= xmin <= xmax <= W``."""
    corners = np.floor(coco_to_voc(np.asarray(xywh, np.float64).reshape(-1, 4)) + 0.5)
    xmin = np.clip(corners[:, 0], 1, width)
    ymin = np.clip(corners[:, 1], 1, height)
    xmax = np.clip(corners[:, 2], xmin, width)
    ymax = np.clip(corners[:, 3], ymin, height)
    return np.stack([xmin, ymin, xmax, ymax], axis=1).astype(np.int64)


def _class_names(doc: dict, path) -> tuple[tuple[str, ...], dict[int, str]]:
    try:
        cats = sorted(((int(c["id"]), str(c["name"])) for c in doc["categories"]))
    except (KeyError, TypeError, ValueError):
        raise CocoFormatError(f"{path}: a category lacks an integer id or a name") from None
    names = tuple(name for _, name in cats)
    if len(set(names)) != len(names):
        raise CocoFormatError(f"{path}: two categories share a name", hint="VOC classes are told apart by name")
    return names, dict(cats)


def convert_voc_from_coco(instances: str | os.PathLike, images: str | os.PathLike,
                          out: Optional[str | os.PathLike] = None, split: str = "train",
                          copy_images: bool = False, overwrite: bool = False,
                          progress: Progress = None) -> CocoToVocResult:
    """Write ``Annotations/<id>.xml``, ``ImageSets/Main/<split>.txt`` and ``JPEGImages/`` under ``out``.

    ``images``: the folder the instances' ``file_name``s are relative to (images are symlinked,
    or copied with ``copy_images``). ``out`` defaults to the folder holding ``images`` when that
    is a ``JPEGImages`` folder. A ``classes.txt`` is written when the categories are not VOC's 20
    in order. Annotations or a split list that exist with other content need ``overwrite``.
    Images not found are listed in ``missing_images``; their annotations are still written.
    """
    started = time.perf_counter()
    doc = read_instances(instances)
    source = Path(images).expanduser()
    if not source.is_dir():
        raise VocliError(f"{source}: image folder not found", hint="pass --images DIR, the folder of the "
                                                                   "instances' file_name entries")
    if out is None:
        if source.name != "JPEGImages":
            raise VocliError(f"{source}: cannot tell where to write the VOC tree", hint="pass --out VOCdevkit/VOC<name>")
        out = source.parent
    out = Path(out).expanduser().resolve()
    names, by_id = _class_names(doc, instances)
    boxes: dict[int, list] = {}
    try:
        for ann in doc["annotations"]:
            boxes.setdefault(int(ann["image_id"]), []).append(
                (by_id[int(ann["category_id"])], [float(v) for v in ann["bbox"]],
                 bool(ann.get("iscrowd", 0)) or bool(ann.get("ignore", 0))))
        listed = [(int(im["id"]), str(im["file_name"]), int(im["width"]), int(im["height"])) for im in doc["images"]]
    except (KeyError, TypeError, ValueError) as err:
        raise CocoFormatError(f"{instances}: an image or annotation lacks a field vocli needs ({err})",
                              hint="images need id, file_name, width, height; annotations image_id, "
                                   "category_id, bbox") from None
    ids = [Path(name).stem for _, name, _, _ in listed]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise VocliError(f"{instances}: two images share the id {dup!r}", hint="VOC ids are file names without extension")
    for folder in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    split_file = out / "ImageSets" / "Main" / f"{split}.txt"
    if not overwrite and split_file.exists() and split_file.read_text(encoding="utf-8").split() != ids:
        raise VocliError(f"{split_file} exists with other ids", hint="pass --split NAME, or --overwrite to replace it")
    objects = difficult = written = unchanged = 0
    missing: list[str] = []
    for done, ((image_id, file_name, width, height), voc_id) in enumerate(zip(listed, ids), start=1):
        image = source / file_name
        found = boxes.get(image_id, [])
        xywh = np.array([b for _, b, _ in found], np.float64).reshape(-1, 4)
        flags = [d for _, _, d in found]
        xml = annotation_xml(out.name, Path(file_name).name, width, height, 3, [n for n, _, _ in found],
                             voc_corners_from_coco(xywh, width, height), flags, database="vocli convert voc --from-coco")
        target = out / "Annotations" / f"{voc_id}.xml"
        if not overwrite and target.exists() and target.read_bytes() != xml.encode("utf-8"):
            raise VocliError(f"{target} exists with other content", hint="pass --overwrite to replace it, or another --out")
        if write_if_changed(target, xml.encode("utf-8")):
            written += 1
        else:
            unchanged += 1
        if image.is_file():
            place_image(image, out / "JPEGImages" / Path(file_name).name, copy_images)
        else:
            missing.append(str(image))
        objects += len(found)
        difficult += sum(flags)
        if progress is not None:
            progress(done, len(listed))
    if overwrite or not split_file.exists():
        atomic_write_text(split_file, "".join(f"{i}\n" for i in ids))
    if names != VOC_CLASSES:
        atomic_write_text(out / CLASS_LIST_FILE, "".join(f"{n}\n" for n in names))
    return CocoToVocResult(out=out, split_file=split_file, classes=names, images=len(listed), objects=objects,
                           difficult=difficult, annotations_written=written, annotations_unchanged=unchanged,
                           seconds=time.perf_counter() - started, missing_images=missing)

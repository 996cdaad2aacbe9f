"""VOC sets to COCO "instances" JSON, one file per set, as mmdetection and detectron2 read them.

Boxes by ``vocli.boxes.voc_to_coco`` (``x = xmin - 1``, ``w = xmax - xmin + 1``; inverse
``xmin = x + 1``, ``xmax = x + w``); ids and the difficult flag (``iscrowd: 1``) as
``vocli.coco`` describes. ``area`` is ``w * h``, the number pycocotools' area ranges use.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from converters._common import Progress
from vocli.coco import instances_document
from vocli.datasets.voc import VOC_CLASSES, dataset_classes, devkit_dir, read_classes, resolve_sets
from vocli.datasets.voc_bulk import read_annotations
from vocli.outputs import check_output_dir
from vocli.paths import atomic_write_text


@dataclass
class CocoSetFile:
    set: str
    path: Path
    images: int
    objects: int
    difficult: int


@dataclass
class CocoConvertResult:
    out: Path
    classes: tuple[str, ...]
    files: list[CocoSetFile] = field(default_factory=list)
    seconds: float = 0.0


def resolve_classes(voc_sets, classes) -> tuple[str, ...]:
    """Names given, a class-list file, the sets' ``classes.txt``, else the 20 VOC classes."""
    if classes is None:
        found = dataset_classes(voc_sets)
        return found[0] if found else VOC_CLASSES
    if isinstance(classes, (str, os.PathLike)):
        return read_classes(classes)
    return tuple(classes)


def convert_coco(root: str | os.PathLike, sets: Optional[str] = None, out: Optional[str | os.PathLike] = None,
                 classes: Sequence[str] | str | os.PathLike | None = None, workers: Optional[int] = None,
                 progress: Progress = None) -> CocoConvertResult:
    """Write ``instances_<year>_<split>.json`` for each VOC set under ``root``.

    ``sets``: ``"2007/test,2012/val"`` (default: the standard sets present). ``out``: folder
    for the files (default: ``annotations/`` beside ``VOCdevkit``). ``classes``: names or a
    class-list file (default: the folders' ``classes.txt``, else VOC's 20); category ids
    are 1..C in that order. Raises ``AnnotationError`` for the first bad file.
    """
    start = time.perf_counter()
    voc_sets = resolve_sets(root, sets)
    names = resolve_classes(voc_sets, classes)
    out_dir = Path(out).expanduser() if out is not None else devkit_dir(root).parent / "annotations"
    # The one output rule (vocli.outputs): its own instances files are replaced, an input never is.
    check_output_dir(out_dir, [vs.split_file for vs in voc_sets],
                     [out_dir / f"instances_{vs.year}_{vs.split}.json" for vs in voc_sets], overwrite=True)
    result = CocoConvertResult(out=out_dir, classes=names)
    set_ids = [vs.ids() for vs in voc_sets]
    listed = [(vs, image_id) for vs, ids in zip(voc_sets, set_ids) for image_id in ids]
    done = 0

    def report(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(done, len(listed))

    table = read_annotations([vs.annotation_path(i) for vs, i in listed], classes=names,
                             workers=workers, progress=report)
    if table.errors:  # a COCO file lists every image of its set: an invalid annotation stops the run
        raise table.invalid[0]
    annotations = [table.annotation(row) for row in range(len(table))]
    at = 0
    for vs, ids in zip(voc_sets, set_ids):
        part = annotations[at:at + len(ids)]
        images = [{"voc_id": ann.image_id, "file_name": ann.filename or f"{ann.image_id}.jpg",
                   "width": ann.width, "height": ann.height, "boxes": ann.boxes(), "labels": ann.labels(names),
                   "difficult": ann.difficult()} for ann in part]
        at += len(ids)
        doc = instances_document(images, names, description=f"PASCAL VOC {vs.name}, by vocli convert coco")
        path = out_dir / f"instances_{vs.year}_{vs.split}.json"
        atomic_write_text(path, json.dumps(doc, separators=(",", ":")))
        difficult = sum(int(im["difficult"].sum()) for im in images)
        result.files.append(CocoSetFile(set=vs.name, path=path, images=len(images),
                                        objects=len(doc["annotations"]), difficult=difficult))
    result.seconds = time.perf_counter() - start
    return result

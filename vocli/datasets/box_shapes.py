"""Box shapes of a dataset, from VOC XML, darknet YOLO label lists, or `convert ssd` HDF5 targets.

Shapes are ``(w, h)`` relative to their image, in (0, 1]. Zero-size boxes are
dropped and counted, never silently kept (they would break IoU-based code).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from vocli.errors import AnnotationError, DatasetNotFoundError

#: Default VOC sets for anchors and statistics: training data only, never test.
DEFAULT_SETS: tuple[str, ...] = ("2007/trainval", "2012/trainval")

Progress = Optional[Callable[[int], None]]


@dataclass
class BoxShapes:
    """Box shapes gathered from a dataset. wh: (N, 2) float64, relative to the image, all > 0."""

    wh: np.ndarray
    source: str
    images: int
    dropped_zero: int = 0
    missing_labels: int = 0
    invalid: list = field(default_factory=list)  # InvalidFile of each annotation left out


def _finish_shapes(wh: np.ndarray, source: str, images: int, missing: int = 0, invalid=()) -> BoxShapes:
    wh = np.asarray(wh, dtype=np.float64).reshape(-1, 2)
    keep = (wh > 0).all(axis=1) & np.isfinite(wh).all(axis=1)
    return BoxShapes(np.minimum(wh[keep], 1.0), source, images, int((~keep).sum()), missing, list(invalid))


def voc_shapes(root, sets=None, include_difficult: bool = False, progress: Progress = None,
               workers: Optional[int] = None) -> BoxShapes:
    """Shapes from VOC XML. ``sets`` default: 2007/trainval and 2012/trainval where present.

    A box covers ``xmax - xmin + 1`` pixels (VOC corners are inclusive); an
    image listed in several sets counts once. The files are read by
    ``voc_bulk.read_annotations`` over ``workers`` processes; invalid ones are left
    out and listed in ``invalid``.
    """
    from converters._common import invalid_annotation
    from vocli.datasets.voc import resolve_sets
    from vocli.datasets.voc_bulk import read_annotations

    voc_sets = resolve_sets(root, sets, default=DEFAULT_SETS)
    if sets is None and all(vs.name not in DEFAULT_SETS for vs in voc_sets):
        # Fallback discovery: prefer trainval (else train + val) per year; never mix test in.
        names = {vs.name for vs in voc_sets}
        voc_sets = [vs for vs in voc_sets if vs.split != "test" and not (
            vs.split in ("train", "val") and f"{vs.year}/trainval" in names)] or voc_sets
    paths = list(dict.fromkeys(path for vs in voc_sets for path in vs.annotation_files(vs.ids())))
    table = read_annotations(paths, workers=workers, progress=progress)
    keep = slice(None) if include_difficult else ~table.difficult
    box, image = table.boxes[keep], table.object_file()[keep]
    wh = np.stack([(box[:, 2] - box[:, 0] + 1) / table.width[image],
                   (box[:, 3] - box[:, 1] + 1) / table.height[image]], axis=1)
    return _finish_shapes(wh, ",".join(vs.name for vs in voc_sets), len(paths) - len(table.errors),
                          invalid=[invalid_annotation(err) for err in table.invalid])


def yolo_list_shapes(list_file, progress: Progress = None) -> BoxShapes:
    """Shapes from a darknet list file (image paths) and its YOLO labels (``class cx cy w h``).

    A ``.data`` file stands for its ``train`` list. Relative image paths are
    taken relative to the list file's folder. Images without a label file
    are counted as ``missing_labels``.
    """
    from converters.voc_to_yolo import label_path_for, read_data_file

    list_file = Path(list_file)
    if list_file.suffix == ".data":
        list_file = read_data_file(list_file).train
    try:
        lines = list_file.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DatasetNotFoundError(f"{list_file}: list file not found", hint="pass --labels train.txt from `vocli convert yolo`") from None
    images = [Path(line.strip()) for line in lines if line.strip()]
    rows, missing = [], 0
    for image in images:
        label = label_path_for(image if image.is_absolute() else list_file.parent / image)
        try:
            values = label.read_text(encoding="utf-8").split()
        except FileNotFoundError:
            missing += 1
            continue
        if len(values) % 5:
            raise AnnotationError(label, f"expected 5 numbers per line (class cx cy w h), got {len(values)} numbers")
        try:
            rows.append(np.array(values, dtype=np.float64).reshape(-1, 5)[:, 3:5])
        except ValueError:
            raise AnnotationError(label, "not all values are numbers") from None
        if progress:
            progress(1)
    wh = np.concatenate(rows) if rows else np.zeros((0, 2))
    return _finish_shapes(wh, str(list_file), len(images), missing)


def hdf5_shapes(path, include_difficult: bool = False) -> BoxShapes:
    """Shapes from a ``convert ssd`` targets file (``gt_boxes`` normalised xyxy, ``gt_difficult``)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            boxes = np.asarray(f["gt_boxes"], dtype=np.float64).reshape(-1, 4)
            difficult = np.asarray(f["gt_difficult"], dtype=bool) if "gt_difficult" in f else np.zeros(len(boxes), bool)
            images = len(f["image_ids"]) if "image_ids" in f else 0
    except (OSError, KeyError, ValueError) as err:
        from vocli.hdf5_errors import hdf5_failure_reason

        raise AnnotationError(path, f"not a `vocli convert ssd` targets file: {hdf5_failure_reason(err)}",
                          hint="expected HDF5 with gt_boxes and gt_difficult") from None
    if not include_difficult:
        boxes = boxes[~difficult]
    return _finish_shapes(boxes[:, 2:] - boxes[:, :2], str(path), images)


def load_shapes(root=None, sets=None, labels=None, include_difficult: bool = False,
                progress: Progress = None, workers: Optional[int] = None) -> BoxShapes:
    """Box shapes from ``labels`` (.h5/.hdf5 targets, .data or list file) or else VOC XML under ``root``."""
    if labels is not None:
        if Path(labels).suffix.lower() in (".h5", ".hdf5"):
            return hdf5_shapes(labels, include_difficult)
        return yolo_list_shapes(labels, progress)
    from vocli.paths import data_root

    return voc_shapes(root if root is not None else data_root(), sets, include_difficult, progress, workers)

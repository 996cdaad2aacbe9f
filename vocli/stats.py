"""``vocli stats``: what is in a VOC-layout dataset, split by split, and what looks wrong.

Annotations are read by ``vocli.datasets.voc_bulk.read_annotations``; a file it
rejects (not XML, box outside the image, inverted box, missing) is recorded as
an anomaly naming the file and the reason, and the rest of the split is still
counted. Box sizes follow VOC's inclusive pixel rule: a box from xmin=1 to
xmax=10 is 10 pixels wide.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

import numpy as np

from vocli.boxes import box_iou_paired
from vocli.datasets.shapes import SHAPES_CLASSES
from vocli.datasets.voc import VOC_CLASSES, Annotation, VocSet, discover_sets, resolve_sets
from vocli.datasets.voc_bulk import AnnotationTable, read_annotations
from vocli.errors import AnnotationError, DatasetNotFoundError

#: Two boxes of the same class in one image with at least this IoU count as duplicates.
DUPLICATE_IOU = 0.95
#: Known class lists tried, in order, when no class list is given.
KNOWN_CLASS_LISTS: tuple[tuple[str, ...], ...] = (VOC_CLASSES, SHAPES_CLASSES)
_MAX_SCATTER_POINTS = 6000

MISSING_LISTED = 5  # missing images named in a result (the count covers them all)
ANOMALY_KINDS = ("missing_annotation", "invalid_annotation", "box_outside_image", "inverted_box",
                 "zero_size_box", "duplicate_box", "no_objects", "unknown_class")


@dataclass
class Summary:
    """Distribution of one quantity: count, mean and percentiles (p5 ... p95)."""

    count: int
    mean: float
    min: float
    p5: float
    p25: float
    median: float
    p75: float
    p95: float
    max: float

    @classmethod
    def of(cls, values: Iterable[float]) -> "Summary":
        v = np.asarray(list(values), dtype=np.float64)
        if v.size == 0:
            nan = float("nan")
            return cls(0, nan, nan, nan, nan, nan, nan, nan, nan)
        p = np.percentile(v, [0, 5, 25, 50, 75, 95, 100])
        return cls(int(v.size), float(v.mean()), *(float(x) for x in p))


@dataclass
class ClassCount:
    name: str
    objects: int = 0
    difficult: int = 0
    truncated: int = 0
    images: int = 0  # images holding at least one object of the class


@dataclass
class Anomaly:
    """One problem: ``kind`` is one of ``ANOMALY_KINDS``; ``file`` the annotation; ``detail`` why."""

    kind: str
    file: str
    detail: str


@dataclass
class SplitStats:
    """Counts and distributions of one split (``2007/trainval``) or of all splits together (``all``).

    Box ``width``/``height`` in pixels (VOC inclusive), ``aspect`` = width / height,
    ``relative_size`` = sqrt(box area / image area).
    """

    name: str
    images: int  # ids listed (or distinct annotation files for ``all``)
    annotated: int  # annotation files parsed without error
    objects: int
    difficult: int
    truncated: int
    per_class: list[ClassCount]
    image_sizes: dict  # distinct, most_common [(w, h, n)], width / height Summary
    box_width: Summary
    box_height: Summary
    aspect: Summary
    relative_size: Summary
    boxes_per_image: Summary
    missing_images: int  # listed ids whose JPEGImages/<id>.jpg is absent
    anomaly_counts: dict[str, int] = field(default_factory=dict)
    anomalies: list[Anomaly] = field(default_factory=list)


@dataclass
class StatsResult:
    root: Path
    classes: tuple[str, ...]
    classes_source: str  # "given", "VOC", "shapes" or "found"
    splits: list[SplitStats]
    total: SplitStats
    plots: list[Path] = field(default_factory=list)
    missing_image_files: list[str] = field(default_factory=list)  # the first few listed images without a file


def _classify(err: AnnotationError) -> str:
    reason = err.reason
    if reason == "file not found" or reason.startswith("cannot read"):
        return "missing_annotation"
    if "outside the" in reason:
        return "box_outside_image"
    if "inverted" in reason:
        return "inverted_box"
    return "invalid_annotation"


def _choose_classes(names: set[str], classes: Optional[Sequence[str]]) -> tuple[tuple[str, ...], str]:
    if classes is not None:
        return tuple(classes), "given"
    for known, label in zip(KNOWN_CLASS_LISTS, ("VOC", "shapes")):
        if names <= set(known):
            return known, label
    return tuple(sorted(names)), "found"


def _duplicates(boxes: np.ndarray, groups: np.ndarray, budget: int = 1 << 21) -> list[tuple[int, int, float]]:
    """(i, j, IoU) for each box j that has an earlier box i of its group at IoU >= ``DUPLICATE_IOU``:
    one pair per such j (i its earliest identical twin, else its earliest partner found).

    boxes: (n, 4) xyxy; groups: (n,) int64, one value per image and class (boxes of different
    groups are never compared); indices are into ``boxes``, in the order given.
    Not quadratic: identical boxes are paired by one sort, and two distinct boxes are
    compared only when their left edges lie within ``(1 - t) / t`` of a width of each other,
    which IoU >= t requires (it needs ``iw >= t * max(w)``, so both widths and left edges
    close). Pairs are formed in numpy blocks of at most ``budget``: only thousands of distinct
    boxes of one class nearly on top of each other make many, and ``voc.MAX_OBJECTS`` bounds those.
    """
    n = len(boxes)
    if n < 2:
        return []
    found: dict[int, tuple[int, float]] = {}
    rows = np.column_stack([groups.astype(np.float64), boxes])
    unique, first, inverse = np.unique(rows, axis=0, return_index=True, return_inverse=True)
    twin = first[inverse.reshape(-1)]
    for j in np.flatnonzero(twin < np.arange(n)).tolist():
        found[j] = (int(twin[j]), 1.0)
    # Distinct boxes, sorted by group then left edge (np.unique's order): one key, windows never cross groups.
    u, u_first = unique[:, 1:], first
    span = 4.0 * (np.abs(u).max() + 1)
    key = (unique[:, 0] - unique[0, 0]) * span + u[:, 0]
    reach = (1 - DUPLICATE_IOU) / DUPLICATE_IOU * (u[:, 2] - u[:, 0] + 1)
    lo, hi = np.searchsorted(key, key - reach, "left"), np.searchsorted(key, key + reach, "right")
    counts = hi - lo
    ends = np.cumsum(counts)
    start = 0
    while start < len(u):
        stop = max(start + 1, int(np.searchsorted(ends, ends[start] - counts[start] + budget, "right")))
        block = np.arange(start, min(stop, len(u)))
        c = counts[block]
        p = np.repeat(block, c)
        q = np.repeat(lo[block] - np.cumsum(c) + c, c) + np.arange(int(c.sum()))
        keep = u_first[q] < u_first[p]
        p, q = p[keep], q[keep]
        iou = box_iou_paired(u[p], u[q], plus_one=True)
        hit = iou >= DUPLICATE_IOU
        p, q, iou = p[hit], q[hit], iou[hit]
        pick = np.lexsort((u_first[q], p))  # per p, its earliest partner first
        p, q, iou = p[pick], q[pick], iou[pick]
        head = np.ones(len(p), dtype=bool)
        head[1:] = p[1:] != p[:-1]
        for a, b, v in zip(u_first[p[head]].tolist(), u_first[q[head]].tolist(), iou[head].tolist()):
            found[a] = (b, v)
        start = int(block[-1]) + 1
    return sorted(((i, j, v) for j, (i, v) in found.items()), key=lambda t: (t[1], t[0]))


def _file_anomalies(table: AnnotationTable, class_set: set[str]) -> dict[int, list[Anomaly]]:
    """The problems of each valid file that has some (file index -> anomalies, in object order)."""
    names = np.array(table.classes, dtype=object)
    unknown_class = np.array([c not in class_set for c in table.classes], dtype=bool)
    boxes = table.boxes
    zero = (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
    unknown = unknown_class[table.class_ids] if len(table.classes) else np.zeros(len(boxes), bool)
    object_file = table.object_file()
    duplicates: dict[int, list] = {}
    for i, j, iou in _duplicates(boxes, object_file * max(len(table.classes), 1) + table.class_ids):
        duplicates.setdefault(int(object_file[j]), []).append((i, j, iou))
    suspects = set(np.flatnonzero((table.counts() == 0) & table.valid).tolist())
    suspects.update(object_file[zero | unknown].tolist())
    suspects.update(duplicates)
    out: dict[int, list[Anomaly]] = {}
    for f in sorted(suspects):
        path, start, end = table.paths[f], int(table.first[f]), int(table.first[f + 1])
        found = []
        if start == end:
            found.append(Anomaly("no_objects", path, "annotation has no <object>"))
        for k in np.flatnonzero(zero[start:end] | unknown[start:end]).tolist():
            name = names[table.class_ids[start + k]]
            if unknown[start + k]:
                found.append(Anomaly("unknown_class", path, f"object {k + 1} has class {name!r}"))
            if zero[start + k]:
                x1, y1, x2, y2 = boxes[start + k].tolist()
                found.append(Anomaly("zero_size_box", path, f"object {k + 1} ({name}) box {x1:g},{y1:g},"
                                     f"{x2:g},{y2:g} has zero width or height"))
        for i, j, iou in duplicates.get(f, []):
            found.append(Anomaly("duplicate_box", path, f"objects {i - start + 1} and {j - start + 1} "
                                 f"({names[table.class_ids[i]]}) overlap with IoU {iou:.3f}"))
        out[f] = found
    return out


def _split_stats(name: str, files: np.ndarray, present: np.ndarray, table: AnnotationTable,
                 anomalies_of: dict[int, list[Anomaly]], classes: tuple[str, ...]) -> SplitStats:
    """files: (n,) rows of ``table`` listed in the split; present: (n,) whether each image exists."""
    files = np.asarray(files, dtype=np.int64)
    anomalies: list[Anomaly] = []
    for i in files.tolist():
        err = table.errors.get(i)
        if err is not None:
            anomalies.append(Anomaly(_classify(err), table.paths[i], err.reason))
        else:
            anomalies += anomalies_of.get(i, [])
    valid = files[table.valid[files]]
    counts = table.counts()[valid]
    starts = table.first[valid]
    objects = np.repeat(starts - np.cumsum(counts) + counts, counts) + np.arange(int(counts.sum()))
    owner = np.repeat(valid, counts)
    ids = table.class_ids[objects]
    n_names = len(table.classes)
    per_name = np.bincount(ids, minlength=n_names)
    difficult_per = np.bincount(ids, weights=table.difficult[objects], minlength=n_names)
    truncated_per = np.bincount(ids, weights=table.truncated[objects], minlength=n_names)
    pairs = np.unique(owner * max(n_names, 1) + ids) if len(ids) else np.zeros(0, np.int64)
    images_per = np.bincount(pairs % max(n_names, 1), minlength=n_names)
    index = {c: i for i, c in enumerate(table.classes)}

    def count(c: str) -> ClassCount:
        k = index.get(c)
        if k is None:
            return ClassCount(c)
        return ClassCount(c, int(per_name[k]), int(difficult_per[k]), int(truncated_per[k]), int(images_per[k]))

    class_set = set(classes)
    extra = sorted(c for c, k in index.items() if c not in class_set and per_name[k])
    widths, heights = table.width[valid], table.height[valid]
    sizes = Counter(zip(widths.tolist(), heights.tolist()))
    boxes = table.boxes[objects]
    box_w, box_h = boxes[:, 2] - boxes[:, 0] + 1, boxes[:, 3] - boxes[:, 1] + 1
    rel = np.sqrt(box_w * box_h / (table.width[owner] * table.height[owner]).astype(np.float64))
    return SplitStats(
        name=name, images=len(files), annotated=len(valid), objects=int(counts.sum()),
        difficult=int(table.difficult[objects].sum()), truncated=int(table.truncated[objects].sum()),
        per_class=[count(c) for c in classes] + [count(c) for c in extra],
        image_sizes={"distinct": len(sizes), "most_common": [(w, h, n) for (w, h), n in sizes.most_common(5)],
                     "width": Summary.of(widths), "height": Summary.of(heights)},
        box_width=Summary.of(box_w), box_height=Summary.of(box_h),
        aspect=Summary.of(box_w / box_h),  # heights are >= 1: inclusive pixels, inverted boxes rejected
        relative_size=Summary.of(rel), boxes_per_image=Summary.of(counts),
        missing_images=int((~np.asarray(present, dtype=bool)).sum()),
        anomaly_counts={k: n for k in ANOMALY_KINDS if (n := sum(a.kind == k for a in anomalies))},
        anomalies=anomalies,
    )


def dataset_stats(root: str | os.PathLike, sets: str | Sequence[str] | None = None,
                  classes: Optional[Sequence[str]] = None, plots: str | os.PathLike | None = None,
                  progress: Optional[Callable[[int], None]] = None, workers: Optional[int] = None) -> StatsResult:
    """Count images, objects, classes, sizes and anomalies per split under ``root``.

    ``sets``: ``"2007/trainval,2012/val"`` (default: every split list found).
    ``classes``: the expected class names; default VOC's 20 when every name
    found is one of them, else the shapes classes, else the names found
    (sorted). ``plots``: a folder to write ``class_histogram.png`` and
    ``box_shapes.png`` into. ``progress(n)`` as annotation files are read (by
    ``voc_bulk.read_annotations`` over ``workers`` processes, default all cores).
    """
    root = Path(root).expanduser()
    voc_sets = discover_sets(root) if sets is None else resolve_sets(root, sets)
    if not voc_sets:
        raise DatasetNotFoundError(f"{root}: no ImageSets/Main/<split>.txt lists found",
                                   hint="is this a VOC-layout tree? try --root")
    row: dict[str, int] = {}
    listed: list[tuple[VocSet, list[int], list[str]]] = []
    for vs in voc_sets:
        annotations, images = f"{vs.dir}{os.sep}Annotations{os.sep}", f"{vs.dir}{os.sep}JPEGImages{os.sep}"
        ids = vs.ids()
        rows = [row.setdefault(f"{annotations}{i}.xml", len(row)) for i in ids]
        listed.append((vs, rows, [f"{images}{i}.jpg" for i in ids]))
    table = read_annotations(list(row), workers=workers, progress=progress)
    used = np.unique(table.class_ids) if len(table.class_ids) else np.zeros(0, np.int64)
    class_names, source = _choose_classes({table.classes[k] for k in used.tolist()}, classes)
    anomalies_of = _file_anomalies(table, set(class_names))

    image_present: dict[str, bool] = {}
    splits = []
    everything: dict[int, bool] = {}
    for vs, rows, images in listed:
        present = []
        for r, image in zip(rows, images):
            there = image_present.get(image)
            if there is None:
                there = image_present[image] = os.path.isfile(image)
            present.append(there)
            everything.setdefault(r, there)
        splits.append(_split_stats(vs.name, np.array(rows, dtype=np.int64), np.array(present, dtype=bool), table,
                                   anomalies_of, class_names))
    total = _split_stats("all", np.array(list(everything), dtype=np.int64),
                         np.array(list(everything.values()), dtype=bool), table, anomalies_of, class_names)
    missing = [p for p, present in image_present.items() if not present][:MISSING_LISTED]
    result = StatsResult(root=root, classes=class_names, classes_source=source, splits=splits, total=total,
                         missing_image_files=missing)
    if plots is not None:
        valid = np.flatnonzero(table.valid)
        result.plots = write_plots(Path(plots), [table.annotation(i) for i in valid.tolist()], total, class_names)
    return result


def write_plots(folder: Path, annotations: list[Annotation], total: SplitStats,
                classes: Sequence[str]) -> list[Path]:
    """``class_histogram.png`` (objects per class) and ``box_shapes.png`` (box width vs height per class)."""
    from vocli import plotting

    folder.mkdir(parents=True, exist_ok=True)
    hist = plotting.bar_chart(folder / "class_histogram.png", [c.name for c in total.per_class],
                              [c.objects for c in total.per_class],
                              f"Objects per class ({total.objects} objects, {total.annotated} images)", "objects")
    points: dict[str, list[tuple[float, float]]] = {c: [] for c in classes}
    for ann in annotations:
        for o in ann.objects:
            points.setdefault(o.name, []).append((o.xmax - o.xmin + 1, o.ymax - o.ymin + 1))
    n = sum(len(v) for v in points.values())
    keep = 1.0 if n <= _MAX_SCATTER_POINTS else _MAX_SCATTER_POINTS / n
    rng = np.random.default_rng(0)  # a fixed subsample keeps big datasets readable and the PNG reproducible
    groups = {}
    for name, wh in points.items():
        arr = np.asarray(wh, dtype=np.float64).reshape(-1, 2)
        if keep < 1.0:
            arr = arr[rng.random(len(arr)) < keep]
        if len(arr):
            groups[name] = (arr[:, 0], arr[:, 1])
    title = "Box shapes" + (f" ({int(keep * 100)}% sample of {n})" if keep < 1.0 else f" ({n} boxes)")
    shapes = plotting.scatter_chart(folder / "box_shapes.png", groups, title, "box width (px)", "box height (px)")
    return [hist, shapes]

"""``vocli stats``: what is in a VOC-layout dataset, split by split, and what looks wrong.

Annotations are read with the strict parser of ``vocli.datasets.voc``; a file it
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

from vocli.boxes import box_iou
from vocli.datasets.shapes import SHAPES_CLASSES
from vocli.datasets.voc import VOC_CLASSES, Annotation, VocSet, discover_sets, parse_annotation, resolve_sets
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


def _object_anomalies(ann: Annotation, class_set: set[str]) -> list[Anomaly]:
    out = []
    f = str(ann.path)
    if not ann.objects:
        out.append(Anomaly("no_objects", f, "annotation has no <object>"))
    for i, o in enumerate(ann.objects, start=1):
        if o.name not in class_set:
            out.append(Anomaly("unknown_class", f, f"object {i} has class {o.name!r}"))
        if o.xmax <= o.xmin or o.ymax <= o.ymin:
            out.append(Anomaly("zero_size_box", f, f"object {i} ({o.name}) box {o.xmin:g},{o.ymin:g},"
                               f"{o.xmax:g},{o.ymax:g} has zero width or height"))
    boxes = ann.boxes()
    if len(boxes) > 1:
        iou = box_iou(boxes, boxes, plus_one=True)
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                if ann.objects[i].name == ann.objects[j].name and iou[i, j] >= DUPLICATE_IOU:
                    out.append(Anomaly("duplicate_box", f, f"objects {i + 1} and {j + 1} ({ann.objects[i].name}) "
                                       f"overlap with IoU {iou[i, j]:.3f}"))
    return out


def _split_stats(name: str, entries: list[tuple[Path, object, bool]], classes: tuple[str, ...]) -> SplitStats:
    """entries: (annotation path, Annotation or AnnotationError, image present)."""
    class_set = set(classes)
    per_class = {c: ClassCount(c) for c in classes}
    extra: dict[str, ClassCount] = {}
    anomalies: list[Anomaly] = []
    widths, heights, sizes, per_image = [], [], Counter(), []
    box_w, box_h, rel = [], [], []
    difficult = truncated = annotated = 0
    for path, parsed, _ in entries:
        if isinstance(parsed, AnnotationError):
            anomalies.append(Anomaly(_classify(parsed), str(path), parsed.reason))
            continue
        ann: Annotation = parsed
        annotated += 1
        sizes[(ann.width, ann.height)] += 1
        widths.append(ann.width)
        heights.append(ann.height)
        per_image.append(len(ann.objects))
        anomalies += _object_anomalies(ann, class_set)
        seen = set()
        for o in ann.objects:
            count = per_class.get(o.name) or extra.setdefault(o.name, ClassCount(o.name))
            count.objects += 1
            count.difficult += o.difficult
            count.truncated += o.truncated
            if o.name not in seen:
                count.images += 1
                seen.add(o.name)
            difficult += o.difficult
            truncated += o.truncated
            w, h = o.xmax - o.xmin + 1, o.ymax - o.ymin + 1
            box_w.append(w)
            box_h.append(h)
            rel.append(np.sqrt(w * h / (ann.width * ann.height)))
    box_w_a, box_h_a = np.asarray(box_w, dtype=np.float64), np.asarray(box_h, dtype=np.float64)
    return SplitStats(
        name=name, images=len(entries), annotated=annotated, objects=int(sum(per_image)),
        difficult=difficult, truncated=truncated,
        per_class=list(per_class.values()) + sorted(extra.values(), key=lambda c: c.name),
        image_sizes={"distinct": len(sizes), "most_common": [(w, h, n) for (w, h), n in sizes.most_common(5)],
                     "width": Summary.of(widths), "height": Summary.of(heights)},
        box_width=Summary.of(box_w_a), box_height=Summary.of(box_h_a),
        aspect=Summary.of(box_w_a / box_h_a),  # heights are >= 1: inclusive pixels, inverted boxes rejected
        relative_size=Summary.of(rel), boxes_per_image=Summary.of(per_image),
        missing_images=sum(1 for _, _, present in entries if not present),
        anomaly_counts={k: n for k in ANOMALY_KINDS if (n := sum(a.kind == k for a in anomalies))},
        anomalies=anomalies,
    )


def _parse(path: Path, vs: VocSet):
    try:
        return parse_annotation(path, image_dir=vs.dir / "JPEGImages")
    except AnnotationError as err:
        return err


def dataset_stats(root: str | os.PathLike, sets: str | Sequence[str] | None = None,
                  classes: Optional[Sequence[str]] = None, plots: str | os.PathLike | None = None,
                  progress: Optional[Callable[[int], None]] = None) -> StatsResult:
    """Count images, objects, classes, sizes and anomalies per split under ``root``.

    ``sets``: ``"2007/trainval,2012/val"`` (default: every split list found).
    ``classes``: the expected class names; default VOC's 20 when every name
    found is one of them, else the shapes classes, else the names found
    (sorted). ``plots``: a folder to write ``class_histogram.png`` and
    ``box_shapes.png`` into. ``progress(n)`` after each annotation file read.
    """
    root = Path(root).expanduser()
    voc_sets = discover_sets(root) if sets is None else resolve_sets(root, sets)
    if not voc_sets:
        raise DatasetNotFoundError(f"{root}: no ImageSets/Main/<split>.txt lists found",
                                   hint="is this a VOC-layout tree? try --root")
    parsed: dict[Path, object] = {}
    listed: list[tuple[VocSet, list[tuple[Path, Path]]]] = []
    for vs in voc_sets:
        pairs = [(vs.annotation_path(i), vs.image_path(i)) for i in vs.ids()]
        listed.append((vs, pairs))
        for ann_path, _ in pairs:
            if ann_path not in parsed:
                parsed[ann_path] = _parse(ann_path, vs)
                if progress is not None:
                    progress(1)
    names = {o.name for a in parsed.values() if isinstance(a, Annotation) for o in a.objects}
    class_names, source = _choose_classes(names, classes)

    image_present: dict[Path, bool] = {}
    splits = []
    for vs, pairs in listed:
        entries = []
        for ann_path, img_path in pairs:
            if img_path not in image_present:
                image_present[img_path] = img_path.is_file()
            entries.append((ann_path, parsed[ann_path], image_present[img_path]))
        splits.append(_split_stats(vs.name, entries, class_names))
    everything = {}
    for vs, pairs in listed:
        for ann_path, img_path in pairs:
            everything.setdefault(ann_path, (ann_path, parsed[ann_path], image_present[img_path]))
    total = _split_stats("all", list(everything.values()), class_names)
    missing = [str(p) for p, present in image_present.items() if not present][:MISSING_LISTED]
    result = StatsResult(root=root, classes=class_names, classes_source=source, splits=splits, total=total,
                         missing_image_files=missing)
    if plots is not None:
        result.plots = write_plots(Path(plots), [a for a in parsed.values() if isinstance(a, Annotation)],
                                   total, class_names)
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

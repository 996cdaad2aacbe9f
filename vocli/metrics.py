"""Average precision exactly as the PASCAL VOC devkit defines it, computed without per-detection loops.

Boxes here are VOC pixels: 1-based inclusive corners, IoU with ``+1`` widths
(``vocli.boxes.box_iou(..., plus_one=True)``), as in the devkit.

Matching rule (per class): detections are sorted by score, descending, with a
*stable* sort (ties keep input order). Each detection takes the ground truth of
highest IoU in its image (difficult ones included; first on ties). If that IoU
is strictly above the threshold: ignored when the ground truth is difficult,
a true positive when it is not yet matched, else a false positive (duplicate).
Otherwise a false positive. ``npos`` counts non-difficult ground truths.

Because a detection's best ground truth never depends on what was matched
before, "not yet matched" means "no earlier detection chose this ground truth",
so the whole class is scored with one ``np.unique(..., return_index=True)``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from vocli.boxes import box_iou_paired
from vocli.errors import VocliError

METRICS: tuple[str, ...] = ("voc07", "voc12", "coco")
# Bounds the (detections x ground truths per image) IoU block held in memory at once.
_IOU_BLOCK = 4_000_000


@dataclass
class GroundTruth:
    """Ground truth of a set of images, flattened. Boxes in VOC 1-based inclusive pixels.

    image_ids: M image names; image_index: (G,) int64 into image_ids; boxes: (G, 4) xyxy;
    labels: (G,) int64 class indices; difficult: (G,) bool. invalid: the images left out
    because their annotation could not be read (``InvalidFile``: path, reason), with their ids.
    """

    image_ids: list[str]
    image_index: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    difficult: np.ndarray
    invalid: list = field(default_factory=list)
    invalid_ids: list = field(default_factory=list)

    @classmethod
    def from_images(cls, images: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray]]) -> "GroundTruth":
        """From ``(image_id, boxes (n,4), labels (n,), difficult (n,))`` per image."""
        ids = [img[0] for img in images]
        counts = [len(img[2]) for img in images]
        return cls(
            image_ids=ids,
            image_index=np.repeat(np.arange(len(ids), dtype=np.int64), counts),
            boxes=_cat([np.asarray(img[1], np.float64).reshape(-1, 4) for img in images], (0, 4), np.float64),
            labels=_cat([np.asarray(img[2], np.int64).reshape(-1) for img in images], (0,), np.int64),
            difficult=_cat([np.asarray(img[3], bool).reshape(-1) for img in images], (0,), bool),
        )


@dataclass
class Detections:
    """Detections, flattened. Boxes in VOC 1-based pixels (as comp4 files hold them).

    image_ids: (K,) image names; boxes: (K, 4) xyxy; scores: (K,); labels: (K,) int64.
    Input order matters only for score ties (stable sort).
    """

    image_ids: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    #: (K, 4) COCO ``[x, y, w, h]`` as read from a COCO results file, used as is by the ``coco``
    #: metric (else it converts ``boxes`` with ``vocli.boxes.voc_to_coco``).
    coco_boxes: Optional[np.ndarray] = None

    @classmethod
    def empty(cls) -> "Detections":
        return cls(np.empty(0, dtype=object), np.empty((0, 4)), np.empty(0), np.empty(0, np.int64))

    @classmethod
    def concat(cls, parts: Sequence["Detections"]) -> "Detections":
        if not parts:
            return cls.empty()
        return cls(
            image_ids=np.concatenate([np.asarray(p.image_ids, dtype=object) for p in parts]),
            boxes=np.concatenate([np.asarray(p.boxes, np.float64).reshape(-1, 4) for p in parts]),
            scores=np.concatenate([np.asarray(p.scores, np.float64).reshape(-1) for p in parts]),
            labels=np.concatenate([np.asarray(p.labels, np.int64).reshape(-1) for p in parts]),
            coco_boxes=(np.concatenate([np.asarray(p.coco_boxes, np.float64).reshape(-1, 4) for p in parts])
                        if all(p.coco_boxes is not None for p in parts) else None),
        )

    def __len__(self) -> int:
        return len(self.scores)


@dataclass
class ClassResult:
    """AP of one class. ``ap`` is NaN when the class has no non-difficult ground truth.

    recall/precision: (K,) cumulative curve over the class's detections in sorted order.
    ap_50_95: mean 101-point AP over IoU 0.50:0.05:0.95 (``coco`` metric only; ``ap`` is then AP50,
    both as pycocotools computes them, and recall/precision are its 101 points at IoU 0.5).
    """

    name: str
    ap: float
    num_gt: int
    num_det: int
    num_difficult: int = 0
    recall: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    precision: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    ap_50_95: Optional[float] = None


@dataclass
class EvalResult:
    """mAP over classes that have ground truth; ``excluded`` lists those that have none."""

    metric: str
    iou_threshold: float
    map: float
    per_class: list[ClassResult]
    num_images: int
    num_detections: int
    excluded: list[str] = field(default_factory=list)
    map_50_95: Optional[float] = None
    sort: str = "stable (ties keep input order)"
    source: str = ""
    invalid: list = field(default_factory=list)  # InvalidFile of each annotation left out with its image
    coco_stats: Optional[dict] = None  # ``coco`` metric: pycocotools' 12 summary numbers by name

    def summary(self) -> dict:
        """JSON-friendly view without the per-detection curves."""
        return {
            "metric": self.metric, "iou_threshold": self.iou_threshold, "map": self.map,
            "map_50_95": self.map_50_95, "num_images": self.num_images,
            "num_detections": self.num_detections, "excluded": list(self.excluded), "sort": self.sort,
            "source": self.source, "coco_stats": self.coco_stats,
            "invalid": [{"path": f.path, "reason": f.reason} for f in self.invalid],
            "per_class": [
                {"name": c.name, "ap": c.ap, "ap_50_95": c.ap_50_95, "num_gt": c.num_gt,
                 "num_difficult": c.num_difficult, "num_det": c.num_det,
                 "recall": float(c.recall[-1]) if len(c.recall) else 0.0}
                for c in self.per_class
            ],
        }


def _cat(parts, empty_shape, dtype):
    return np.concatenate(parts).astype(dtype) if parts else np.zeros(empty_shape, dtype)


# --------------------------------------------------------------------------- AP from a curve


def voc_ap(recall: np.ndarray, precision: np.ndarray, use_07_metric: bool) -> float:
    """AP of one precision-recall curve (recall non-decreasing).

    ``use_07_metric``: mean over t in ``np.arange(0, 1.1, 0.1)`` of the highest
    precision at recall >= t (0 when no point reaches t), as py-faster-rcnn's
    ``voc_eval.py``. Otherwise (VOC 2010+): area under the precision envelope,
    with sentinels recall 0/1 and precision 0/0, summed where recall changes.
    """
    recall = np.asarray(recall, np.float64)
    precision = np.asarray(precision, np.float64)
    if use_07_metric:
        # Summed, then divided once: eleven precisions of 1 give exactly 1 (adding 1/11 eleven
        # times, as voc_eval.py does, gives 1.0000000000000002).
        total = 0.0
        for t in np.arange(0.0, 1.1, 0.1):
            reached = recall >= t
            total += float(precision[reached].max()) if reached.any() else 0.0
        return _unit(total / 11.0)
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([0.0], precision, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.nonzero(mrec[1:] != mrec[:-1])[0]
    return _unit(float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1])))


def _unit(ap: float) -> float:
    """An AP in [0, 1]: rounding in the sums can leave it a few ulps outside (NaN stays NaN)."""
    return ap if ap != ap else min(max(ap, 0.0), 1.0)


# --------------------------------------------------------------------------- matching


def best_ground_truth(det_image: np.ndarray, det_boxes: np.ndarray, gt_image: np.ndarray,
                      gt_boxes: np.ndarray, num_images: int) -> tuple[np.ndarray, np.ndarray]:
    """For each detection, the ground truth of highest IoU (+1 rule) in its image.

    det_image: (K,) int image index, det_boxes: (K, 4); gt_image: (G,), gt_boxes: (G, 4).
    Returns best: (K,) int64 index into the ground truths (-1 when the image has none) and
    overlap: (K,) float64 (-inf when none). Ties go to the first ground truth, like ``np.argmax``
    (a NaN IoU counts as the highest, as it does for ``np.argmax``).

    Only (detection, ground truth of its image) pairs are formed: most detections of a class
    sit on images without that class, and they cost nothing here.
    """
    k = len(det_image)
    best = np.full(k, -1, np.int64)
    overlap = np.full(k, -np.inf)
    if k == 0 or len(gt_image) == 0:
        return best, overlap
    order = np.argsort(gt_image, kind="stable")  # ground truths grouped by image, file order inside
    counts = np.bincount(gt_image, minlength=num_images)
    starts = np.cumsum(counts) - counts
    rows = np.flatnonzero(counts[det_image] > 0)  # detections on images with ground truth
    if len(rows) == 0:
        return best, overlap
    row_count = counts[det_image[rows]]
    row_end = np.cumsum(row_count)  # pairs up to and including each row
    lo = 0
    while lo < len(rows):  # blocks of about _IOU_BLOCK pairs bound the memory
        hi = max(lo + 1, int(np.searchsorted(row_end, row_end[lo] - row_count[lo] + _IOU_BLOCK, side="right")))
        block, count = rows[lo:hi], row_count[lo:hi]
        seg_start = np.cumsum(count) - count                       # (R,) first pair of each row
        pair_row = np.repeat(np.arange(len(block)), count)         # (P,) row of each pair
        slot = starts[det_image[block]][pair_row] + np.arange(len(pair_row)) - seg_start[pair_row]
        gt_idx = order[slot]                                       # (P,) into the ground truths
        iou = box_iou_paired(det_boxes[block][pair_row], gt_boxes[gt_idx], plus_one=True)
        top = np.maximum.reduceat(iou, seg_start)                  # (R,), NaN when a pair is NaN
        top_of_pair = top[pair_row]
        is_top = (iou == top_of_pair) | (np.isnan(iou) & np.isnan(top_of_pair))
        first = np.flatnonzero(is_top)
        first = first[np.concatenate(([True], pair_row[first[1:]] != pair_row[first[:-1]]))]
        best[block] = gt_idx[first]
        overlap[block] = top
        lo = hi
    return best, overlap


def match_sorted(best: np.ndarray, overlap: np.ndarray, gt_difficult: np.ndarray,
                 iou_threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Devkit outcome of detections already in score order -> (tp, fp), each (K,) bool.

    A detection that is neither (best ground truth difficult) is ignored.
    """
    hit = overlap > iou_threshold
    difficult = np.zeros_like(hit)
    difficult[hit] = gt_difficult[best[hit]]
    candidate = np.flatnonzero(hit & ~difficult)
    tp = np.zeros(len(best), bool)
    _, first = np.unique(best[candidate], return_index=True)  # earliest detection per ground truth
    tp[candidate[first]] = True
    fp = ~hit | (hit & ~difficult & ~tp)
    return tp, fp


def pr_curve(tp: np.ndarray, fp: np.ndarray, npos: int) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative recall and precision, (K,) each; precision of 0/0 is 0 as in the devkit."""
    tp_cum = np.cumsum(tp, dtype=np.float64)
    fp_cum = np.cumsum(fp, dtype=np.float64)
    recall = tp_cum / npos if npos > 0 else np.full(len(tp_cum), np.nan)
    precision = tp_cum / np.maximum(tp_cum + fp_cum, np.finfo(np.float64).eps)
    return recall, precision


def default_metric(set_names: Sequence[str]) -> str:
    """``voc07`` when scoring VOC2007 test, else ``voc12``."""
    return "voc07" if list(set_names) == ["2007/test"] else "voc12"


def evaluate_detections(detections: Detections, ground_truth: GroundTruth, classes: Sequence[str],
                        iou_threshold: float = 0.5, metric: str = "voc07",
                        progress: Optional[Callable[[int], None]] = None) -> EvalResult:
    """Score ``detections`` against ``ground_truth`` per class; mAP over classes with ground truth.

    A class without non-difficult ground truth has AP NaN and is left out of the mean
    (listed in ``excluded``); a class with ground truth but no detections has AP 0.
    ``metric="coco"``: pycocotools' COCOeval on the boxes converted to COCO (``evaluate_coco``;
    ``iou_threshold`` is then unused).
    Detections on images absent from the ground truth raise ``VocliError`` (as the devkit does).
    """
    if metric not in METRICS:
        raise VocliError(f"unknown metric {metric!r}", hint=f"use one of {', '.join(METRICS)}")
    if not 0.0 <= iou_threshold < 1.0:
        raise VocliError(f"IoU threshold {iou_threshold} must be in [0, 1)")
    det_image = _image_index(detections.image_ids, ground_truth.image_ids)
    if metric == "coco":
        return evaluate_coco(detections, ground_truth, classes, det_image)
    num_images = len(ground_truth.image_ids)
    det_labels = np.asarray(detections.labels, np.int64)
    det_scores = np.asarray(detections.scores, np.float64)
    det_boxes = np.asarray(detections.boxes, np.float64).reshape(-1, 4)
    per_class = []
    gt_of_class = _by_class(np.asarray(ground_truth.labels, np.int64), len(classes))
    det_of_class = _by_class(det_labels, len(classes))
    for c, name in enumerate(classes):
        gt_sel = gt_of_class[c]
        gt_difficult = ground_truth.difficult[gt_sel]
        npos = int((~gt_difficult).sum())
        det_sel = det_of_class[c]
        det_sel = det_sel[np.argsort(-det_scores[det_sel], kind="stable")]
        best, overlap = best_ground_truth(det_image[det_sel], det_boxes[det_sel],
                                          ground_truth.image_index[gt_sel], ground_truth.boxes[gt_sel],
                                          num_images)
        tp, fp = match_sorted(best, overlap, gt_difficult, iou_threshold)
        recall, precision = pr_curve(tp, fp, npos)
        result = ClassResult(name=name, ap=float("nan"), num_gt=npos, num_det=len(det_sel),
                             num_difficult=int(gt_difficult.sum()), recall=recall, precision=precision)
        if npos > 0:
            result.ap = voc_ap(recall, precision, metric == "voc07")
        per_class.append(result)
        if progress is not None:
            progress(1)
    scored = [r for r in per_class if r.num_gt > 0]
    mean = _unit(float(np.mean([r.ap for r in scored]))) if scored else float("nan")
    return EvalResult(metric=metric, iou_threshold=iou_threshold, map=mean, per_class=per_class,
                      num_images=num_images, num_detections=len(det_scores),
                      excluded=[r.name for r in per_class if r.num_gt == 0])


def evaluate_coco(detections: Detections, ground_truth: GroundTruth, classes: Sequence[str],
                  det_image: Optional[np.ndarray] = None) -> EvalResult:
    """pycocotools' bbox COCOeval of VOC ground truth and detections (``vocli.coco_eval``).

    Both are taken to COCO boxes with ``vocli.boxes.voc_to_coco`` (detections read from a COCO
    results file keep their own ``coco_boxes``); difficult objects are crowd regions and
    ``area`` is ``w * h``, exactly as ``vocli convert coco`` writes them, and image order
    (score ties across images) follows ``vocli.coco.coco_image_ids``. ``map`` is AP50,
    ``map_50_95`` AP@[.50:.95], ``coco_stats`` all 12 summary numbers.
    """
    from vocli.boxes import voc_to_coco
    from vocli.coco import coco_image_ids
    from vocli.coco_eval import IOU_THRESHOLDS, RECALL_POINTS, CocoBoxes, coco_evaluate

    if det_image is None:
        det_image = _image_index(detections.image_ids, ground_truth.image_ids)
    gt_xywh = voc_to_coco(np.asarray(ground_truth.boxes, np.float64).reshape(-1, 4))
    gt = CocoBoxes(np.asarray(ground_truth.image_index, np.int64), np.asarray(ground_truth.labels, np.int64),
                   gt_xywh, area=gt_xywh[:, 2] * gt_xywh[:, 3], crowd=np.asarray(ground_truth.difficult, bool))
    det_xywh = (np.asarray(detections.coco_boxes, np.float64).reshape(-1, 4) if detections.coco_boxes is not None
                else voc_to_coco(np.asarray(detections.boxes, np.float64).reshape(-1, 4)))
    dt = CocoBoxes(det_image, np.asarray(detections.labels, np.int64), det_xywh,
                   score=np.asarray(detections.scores, np.float64))
    # images scored by path (a model's run) are numbered by file stem, as `vocli detect` numbers them
    names = [Path(i).stem if "/" in str(i) or os.sep in str(i) else str(i) for i in ground_truth.image_ids]
    ids = np.asarray(coco_image_ids(names), np.int64)
    rank = np.empty(len(ids), np.int64)
    rank[np.argsort(ids, kind="stable")] = np.arange(len(ids))
    coco = coco_evaluate(gt, dt, len(classes), rank)
    t50 = int(np.flatnonzero(IOU_THRESHOLDS == 0.5)[0])
    per_class = []
    for k, name in enumerate(classes):
        of_class = gt.label == k
        npos = int((of_class & ~gt.crowd).sum())
        result = ClassResult(name=name, ap=float("nan"), num_gt=npos, num_det=int((dt.label == k).sum()),
                             num_difficult=int((of_class & gt.crowd).sum()))
        if npos > 0:
            result.ap, result.ap_50_95 = coco.class_ap(k, t50), coco.class_ap(k)
            result.recall, result.precision = RECALL_POINTS.copy(), coco.precision[t50, :, k, 0, 2].copy()
        per_class.append(result)
    stats = coco.stats
    undefined = float("nan")  # pycocotools' -1: no ground truth at all
    return EvalResult(metric="coco", iou_threshold=0.5, map=stats["AP50"] if stats["AP50"] > -1 else undefined,
                      per_class=per_class, num_images=len(ground_truth.image_ids), num_detections=len(dt.score),
                      excluded=[r.name for r in per_class if r.num_gt == 0],
                      map_50_95=stats["AP"] if stats["AP"] > -1 else undefined,
                      coco_stats=stats, sort="stable; pycocotools order (score, then image id, then input order)")


def _by_class(labels: np.ndarray, num_classes: int) -> list[np.ndarray]:
    """(N,) labels -> for each class 0..num_classes-1 its indices, ascending; other labels are dropped.

    One stable sort (a radix sort on small integers) instead of one scan of all labels per class.
    """
    if num_classes < np.iinfo(np.int16).max:
        labels = np.clip(labels, -1, num_classes).astype(np.int16)
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(num_classes + 1))
    return [order[bounds[c]:bounds[c + 1]] for c in range(num_classes)]


def _image_index(det_ids: np.ndarray, gt_ids: Sequence[str]) -> np.ndarray:
    """(K,) image names -> (K,) indices into ``gt_ids``; unknown names are an error."""
    if len(det_ids) == 0:
        return np.empty(0, np.int64)
    lookup = {name: i for i, name in enumerate(gt_ids)}
    try:
        return np.fromiter(map(lookup.__getitem__, det_ids), dtype=np.int64, count=len(det_ids))
    except KeyError:
        unknown = sorted({str(name) for name in det_ids if name not in lookup})
    shown = ", ".join(unknown[:3]) + (" ..." if len(unknown) > 3 else "")
    raise VocliError(
        f"{len(unknown)} detected image id(s) are not in the evaluated set: {shown}",
        hint="evaluate the sets the detections were made on (--sets), or drop those lines",
    )

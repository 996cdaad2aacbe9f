"""COCO box AP exactly as ``pycocotools.cocoeval.COCOeval`` (``iouType="bbox"``), in vectorised numpy.

Same parameters: IoU thresholds ``np.linspace(.5, .95, 10)``, recall points
``np.linspace(0, 1, 101)``, area ranges all / small (<= 32^2) / medium / large (>= 96^2),
both ends inclusive, max detections 1, 10, 100 per image and class. Same rules:

* Per image and class, detections in score order (a stable sort: ties keep input
  order), the first 100 kept. Ground truth is ignored when crowd (``iscrowd``) or
  when its ``area`` lies outside the area range; a detection left unmatched is ignored
  when its own area (``w * h``) lies outside it.
* Greedy matching, one detection after another: a detection takes the not yet
  matched (crowd: any) ground truth of highest IoU >= t, preferring ground truth that
  is not ignored; of equal IoUs the last (in file order) wins. IoU as ``maskUtils.iou``
  (``vocli.boxes.coco_iou_paired``). A detection on ignored ground truth is ignored.
* Per class, the detections of all images (the first ``maxDet`` of each) in score
  order, ties by image id then by rank in the image; precision made monotone from the
  right and read at the first point whose recall reaches each of the 101 recall points
  (0 past the last); recall is the last recall. Summaries average every entry that is
  not -1 (classes without ground truth in that area range are -1).

The greedy matching runs for all image/class groups at once: round ``r`` takes every
group's ``r``-th detection, over 10 thresholds x 4 area ranges, and groups are bucketed
by their number of ground truths so the padding stays small.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vocli.boxes import coco_iou_paired

IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
RECALL_POINTS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
AREA_RANGES = np.array([[0 ** 2, 1e5 ** 2], [0 ** 2, 32 ** 2], [32 ** 2, 96 ** 2], [96 ** 2, 1e5 ** 2]])
AREA_NAMES = ("all", "small", "medium", "large")
MAX_DETS = (1, 10, 100)
STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


@dataclass
class CocoBoxes:
    """Flattened boxes of a set of images. xywh (N, 4) COCO pixels; image (N,) int index; label (N,) 0-based.

    Ground truth also sets ``area`` (N,) (as the file's ``area``) and ``crowd`` (N,) bool; detections
    set ``score`` (N,). Order matters as in pycocotools: file order of ground truth within an image,
    input order of detections for score ties.
    """

    image: np.ndarray
    label: np.ndarray
    xywh: np.ndarray
    area: np.ndarray | None = None
    crowd: np.ndarray | None = None
    score: np.ndarray | None = None


@dataclass
class CocoEvalResult:
    """precision: (T, R, K, A, M) with -1 where a class has no ground truth; recall: (T, K, A, M);
    stats: the 12 numbers ``COCOeval.summarize`` prints, by ``STAT_NAMES``."""

    precision: np.ndarray
    recall: np.ndarray
    stats: dict

    def class_ap(self, k: int, t: int | None = None) -> float:
        """AP of class k over all areas at 100 detections; ``t``: one IoU threshold index, else their mean."""
        s = self.precision[:, :, k, 0, 2] if t is None else self.precision[t, :, k, 0, 2]
        s = s[s > -1]
        return float(np.mean(s)) if len(s) else float("nan")


def _groups(label: np.ndarray, image: np.ndarray, num_images: int, extra_keys=()) -> tuple[np.ndarray, np.ndarray]:
    """Order (stable) by class then image (then ``extra_keys``) and the group key (class * M + image) of each."""
    keys = label.astype(np.int64) * num_images + image
    order = np.lexsort((np.arange(len(keys)),) + tuple(extra_keys) + (keys,))
    return order, keys[order]


def _match(gt: CocoBoxes, dt: CocoBoxes, det_order: np.ndarray, det_keys: np.ndarray,
           det_rank: np.ndarray, num_images: int):
    """Greedy matching of every kept detection -> (matched (K, T, A) bool, on_ignored (K, T, A) bool)."""
    T, A = len(IOU_THRESHOLDS), len(AREA_RANGES)
    matched = np.zeros((len(det_order), T, A), bool)
    on_ignored = np.zeros((len(det_order), T, A), bool)
    gt_order, gt_keys = _groups(gt.label, gt.image, num_images)
    if len(gt_keys) == 0 or len(det_keys) == 0:
        return matched, on_ignored
    # ground truth ignored per area range: (G, A)
    gt_ignored = gt.crowd[:, None] | (gt.area[:, None] < AREA_RANGES[None, :, 0]) \
        | (gt.area[:, None] > AREA_RANGES[None, :, 1])
    g_keys, g_start, g_count = np.unique(gt_keys, return_index=True, return_counts=True)
    d_keys, d_start, d_count = np.unique(det_keys, return_index=True, return_counts=True)
    both, gi, di = np.intersect1d(g_keys, d_keys, assume_unique=True, return_indices=True)
    g_start, g_count, d_start, d_count = g_start[gi], g_count[gi], d_start[di], d_count[di]
    pad = 1 << np.ceil(np.log2(g_count)).astype(np.int64)
    thresholds = np.minimum(IOU_THRESHOLDS, 1 - 1e-10)[None, :, None, None]
    for p in np.unique(pad):
        sel = np.flatnonzero(pad == p)
        sel = sel[np.argsort(-d_count[sel], kind="stable")]   # most detections first: active rows are a prefix
        n, rounds = len(sel), int(d_count[sel[0]])
        slots = np.arange(p)
        gt_valid = slots[None, :] < g_count[sel, None]                                    # (n, P)
        gt_pos = np.where(gt_valid, g_start[sel, None] + slots[None, :], 0)               # into gt_order
        gt_idx = gt_order[gt_pos]                                                          # (n, P)
        det_slots = np.arange(rounds)
        det_valid = det_slots[None, :] < d_count[sel, None]                               # (n, D)
        det_pos = np.where(det_valid, d_start[sel, None] + det_slots[None, :], 0)        # into det_order
        det_idx = det_order[det_pos]
        crowd = gt.crowd[gt_idx] & gt_valid                                               # (n, P)
        iou = coco_iou_paired(dt.xywh[det_idx][:, :, None, :], gt.xywh[gt_idx][:, None, :, :],
                              crowd[:, None, :])                                          # (n, D, P)
        iou = np.where(gt_valid[:, None, :], iou, -np.inf)
        ignored = gt_ignored[gt_idx].transpose(0, 2, 1)[:, None, :, :]                    # (n, 1, A, P)
        taken = np.zeros((n, len(IOU_THRESHOLDS), A, p), bool)                            # (n, T, A, P)
        reusable = crowd[:, None, None, :]
        active_counts = (d_count[sel][None, :] > det_slots[:, None]).sum(1)               # (D,)
        for r in range(rounds):
            na = int(active_counts[r])
            v = iou[:na, r, None, None, :]                                                # (na, 1, 1, P)
            free = ~taken[:na] | reusable[:na]
            ok = free & (v >= thresholds)                                                 # (na, T, A, P)
            preferred = ok & ~ignored[:na]
            cand = np.where(preferred.any(-1, keepdims=True), preferred, ok)
            score = np.where(cand, v, -np.inf)
            last = p - 1 - np.argmax(score[..., ::-1], axis=-1)                          # (na, T, A)
            hit = np.take_along_axis(cand, last[..., None], -1)[..., 0]
            taken[:na] |= (slots == last[..., None]) & hit[..., None]
            rows = det_pos[:na, r]
            matched[rows] = hit
            on_ignored[rows] = hit & np.take_along_axis(np.broadcast_to(ignored[:na], cand.shape),
                                                        last[..., None], -1)[..., 0]
    return matched, on_ignored


def coco_evaluate(gt: CocoBoxes, dt: CocoBoxes, num_classes: int, image_rank: np.ndarray) -> CocoEvalResult:
    """pycocotools' bbox evaluation of ``dt`` against ``gt`` over ``num_classes`` classes.

    ``image_rank``: (M,) each image's place in ascending COCO image id (pycocotools' image
    order, which breaks score ties across images).
    """
    num_images = len(image_rank)
    T, R, A, M = len(IOU_THRESHOLDS), len(RECALL_POINTS), len(AREA_RANGES), len(MAX_DETS)
    keep = (dt.label >= 0) & (dt.label < num_classes)
    dt = CocoBoxes(dt.image[keep], dt.label[keep], dt.xywh[keep], score=dt.score[keep])
    # per image and class, by score (stable), the first MAX_DETS[-1]
    det_order, det_keys = _groups(dt.label, dt.image, num_images, extra_keys=(-dt.score,))
    starts = np.flatnonzero(np.r_[True, det_keys[1:] != det_keys[:-1]]) if len(det_keys) else np.zeros(0, int)
    rank = np.arange(len(det_keys)) - np.repeat(starts, np.diff(np.r_[starts, len(det_keys)]))
    kept = rank < MAX_DETS[-1]
    det_order, det_keys, rank = det_order[kept], det_keys[kept], rank[kept]
    matched, on_ignored = _match(gt, dt, det_order, det_keys, rank, num_images)

    area = dt.xywh[det_order, 2] * dt.xywh[det_order, 3]
    outside = (area[:, None] < AREA_RANGES[None, :, 0]) | (area[:, None] > AREA_RANGES[None, :, 1])  # (K, A)
    ignored = on_ignored | (~matched & outside[:, None, :])                                          # (K, T, A)
    tps_all = matched & ~ignored
    fps_all = ~matched & ~ignored
    gt_counted = ~(gt.crowd[:, None] | (gt.area[:, None] < AREA_RANGES[None, :, 0])
                   | (gt.area[:, None] > AREA_RANGES[None, :, 1]))                                   # (G, A)
    npig = np.zeros((num_classes, A), np.int64)
    np.add.at(npig, gt.label, gt_counted.astype(np.int64))

    precision = -np.ones((T, R, num_classes, A, M))
    recall = -np.ones((T, num_classes, A, M))
    labels = det_keys // max(num_images, 1)
    images = det_keys % max(num_images, 1)
    scores = dt.score[det_order]
    by_class = np.lexsort((rank, image_rank[images] if num_images else images, -scores, labels))
    bounds = np.searchsorted(labels[by_class], np.arange(num_classes + 1))
    for k in range(num_classes):
        rows_k = by_class[bounds[k]:bounds[k + 1]]
        for m, max_det in enumerate(MAX_DETS):
            rows = rows_k[rank[rows_k] < max_det]
            for a in range(A):
                if npig[k, a] == 0:
                    continue
                tp = np.cumsum(tps_all[rows, :, a].T, axis=1).astype(float)              # (T, nd)
                fp = np.cumsum(fps_all[rows, :, a].T, axis=1).astype(float)
                nd = tp.shape[1]
                rc = tp / npig[k, a]
                pr = tp / (fp + tp + np.spacing(1))
                recall[:, k, a, m] = rc[:, -1] if nd else 0
                if nd == 0:
                    precision[:, :, k, a, m] = 0
                    continue
                pr = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]
                for t in range(T):
                    at = np.searchsorted(rc[t], RECALL_POINTS, side="left")
                    q = np.zeros(R)
                    inside = at < nd
                    q[inside] = pr[t, at[inside]]
                    precision[t, :, k, a, m] = q
    return CocoEvalResult(precision, recall, _summarize(precision, recall))


def _summarize(precision: np.ndarray, recall: np.ndarray) -> dict:
    """``COCOeval.summarize``'s 12 numbers (-1 where nothing is defined)."""

    def mean(s):
        s = s[s > -1]
        return -1.0 if len(s) == 0 else float(np.mean(s))

    def ap(t=None, a=0, m=2):
        s = precision if t is None else precision[[t]]
        return mean(s[:, :, :, a, m])

    def ar(a=0, m=2):
        return mean(recall[:, :, a, m])

    t50 = int(np.where(IOU_THRESHOLDS == 0.5)[0][0])
    t75 = int(np.where(IOU_THRESHOLDS == 0.75)[0][0])
    values = (ap(), ap(t50), ap(t75), ap(a=1), ap(a=2), ap(a=3),
              ar(m=0), ar(m=1), ar(m=2), ar(a=1), ar(a=2), ar(a=3))
    return dict(zip(STAT_NAMES, values))

"""The only box math in vocli: formats, IoU family, shape IoU, NMS.

Every function works on numpy arrays or torch tensors (same type out as in),
except the NMS functions, which are torch only. Boxes are ``xyxy`` unless the
name says otherwise; units are whatever the caller uses (pixels or normalised).

torch is never imported here: a tensor can only reach these functions once its
caller has imported torch, so the numpy paths (``stats``, ``anchors``, ``evaluate
--detections``) run without it, and the torch-only functions import it when called.
"""

from __future__ import annotations

import math
import sys
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


def _is_torch(x) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _max(a, b):
    return sys.modules["torch"].maximum(a, b) if _is_torch(a) else np.maximum(a, b)


def _min(a, b):
    return sys.modules["torch"].minimum(a, b) if _is_torch(a) else np.minimum(a, b)


def _clip0(x):
    return x.clamp(min=0) if _is_torch(x) else np.clip(x, 0, None)


def _stack(xs, axis=-1):
    return sys.modules["torch"].stack(xs, dim=axis) if _is_torch(xs[0]) else np.stack(xs, axis=axis)


# --------------------------------------------------------------------------- formats


def xyxy_to_cxcywh(boxes):
    """(..., 4) xyxy -> (..., 4) centre x, centre y, width, height."""
    x1, y1, x2, y2 = boxes[..., 0], boxes[..., 1], boxes[..., 2], boxes[..., 3]
    return _stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1])


def cxcywh_to_xyxy(boxes):
    """(..., 4) centre x, centre y, width, height -> (..., 4) xyxy."""
    cx, cy, w, h = boxes[..., 0], boxes[..., 1], boxes[..., 2], boxes[..., 3]
    return _stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])


def box_area(boxes, plus_one: bool = False):
    """(..., 4) xyxy -> (...,) area; ``plus_one`` uses VOC's inclusive pixel widths."""
    d = 1.0 if plus_one else 0.0
    return _clip0(boxes[..., 2] - boxes[..., 0] + d) * _clip0(boxes[..., 3] - boxes[..., 1] + d)


def voc_to_coco(boxes):
    """(..., 4) VOC corners -> (..., 4) COCO ``[x, y, w, h]``: the one place the two frames meet.

    VOC corners are 1-based inclusive pixel indices: pixel column ``i`` covers the continuous
    interval ``[i - 1, i]``. COCO boxes are 0-based continuous pixels. So::

        x = xmin - 1,  y = ymin - 1,  w = xmax - xmin + 1,  h = ymax - ymin + 1
        inverse (``coco_to_voc``): xmin = x + 1,  ymin = y + 1,  xmax = x + w,  ymax = y + h

    Integer corners go there and back exactly (every step is exact in float64).
    """
    x1, y1, x2, y2 = boxes[..., 0], boxes[..., 1], boxes[..., 2], boxes[..., 3]
    return _stack([x1 - 1, y1 - 1, x2 - x1 + 1, y2 - y1 + 1])


def coco_to_voc(boxes):
    """(..., 4) COCO ``[x, y, w, h]`` -> (..., 4) VOC corners (unrounded); the inverse of ``voc_to_coco``."""
    x, y, w, h = boxes[..., 0], boxes[..., 1], boxes[..., 2], boxes[..., 3]
    return _stack([x + 1, y + 1, x + w, y + h])


# --------------------------------------------------------------------------- pairwise IoU


def box_iou(a, b, plus_one: bool = False):
    """IoU of every pair. a: (N, 4), b: (M, 4), xyxy -> (N, M).

    ``plus_one=True`` is the VOC devkit rule: corners are inclusive pixel
    indices, so a box from 1 to 10 is 10 pixels wide.
    """
    return box_iou_paired(a[:, None, :], b[None, :, :], plus_one)


def box_iou_paired(a, b, plus_one: bool = False):
    """IoU of corresponding boxes, broadcasting. a: (..., 4), b: (..., 4) xyxy -> (...,).

    Exact ``inter / union`` (no epsilon), so thresholds such as VOC's ``> 0.5``
    compare the same numbers the devkit does. ``plus_one`` as in ``box_iou``.
    """
    d = 1.0 if plus_one else 0.0
    top_left = _max(a[..., :2], b[..., :2])
    bottom_right = _min(a[..., 2:], b[..., 2:])
    wh = _clip0(bottom_right - top_left + d)
    inter = wh[..., 0] * wh[..., 1]
    return inter / (box_area(a, plus_one) + box_area(b, plus_one) - inter)


def coco_iou_paired(dt, gt, crowd):
    """IoU of corresponding COCO ``[x, y, w, h]`` boxes as pycocotools' ``maskUtils.iou`` (``bbIou``).

    dt: (..., 4), gt: (..., 4), crowd: (...,) bool -> (...,) float64. The same float64 steps
    in the same order as the C code, so thresholds meet the same numbers: no overlap is 0;
    a crowd ground truth divides by the detection's area only (``inter / area(dt)``).
    """
    dt = np.asarray(dt, np.float64)
    gt = np.asarray(gt, np.float64)
    dx, dy, dw, dh = dt[..., 0], dt[..., 1], dt[..., 2], dt[..., 3]
    gx, gy, gw, gh = gt[..., 0], gt[..., 1], gt[..., 2], gt[..., 3]
    w = np.minimum(dw + dx, gw + gx) - np.maximum(dx, gx)
    h = np.minimum(dh + dy, gh + gy) - np.maximum(dy, gy)
    inter = w * h
    dt_area = dw * dh
    union = np.where(crowd, dt_area, dt_area + gw * gh - inter)
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter / union
    return np.where((w > 0) & (h > 0), iou, 0.0)


def box_iou_columns(a, b, plus_one: bool = False):
    """``box_iou`` computed one coordinate at a time: the same numbers, bit for bit.

    a: (N, 4), b: (M, 4) xyxy -> (N, M). It never builds interleaved (N, M, 2)
    temporaries, which makes it about 4x faster for a few boxes against many
    (ground truths against SSD's 8,732 priors).
    """
    d = 1.0 if plus_one else 0.0
    iw = _clip0(_min(a[:, None, 2], b[None, :, 2]) - _max(a[:, None, 0], b[None, :, 0]) + d)
    ih = _clip0(_min(a[:, None, 3], b[None, :, 3]) - _max(a[:, None, 1], b[None, :, 1]) + d)
    inter = iw * ih
    return inter / (box_area(a, plus_one)[:, None] + box_area(b, plus_one)[None, :] - inter)


def wh_iou(wh_a, wh_b):
    """IoU of box shapes aligned at a common centre. wh_a: (N, 2), wh_b: (M, 2) -> (N, M).

    The distance behind YOLOv2's anchor k-means and YOLOv3's anchor assignment.
    """
    inter = _min(wh_a[:, None, 0], wh_b[None, :, 0]) * _min(wh_a[:, None, 1], wh_b[None, :, 1])
    area_a = wh_a[:, 0] * wh_a[:, 1]
    area_b = wh_b[:, 0] * wh_b[:, 1]
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def wh_iou_aligned(wh_a, wh_b):
    """IoU of matching rows of box shapes at a common centre. wh_a, wh_b: (..., 2) -> (...,)."""
    inter = _min(wh_a[..., 0], wh_b[..., 0]) * _min(wh_a[..., 1], wh_b[..., 1])
    return inter / (wh_a[..., 0] * wh_a[..., 1] + wh_b[..., 0] * wh_b[..., 1] - inter)


# --------------------------------------------------------------------------- aligned IoU family


def iou_aligned(a, b, kind: str = "iou", eps: float = 1e-9):
    """IoU / GIoU / DIoU / CIoU of matching rows. a, b: (..., 4) xyxy -> (...,).

    GIoU (Rezatofighi et al. 2019) subtracts the share of the enclosing box not
    covered by the union; DIoU (Zheng et al. 2020) the squared centre distance
    over the squared enclosing diagonal; CIoU adds an aspect-ratio term
    ``alpha * v`` with ``v = 4/pi^2 (atan(wg/hg) - atan(w/h))^2``.
    """
    if kind not in ("iou", "giou", "diou", "ciou"):
        raise ValueError(f"unknown IoU kind {kind!r}; use iou, giou, diou or ciou")
    t = _is_torch(a)
    w1, h1 = a[..., 2] - a[..., 0], a[..., 3] - a[..., 1]
    w2, h2 = b[..., 2] - b[..., 0], b[..., 3] - b[..., 1]
    iw = _clip0(_min(a[..., 2], b[..., 2]) - _max(a[..., 0], b[..., 0]))
    ih = _clip0(_min(a[..., 3], b[..., 3]) - _max(a[..., 1], b[..., 1]))
    inter = iw * ih
    union = w1 * h1 + w2 * h2 - inter + eps
    iou = inter / union
    if kind == "iou":
        return iou
    cw = _max(a[..., 2], b[..., 2]) - _min(a[..., 0], b[..., 0])
    ch = _max(a[..., 3], b[..., 3]) - _min(a[..., 1], b[..., 1])
    if kind == "giou":
        enclose = cw * ch + eps
        return iou - (enclose - union) / enclose
    diag2 = cw ** 2 + ch ** 2 + eps
    centre2 = ((a[..., 0] + a[..., 2] - b[..., 0] - b[..., 2]) ** 2
               + (a[..., 1] + a[..., 3] - b[..., 1] - b[..., 3]) ** 2) / 4
    if kind == "diou":
        return iou - centre2 / diag2
    atan = sys.modules["torch"].atan if t else np.arctan
    v = (4 / math.pi ** 2) * (atan(w2 / (h2 + eps)) - atan(w1 / (h1 + eps))) ** 2
    if t:
        with sys.modules["torch"].no_grad():
            alpha = v / ((1 - iou) + v + eps)  # (1 + eps) rounds to 1 in float32: 0/0 for equal boxes
    else:
        alpha = v / ((1 - iou) + v + eps)
    return iou - (centre2 / diag2 + v * alpha)


# --------------------------------------------------------------------------- NMS (torch)


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float, method: str = "standard") -> torch.Tensor:
    """Greedy non-maximum suppression. boxes: (N, 4) xyxy, scores: (N,) -> kept indices, by score.

    ``method="diou"`` suppresses on DIoU instead of IoU (Zheng et al.), which
    keeps boxes whose centres are far apart even when they overlap a lot.
    A box is suppressed when its (D)IoU with a kept box is strictly above the threshold.
    """
    import torch

    if method not in ("standard", "diou"):
        raise ValueError(f"unknown NMS method {method!r}; use standard or diou")
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.long, device=boxes.device)
    order = torch.argsort(scores, descending=True, stable=True)
    boxes = boxes[order].float()
    if method == "standard":
        overlap = box_iou(boxes, boxes)
    else:
        overlap = iou_aligned(boxes[:, None, :], boxes[None, :, :], kind="diou", eps=0.0)
    suppress = (overlap > iou_threshold).triu(diagonal=1)
    n = boxes.shape[0]
    keep = torch.ones(n, dtype=torch.bool, device=boxes.device)
    # Sequential over kept boxes only; each row is a vectorised mask update.
    sup = suppress.cpu()
    keep_cpu = keep.cpu()
    for i in range(n):
        if keep_cpu[i]:
            keep_cpu &= ~sup[i]
    return order[keep_cpu.to(boxes.device)]


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, classes: torch.Tensor,
                iou_threshold: float, method: str = "standard") -> torch.Tensor:
    """Class-wise NMS: boxes of different classes never suppress each other.

    boxes: (N, 4) xyxy, scores: (N,), classes: (N,) int -> kept indices sorted by score.
    """
    import torch

    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.long, device=boxes.device)
    # Offset each class into its own region so one NMS call handles all classes.
    offset = classes.to(boxes.dtype)[:, None] * (boxes.max() - boxes.min() + 1)
    return nms(boxes + offset, scores, iou_threshold, method)

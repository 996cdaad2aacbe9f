"""The YOLOv3 training loss: target assignment, objectness, class and box terms.

Definition (per batch of ``B`` images, heads ``i = 1..L``):

Assignment. Every ground truth (class ``c``, centre ``cx, cy`` and size ``w, h`` normalised to
the input of ``W x H`` pixels) goes to the one anchor, among all anchors of all heads, whose
shape best matches it: ``argmax_k wh_iou((w W, h H), anchor_k)`` (YOLOv3). It is placed in that
anchor's head ``i`` (stride ``s``) at grid cell ``(gi, gj) = (floor(cx W / s), floor(cy H / s))``.
When two ground truths claim the same (image, anchor, cell), the later one wins (darknet).

Ignore. A prediction whose decoded box ``(sigmoid(tx) + gi, sigmoid(ty) + gj) * s``,
``exp(tw, th) * anchor`` has IoU above ``ignore_thresh`` with any ground truth of its image
is not penalised for objectness (unless it is itself assigned, then its target is 1).
``ignore_thresh`` defaults to each head's value from the cfg's ``[yolo]`` section (0.7 if absent).

Terms, each summed over heads:
- ``box``: mean over assigned predictions of ``1 - CIoU`` (or DIoU/GIoU, from ``vocli.boxes.iou_aligned``)
  between the decoded and the ground-truth box, in grid units; ``kind="mse"`` is darknet's
  ``(2 - w h) * [(sigmoid(tx) - tx*)^2 + (sigmoid(ty) - ty*)^2 + (tw - tw*)^2 + (th - th*)^2]``
  with ``tx* = cx W / s - gi`` and ``tw* = log(w W / anchor_w)``.
- ``obj``: binary cross-entropy with logits of objectness against 1 (assigned) or 0 (others,
  ignored ones left out), averaged over the counted cells and multiplied by the head's
  balance weight (``obj_balance``: 4.0, 1.0, 0.4, 0.1 for strides 8, 16, 32, 64; else 1).
- ``cls``: binary cross-entropy with logits of the ``C`` class outputs against the one-hot
  class, averaged over assigned predictions and classes (zero for a single class).

``total = B * (box_weight * box + obj_weight * obj + cls_weight * cls)``; the factor ``B``
keeps the gradient scale per image, so the learning rate does not depend on the batch size.

The nominal weights (0.05, 1.0, 0.5) suit 640 px, 3 heads and 80 classes; ``scaled_weights``
adapts obj and cls to other sizes (the obj mean runs over more cells at larger inputs, the cls
mean over more classes), as YOLOv5 does. It is off by default: on the shapes set at 160 px
(4 classes, 2 heads) it speeds up the box term but slows objectness and classes far more
(40 steps on a fixed batch: mAP 0.00 scaled vs 0.04 nominal).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.nn.functional as F

from vocli.boxes import cxcywh_to_xyxy, iou_aligned, wh_iou

BOX_LOSSES = ("ciou", "diou", "giou", "mse")
_STRIDE_BALANCE = {8: 4.0, 16: 1.0, 32: 0.4, 64: 0.1}


@dataclass(frozen=True)
class LossConfig:
    box: str = "ciou"
    box_weight: float = 0.05
    obj_weight: float = 1.0
    cls_weight: float = 0.5
    ignore_thresh: Optional[float] = None  # None: each head's ``ignore_thresh`` (from the cfg)
    obj_balance: bool = True


def scaled_weights(box: float, obj: float, cls: float, img_size: int, num_classes: int,
                   num_heads: int) -> tuple[float, float, float]:
    """Loss weights for ``img_size`` px, ``num_classes`` and ``num_heads`` from nominal ones (640 px, 80, 3).

    box x 3/L; obj x (S / 640)^2 x 3/L; cls x C/80 x 3/L.
    """
    heads = 3.0 / max(1, num_heads)
    return box * heads, obj * (img_size / 640.0) ** 2 * heads, cls * num_classes / 80.0 * heads


@dataclass
class Assignment:
    """Assigned ground truths of one head: indices into its (B, A, Gy, Gx) grid and targets.

    ``box``: (n, 4) cx, cy, w, h in grid units of the head; ``cls``: (n,) long; ``wh_norm``: (n, 2).
    """

    image: torch.Tensor
    anchor: torch.Tensor
    gj: torch.Tensor
    gi: torch.Tensor
    box: torch.Tensor
    cls: torch.Tensor
    wh_norm: torch.Tensor


def assign_targets(targets: torch.Tensor, heads: Sequence, grid_shapes: Sequence[tuple[int, int]],
                   input_hw: tuple[int, int]) -> list[Assignment]:
    """YOLOv3 assignment of targets (M, 6) ``[b, class, cx, cy, w, h]`` normalised to heads.

    ``grid_shapes``: (Gy, Gx) per head; ``input_hw``: network input (H, W) pixels.
    """
    device = targets.device
    in_h, in_w = input_hw
    anchors = torch.cat([h.anchors.to(device=device, dtype=torch.float32).reshape(-1, 2) for h in heads])
    head_of = torch.cat([torch.full((len(h.anchors),), i, dtype=torch.long) for i, h in enumerate(heads)]).to(device)
    local = torch.cat([torch.arange(len(h.anchors)) for h in heads]).to(device)
    gt_wh = targets[:, 4:6] * torch.tensor([in_w, in_h], dtype=torch.float32, device=device)
    best = wh_iou(gt_wh, anchors).argmax(1) if len(targets) else torch.zeros(0, dtype=torch.long, device=device)
    out = []
    for i, head in enumerate(heads):
        gy, gx = grid_shapes[i]
        sel = head_of[best] == i
        t = targets[sel]
        a = local[best[sel]]
        box = t[:, 2:6] * torch.tensor([gx, gy, gx, gy], dtype=torch.float32, device=device)
        gi = box[:, 0].long().clamp(0, gx - 1)
        gj = box[:, 1].long().clamp(0, gy - 1)
        b = t[:, 0].long()
        if len(t) > 1:  # the later of two ground truths on one (image, anchor, cell) wins
            flat = ((b * len(head.anchors) + a) * gy + gj) * gx + gi
            order = torch.arange(len(t), device=device)
            last = torch.full((int(flat.max()) + 1,), -1, dtype=torch.long, device=device)
            last.scatter_reduce_(0, flat, order, reduce="amax")
            keep = last[flat] == order
            b, a, gj, gi, box, t = b[keep], a[keep], gj[keep], gi[keep], box[keep], t[keep]
        out.append(Assignment(b, a, gj, gi, box, t[:, 1].long(), t[:, 4:6]))
    return out


@dataclass
class LossParts:
    box: torch.Tensor
    obj: torch.Tensor
    cls: torch.Tensor
    total: torch.Tensor


def _ignore_mask(pred: torch.Tensor, head, targets: torch.Tensor, input_hw: tuple[int, int],
                 batch: int, thresh: float) -> torch.Tensor:
    """(B, A, Gy, Gx) True where the decoded prediction overlaps a gt of its image above ``thresh``."""
    _, na, gy, gx, _ = pred.shape
    device = pred.device
    if len(targets) == 0 or thresh >= 1:
        return torch.zeros(pred.shape[:4], dtype=torch.bool, device=device)
    stride = float(head.stride)
    ys, xs = torch.meshgrid(torch.arange(gy, device=device), torch.arange(gx, device=device), indexing="ij")
    with torch.no_grad():
        p = pred[..., :4].float()
        cx = (p[..., 0].sigmoid() + xs) * stride
        cy = (p[..., 1].sigmoid() + ys) * stride
        anchors = head.anchors.to(device=device, dtype=torch.float32).reshape(1, na, 1, 1, 2)
        wh = p[..., 2:4].clamp(max=20).exp() * anchors
        boxes = cxcywh_to_xyxy(torch.stack([cx, cy, wh[..., 0], wh[..., 1]], -1)).reshape(batch, -1, 4)
        in_h, in_w = input_hw
        counts = torch.bincount(targets[:, 0].long(), minlength=batch)
        gmax = int(counts.max())
        gts = torch.zeros(batch, gmax, 4, device=device)
        b = targets[:, 0].long()
        # slot of each target within its image
        order = torch.argsort(b, stable=True)
        starts = torch.cumsum(counts, 0) - counts
        slot = torch.empty_like(b)
        slot[order] = torch.arange(len(b), device=device) - starts[b[order]]
        gt_xyxy = cxcywh_to_xyxy(targets[:, 2:6] * torch.tensor([in_w, in_h, in_w, in_h], device=device))
        gts[b, slot] = gt_xyxy.float()
        iou = iou_aligned(boxes[:, :, None, :], gts[:, None, :, :], kind="iou")  # (B, N, G)
        best = iou.max(-1).values if gmax else torch.zeros(boxes.shape[:2], device=device)
    return (best > thresh).reshape(batch, na, gy, gx)


def yolo_loss(outputs: Sequence[torch.Tensor], targets: torch.Tensor, heads: Sequence,
              config: LossConfig = LossConfig()) -> LossParts:
    """Loss of raw head outputs (each (B, A, Gy, Gx, 5 + C)) against targets (M, 6); see module doc."""
    if config.box not in BOX_LOSSES:
        raise ValueError(f"unknown box loss {config.box!r}; use one of {', '.join(BOX_LOSSES)}")
    device = outputs[0].device
    batch = outputs[0].shape[0]
    stride0 = int(heads[0].stride)
    input_hw = (outputs[0].shape[2] * stride0, outputs[0].shape[3] * stride0)
    targets = targets.to(device=device, dtype=torch.float32)
    grids = [(o.shape[2], o.shape[3]) for o in outputs]
    assignments = assign_targets(targets, heads, grids, input_hw)
    zero = torch.zeros((), device=device)
    lbox, lobj, lcls = zero.clone(), zero.clone(), zero.clone()
    for pred, head, asg in zip(outputs, heads, assignments):
        pred = pred.float()
        num_classes = pred.shape[-1] - 5
        obj_target = torch.zeros(pred.shape[:4], device=device)
        thresh = config.ignore_thresh if config.ignore_thresh is not None else getattr(head, "ignore_thresh", 0.7)
        counted = ~_ignore_mask(pred, head, targets, input_hw, batch, thresh)
        n = len(asg.image)
        if n:
            ps = pred[asg.image, asg.anchor, asg.gj, asg.gi]  # (n, 5 + C)
            anchor_grid = head.anchors.to(device=device, dtype=torch.float32)[asg.anchor] / float(head.stride)
            cell = torch.stack([asg.gi, asg.gj], 1).float()
            pxy = ps[:, :2].sigmoid()
            if config.box == "mse":
                txy = asg.box[:, :2] - cell
                twh = torch.log(asg.box[:, 2:4] / anchor_grid + 1e-9)
                scale = 2.0 - asg.wh_norm[:, 0] * asg.wh_norm[:, 1]
                err = ((pxy - txy) ** 2).sum(1) + ((ps[:, 2:4] - twh) ** 2).sum(1)
                lbox = lbox + (scale * err).mean()
            else:
                pwh = ps[:, 2:4].clamp(max=20).exp() * anchor_grid
                pbox = cxcywh_to_xyxy(torch.cat([pxy + cell, pwh], 1))
                tbox = cxcywh_to_xyxy(asg.box)
                lbox = lbox + (1.0 - iou_aligned(pbox, tbox, kind=config.box)).mean()
            obj_target[asg.image, asg.anchor, asg.gj, asg.gi] = 1.0
            counted[asg.image, asg.anchor, asg.gj, asg.gi] = True
            if num_classes > 1:
                onehot = F.one_hot(asg.cls, num_classes).float()
                lcls = lcls + F.binary_cross_entropy_with_logits(ps[:, 5:], onehot)
        obj_bce = F.binary_cross_entropy_with_logits(pred[..., 4], obj_target, reduction="none")
        balance = _STRIDE_BALANCE.get(int(head.stride), 1.0) if config.obj_balance else 1.0
        lobj = lobj + balance * (obj_bce * counted).sum() / counted.sum().clamp(min=1)
    total = batch * (config.box_weight * lbox + config.obj_weight * lobj + config.cls_weight * lcls)
    return LossParts(lbox.detach(), lobj.detach(), lcls.detach(), total)

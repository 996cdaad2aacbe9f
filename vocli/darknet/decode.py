"""Raw YOLOv3 head outputs -> boxes in input pixels -> per-image detections after NMS.

Decoding follows YOLOv3 (Redmon & Farhadi 2018, section 2.1): for the cell at column
``gx``, row ``gy`` and anchor ``(pw, ph)`` of a head with stride ``s``:

    cx = (sigmoid(tx) + gx) * s        w = pw * exp(tw)
    cy = (sigmoid(ty) + gy) * s        h = ph * exp(th)
    objectness = sigmoid(to)           class probability = sigmoid(tc)  (independent logistic)

(``scale_x_y`` from later darknet versions, when a cfg sets it, stretches the sigmoid:
``sigmoid(t) * k - (k - 1) / 2``.)
"""

from __future__ import annotations

from typing import Sequence

import torch

from vocli.boxes import batched_nms, cxcywh_to_xyxy

# Candidates kept per image before NMS (NMS builds a pairwise matrix of this size).
MAX_NMS_CANDIDATES = 3000


def _grid(h: int, w: int, device, dtype) -> torch.Tensor:
    """(1, 1, H, W, 2) cell offsets (gx, gy)."""
    ys, xs = torch.meshgrid(torch.arange(h, device=device, dtype=dtype),
                            torch.arange(w, device=device, dtype=dtype), indexing="ij")
    return torch.stack((xs, ys), dim=-1)[None, None]


def decode_head(output: torch.Tensor, head) -> torch.Tensor:
    """output: (B, A, H, W, 5 + C) raw -> (B, A, H, W, 5 + C) decoded (cx, cy, w, h pixels; probabilities)."""
    b, a, h, w, _ = output.shape
    anchors = head.anchors.to(device=output.device, dtype=output.dtype).view(1, a, 1, 1, 2)
    scale = float(getattr(head, "scale_x_y", 1.0))
    xy = torch.sigmoid(output[..., :2])
    if scale != 1.0:
        xy = xy * scale - (scale - 1.0) / 2
    xy = (xy + _grid(h, w, output.device, output.dtype)) * head.stride
    wh = torch.exp(output[..., 2:4]) * anchors
    return torch.cat((xy, wh, torch.sigmoid(output[..., 4:])), dim=-1)


def decode_outputs(outputs: Sequence[torch.Tensor], heads) -> torch.Tensor:
    """Raw head outputs (each (B, A, H, W, 5 + C)) -> (B, N, 5 + C), N = sum of A*H*W.

    Columns: cx, cy, w, h in input pixels, objectness probability, class probabilities.
    """
    if len(outputs) != len(heads):
        raise ValueError(f"{len(outputs)} outputs for {len(heads)} heads")
    decoded = [decode_head(out, head).reshape(out.shape[0], -1, out.shape[-1]) for out, head in zip(outputs, heads)]
    return torch.cat(decoded, dim=1)


def non_max_suppression(decoded: torch.Tensor, conf_threshold: float = 0.25, iou_threshold: float = 0.45,
                        method: str = "standard", max_det: int = 300,
                        multi_label: bool = False) -> list[torch.Tensor]:
    """Per-image detections from ``decode_outputs``' (B, N, 5 + C).

    Returns a list of B tensors (n, 6): x1, y1, x2, y2 (input pixels), score, class id,
    sorted by score. score = objectness * class probability; boxes scoring at most
    ``conf_threshold`` are dropped; NMS is class-wise (``method`` "standard" IoU or
    "diou"). ``multi_label`` keeps every class above the threshold for a box, not only its best.
    """
    if method not in ("standard", "diou"):
        raise ValueError(f"unknown NMS method {method!r}; use standard or diou")
    results = []
    for pred in decoded:
        boxes = cxcywh_to_xyxy(pred[:, :4])
        scores_all = pred[:, 4:5] * pred[:, 5:]                          # (N, C)
        if multi_label:
            rows, classes = (scores_all > conf_threshold).nonzero(as_tuple=True)
            scores = scores_all[rows, classes]
            boxes = boxes[rows]
        else:
            scores, classes = scores_all.max(dim=1)
            keep = scores > conf_threshold
            boxes, scores, classes = boxes[keep], scores[keep], classes[keep]
        if scores.numel() > MAX_NMS_CANDIDATES:
            top = scores.topk(MAX_NMS_CANDIDATES).indices
            boxes, scores, classes = boxes[top], scores[top], classes[top]
        kept = batched_nms(boxes, scores, classes, iou_threshold, method)[:max_det]
        results.append(torch.cat((boxes[kept], scores[kept, None], classes[kept, None].to(boxes.dtype)), dim=1))
    return results

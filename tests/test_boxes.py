import math

import numpy as np
import pytest
import torch

from vocli.boxes import (batched_nms, box_area, box_iou, cxcywh_to_xyxy, iou_aligned, nms,
                         wh_iou, xyxy_to_cxcywh)


def test_box_iou_hand_worked():
    a = np.array([[0, 0, 2, 2]], dtype=float)
    b = np.array([[1, 1, 3, 3], [0, 0, 2, 2], [2, 2, 4, 4], [0, 0, 1, 2]], dtype=float)
    # overlap 1 / union 7; identical; touching corner; half inside
    np.testing.assert_allclose(box_iou(a, b), [[1 / 7, 1.0, 0.0, 0.5]])


def test_box_iou_plus_one_is_voc_devkit_rule():
    # Inclusive pixels: 1..10 is 10 px wide; 6..15 overlaps 6..10 = 5 px.
    a = np.array([[1, 1, 10, 10]], dtype=float)
    b = np.array([[6, 1, 15, 10]], dtype=float)
    assert box_iou(a, b, plus_one=True)[0, 0] == pytest.approx(50 / 150)
    assert box_area(a, plus_one=True)[0] == 100


def test_torch_and_numpy_agree():
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 50, (6, 2))
    a = np.concatenate([xy, xy + rng.uniform(1, 30, (6, 2))], 1)
    np.testing.assert_allclose(box_iou(torch.tensor(a), torch.tensor(a)).numpy(), box_iou(a, a))


def test_format_round_trip():
    boxes = np.array([[2.0, 4.0, 6.0, 10.0]])
    np.testing.assert_allclose(xyxy_to_cxcywh(boxes), [[4, 7, 4, 6]])
    np.testing.assert_allclose(cxcywh_to_xyxy(xyxy_to_cxcywh(boxes)), boxes)


def test_wh_iou_hand_worked():
    a = np.array([[2.0, 2.0], [2.0, 1.0]])
    b = np.array([[1.0, 1.0], [1.0, 2.0]])
    # (2,2) vs (1,1): 1/4; (2,2) vs (1,2): 2/4; (2,1) vs (1,1): 1/2; (2,1) vs (1,2): 1/3
    np.testing.assert_allclose(wh_iou(a, b), [[0.25, 0.5], [0.5, 1 / 3]])


def test_giou_diou_ciou_hand_worked():
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    b = torch.tensor([[1.0, 1.0, 3.0, 3.0]])
    iou = 1 / 7
    assert iou_aligned(a, b, "iou", eps=0).item() == pytest.approx(iou)
    # enclosing box 3x3 = 9, union 7 -> GIoU = 1/7 - 2/9
    assert iou_aligned(a, b, "giou", eps=0).item() == pytest.approx(iou - 2 / 9)
    # centres (1,1) and (2,2): d^2 = 2; enclosing diagonal^2 = 18 -> DIoU = 1/7 - 1/9
    assert iou_aligned(a, b, "diou", eps=0).item() == pytest.approx(iou - 1 / 9)
    # same aspect ratio -> v = 0 -> CIoU = DIoU
    assert iou_aligned(a, b, "ciou", eps=0).item() == pytest.approx(iou - 1 / 9)
    # different aspect: a 2x2, c 4x2 at same centre: IoU 1/2, d=0, v = 4/pi^2 (atan 2 - atan 1)^2
    c = torch.tensor([[-1.0, 0.0, 3.0, 2.0]])
    v = 4 / math.pi ** 2 * (math.atan(2) - math.atan(1)) ** 2
    alpha = v / (1 - 0.5 + v)
    assert iou_aligned(a, c, "ciou", eps=0).item() == pytest.approx(0.5 - alpha * v, rel=1e-6)


def test_ciou_gradient_flows():
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0]], requires_grad=True)
    loss = (1 - iou_aligned(a, torch.tensor([[1.0, 0.5, 3.5, 3.0]]), "ciou")).sum()
    loss.backward()
    assert torch.isfinite(a.grad).all() and a.grad.abs().sum() > 0


def test_nms_standard_and_diou():
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 9]], dtype=torch.float)
    scores = torch.tensor([0.9, 0.8, 0.7, 0.95])
    # box 3 (0.95) suppresses 0 (IoU 0.9) and 1 (IoU 81/(90+100-81)=0.743); box 2 survives.
    assert nms(boxes, scores, 0.5).tolist() == [3, 2]
    assert nms(boxes, scores, 0.95).tolist() == [3, 0, 1, 2]
    # DIoU subtracts the centre-distance term, so it never suppresses more than IoU does.
    assert set(nms(boxes, scores, 0.5, method="diou").tolist()) >= {3, 2}


def test_batched_nms_keeps_other_classes():
    boxes = torch.tensor([[0, 0, 10, 10], [0, 0, 10, 10]], dtype=torch.float)
    scores = torch.tensor([0.9, 0.8])
    assert batched_nms(boxes, scores, torch.tensor([0, 1]), 0.5).tolist() == [0, 1]
    assert batched_nms(boxes, scores, torch.tensor([1, 1]), 0.5).tolist() == [0]
    assert nms(torch.zeros((0, 4)), torch.zeros(0), 0.5).numel() == 0


def test_diou_nms_keeps_a_shifted_box_that_iou_nms_suppresses():
    boxes = torch.tensor([[0, 0, 10, 10], [3, 0, 13, 10], [0, 1, 10, 11]], dtype=torch.float)
    scores = torch.tensor([0.9, 0.8, 0.7])
    # 0 vs 1: IoU = 70 / 130 = 0.53846; centres 3 apart: d^2 = 9, enclosing 13 x 10: diagonal^2 = 269
    #         DIoU = 0.53846 - 9 / 269 = 0.50500
    # 0 vs 2: IoU = 90 / 110 = 0.81818; d^2 = 1, enclosing 10 x 11: 221 -> DIoU = 0.81366
    # 1 vs 2: IoU = 63 / 137 = 0.45985 (below either threshold)
    assert nms(boxes, scores, 0.52).tolist() == [0]              # IoU 0.538 > 0.52: 1 goes
    assert nms(boxes, scores, 0.52, method="diou").tolist() == [0, 1]  # DIoU 0.505 <= 0.52: 1 stays
    assert nms(boxes, scores, 0.50, method="diou").tolist() == [0]     # 0.505 > 0.50
    assert nms(boxes, scores, 0.815, method="diou").tolist() == [0, 1, 2]  # 0.8137 <= 0.815
    assert nms(boxes, scores, 0.815).tolist() == [0, 1]          # IoU 0.818 > 0.815
    # class-wise DIoU-NMS: the same rule inside a class
    assert batched_nms(boxes, scores, torch.tensor([0, 0, 1]), 0.52, method="diou").tolist() == [0, 1, 2]
    assert batched_nms(boxes, scores, torch.tensor([0, 0, 1]), 0.52).tolist() == [0, 2]

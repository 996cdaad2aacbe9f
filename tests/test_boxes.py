import math

import numpy as np
import pytest
import torch

from vocli.boxes import (batched_nms, box_area, box_iou, box_iou_columns, box_iou_paired, coco_iou_paired,
                         coco_to_voc, cxcywh_to_xyxy, iou_aligned, nms, voc_to_coco, wh_iou, wh_iou_aligned,
                         xyxy_to_cxcywh)


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


# --------------------------------------------------------------------------- added for mutation testing
# Each test pins a behaviour that a surviving mutant changed; expected values by hand or from a
# plain scalar reference written from the papers' formulas.


def test_voc_coco_conversions_by_hand_numpy_and_torch():
    voc = np.array([[[1.0, 1, 10, 20]], [[5, 7, 5, 7]]])  # (2, 1, 4): a 10 x 20 box; a one-pixel box
    coco = [[[0.0, 0, 10, 20]], [[4, 6, 1, 1]]]            # x1 - 1, y1 - 1, x2 - x1 + 1, y2 - y1 + 1
    assert voc_to_coco(voc).tolist() == coco and voc_to_coco(voc).shape == (2, 1, 4)
    assert coco_to_voc(np.array(coco)).tolist() == voc.tolist()  # x + 1, y + 1, x + w, y + h
    assert coco_to_voc(np.array([2.5, 3, 4, 0.5])).tolist() == [3.5, 4, 6.5, 3.5]  # unrounded
    t = voc_to_coco(torch.tensor(voc))
    assert isinstance(t, torch.Tensor) and t.shape == (2, 1, 4) and t.tolist() == coco
    back = coco_to_voc(torch.tensor(coco))
    assert isinstance(back, torch.Tensor) and back.tolist() == voc.tolist()


def test_torch_formats_stay_tensors_along_the_last_axis():
    boxes = torch.tensor([[[0.0, 0, 4, 2], [2, 2, 4, 8]]])  # (1, 2, 4)
    c = xyxy_to_cxcywh(boxes)
    assert isinstance(c, torch.Tensor) and c.shape == (1, 2, 4)
    assert c.tolist() == [[[2.0, 1, 4, 2], [3, 5, 2, 6]]]
    x = cxcywh_to_xyxy(c)
    assert isinstance(x, torch.Tensor) and x.tolist() == boxes.tolist()
    n = xyxy_to_cxcywh(boxes.numpy())
    assert isinstance(n, np.ndarray) and n.tolist() == c.tolist()


def test_area_and_paired_iou_defaults_are_continuous():
    assert box_area(np.array([[1.0, 1, 3, 4]])).tolist() == [6.0]                   # 2 x 3
    assert box_area(np.array([[1.0, 1, 3, 4]]), plus_one=True).tolist() == [12.0]   # 3 x 4
    a, b = np.array([0.0, 0, 2, 2]), np.array([1.0, 1, 3, 3])
    assert box_iou_paired(a, b) == pytest.approx(1 / 7)                  # 1 / (4 + 4 - 1)
    assert box_iou_paired(a, b, plus_one=True) == pytest.approx(4 / 14)  # 2 x 2 / (9 + 9 - 4)
    # a wide box: x2 != y2, so the corners must be taken as (x2, y2)
    wide = np.array([0.0, 0, 4, 2])
    assert box_iou_paired(wide, wide) == 1.0
    assert box_iou_paired(wide, np.array([2.0, 0, 6, 2])) == pytest.approx(4 / 12)  # 2 x 2 / (8 + 8 - 4)


def test_box_iou_columns_is_box_iou_bit_for_bit():
    a = np.array([[0.0, 0, 4, 2], [1, 1, 3, 3]])
    b = np.array([[2.0, 0, 6, 2], [0, 0, 4, 2], [10, 10, 11, 12]])
    # by hand: (0,0,4,2) vs (2,0,6,2): 4 / 12; vs itself 1; far away 0
    #          (1,1,3,3) vs (2,0,6,2): 1 x 1 / (4 + 8 - 1); vs (0,0,4,2): 2 x 1 / (4 + 8 - 2); 0
    expected = [[4 / 12, 1, 0], [1 / 11, 2 / 10, 0]]
    np.testing.assert_allclose(box_iou_columns(a, b), expected, rtol=1e-15)
    # plus one: (0,0,4,2) is 5 x 3; vs (2,0,6,2): 3 x 3 / (15 + 15 - 9)
    assert box_iou_columns(a, b, plus_one=True)[0, 0] == pytest.approx(9 / 21)
    rng = np.random.default_rng(3)
    xy = rng.uniform(0, 50, (30, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(0, 20, (30, 2))], 1)
    for plus_one in (False, True):
        got = box_iou_columns(boxes[:7], boxes, plus_one)
        assert got.shape == (7, 30) and np.array_equal(got, box_iou(boxes[:7], boxes, plus_one))
        t = box_iou_columns(torch.tensor(boxes[:7]), torch.tensor(boxes), plus_one)
        assert isinstance(t, torch.Tensor) and np.array_equal(t.numpy(), got)


def test_shape_iou_of_unequal_sides():
    # (4, 1) vs (3, 3) at a common centre: min(4,3) x min(1,3) = 3 / (4 + 9 - 3)
    assert wh_iou(np.array([[4.0, 1]]), np.array([[3.0, 3]]))[0, 0] == pytest.approx(0.3)
    a = np.array([[4.0, 1], [2, 2], [1, 5], [4, 1]])
    b = np.array([[3.0, 3], [2, 2], [2, 1], [3, 2]])
    # row by row: 3 / 10; 1; 1 x 1 / (5 + 2 - 1); min(4,3) x min(1,2) / (4 + 6 - 3)
    want = [0.3, 1.0, 1 / 6, 3 / 7]
    np.testing.assert_allclose(wh_iou_aligned(a, b), want)
    t = wh_iou_aligned(torch.tensor(a), torch.tensor(b))
    assert isinstance(t, torch.Tensor) and np.allclose(t.numpy(), want)
    np.testing.assert_allclose(wh_iou_aligned(a[None], b[None]), [want])


def _reference_iou(a, b, kind):
    """IoU / GIoU / DIoU / CIoU of two boxes from the papers' formulas, one scalar at a time."""
    (ax1, ay1, ax2, ay2), (bx1, by1, bx2, by2) = a, b
    inter = max(min(ax2, bx2) - max(ax1, bx1), 0) * max(min(ay2, by2) - max(ay1, by1), 0)
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
    iou = inter / union
    cw, ch = max(ax2, bx2) - min(ax1, bx1), max(ay2, by2) - min(ay1, by1)
    if kind == "iou":
        return iou
    if kind == "giou":
        return iou - (cw * ch - union) / (cw * ch)
    d2 = ((ax1 + ax2) / 2 - (bx1 + bx2) / 2) ** 2 + ((ay1 + ay2) / 2 - (by1 + by2) / 2) ** 2
    if kind == "diou":
        return iou - d2 / (cw ** 2 + ch ** 2)
    v = 4 / math.pi ** 2 * (math.atan((bx2 - bx1) / (by2 - by1)) - math.atan((ax2 - ax1) / (ay2 - ay1))) ** 2
    return iou - d2 / (cw ** 2 + ch ** 2) - v * v / (1 - iou + v)


def test_iou_family_on_general_boxes_matches_the_scalar_formulas():
    # hand-worked first: a = (1,3,6,9) 5 x 6, b = (2,1,8,5) 6 x 4: overlap 4 x 2 = 8, union 30 + 24 - 8 = 46
    # enclosing (1,1)-(8,9) 7 x 8 = 56; centres (3.5, 6) and (5, 3): d^2 = 2.25 + 9 = 11.25, diagonal^2 49 + 64
    a, b = np.array([1.0, 3, 6, 9]), np.array([2.0, 1, 8, 5])
    assert iou_aligned(a, b, "iou", eps=0) == pytest.approx(8 / 46, rel=1e-12)
    assert iou_aligned(a, b, "giou", eps=0) == pytest.approx(8 / 46 - 10 / 56, rel=1e-12)
    assert iou_aligned(a, b, "diou", eps=0) == pytest.approx(8 / 46 - 11.25 / 113, rel=1e-12)
    v = 4 / math.pi ** 2 * (math.atan(6 / 4) - math.atan(5 / 6)) ** 2
    ciou = 8 / 46 - 11.25 / 113 - v * v / (1 - 8 / 46 + v)
    assert iou_aligned(a, b, "ciou", eps=0) == pytest.approx(ciou, rel=1e-12)
    rng = np.random.default_rng(11)
    xy = rng.uniform(-20, 20, (40, 2, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(0.5, 15, (40, 2, 2))], 2)  # (40, 2, 4) pairs
    for kind in ("iou", "giou", "diou", "ciou"):
        want = [_reference_iou(p, q, kind) for p, q in boxes]
        got = iou_aligned(boxes[:, 0], boxes[:, 1], kind, eps=0)
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
        t = iou_aligned(torch.tensor(boxes[:, 0]), torch.tensor(boxes[:, 1]), kind, eps=0)
        np.testing.assert_allclose(t.numpy(), want, rtol=1e-9, atol=1e-12)


def test_iou_family_eps_defaults_and_degenerate_boxes():
    a, b = np.array([0.0, 0, 2, 2]), np.array([1.0, 1, 3, 3])
    assert iou_aligned(a, b) == pytest.approx(1 / 7, rel=1e-8)  # kind "iou", eps 1e-9 by default
    # eps is added to the union, the enclosing area and the enclosing diagonal^2:
    # eps = 1: IoU 1 / 8; GIoU 1/8 - (10 - 8) / 10; DIoU 1/8 - 2 / 19
    assert iou_aligned(a, b, eps=1.0) == pytest.approx(1 / 8)
    assert iou_aligned(a, b, "giou", eps=1.0) == pytest.approx(1 / 8 - 2 / 10)
    assert iou_aligned(a, b, "diou", eps=1.0) == pytest.approx(1 / 8 - 2 / 19)
    # a flat box (height 0) against a 2 x 2 square on the same base: IoU 0, centres 1 apart, diagonal^2 8;
    # atan(2 / eps) -> pi/2, so v = 4/pi^2 (pi/4 - pi/2)^2 = 1/4, alpha = v / (1 + v) = 1/5
    flat, square = np.array([0.0, 0, 2, 0]), np.array([0.0, 0, 2, 2])
    for p, q in ((flat, square), (square, flat)):
        assert iou_aligned(p, q, "ciou") == pytest.approx(-(1 / 8 + 1 / 4 * 1 / 5), rel=1e-6)
        t = iou_aligned(torch.tensor(p), torch.tensor(q), "ciou")
        assert t.item() == pytest.approx(-(1 / 8 + 1 / 20), rel=1e-6)
    with pytest.raises(ValueError, match=r"unknown IoU kind 'eiou'; use iou, giou, diou or ciou"):
        iou_aligned(a, b, "eiou")


def test_nms_one_box_ties_exact_threshold_and_small_boxes():
    one = torch.tensor([[0.0, 0, 1, 1]])
    assert nms(one, torch.tensor([0.3]), 0.5).tolist() == [0]
    assert batched_nms(one, torch.tensor([0.3]), torch.tensor([2]), 0.5).tolist() == [0]
    empty = batched_nms(torch.zeros((0, 4)), torch.zeros(0), torch.zeros(0, dtype=torch.long), 0.5)
    assert empty.shape == (0,) and empty.dtype == torch.long
    assert nms(torch.zeros((0, 4)), torch.zeros(0), 0.5).dtype == torch.long
    # IoU exactly 0.5 ((0,0,2,1) vs (0,0,1,1): 1 / 2) is not above 0.5: both stay
    pair = torch.tensor([[0.0, 0, 2, 1], [0, 0, 1, 1]])
    assert nms(pair, torch.tensor([0.9, 0.8]), 0.5).tolist() == [0, 1]
    assert nms(pair, torch.tensor([0.9, 0.8]), 0.49).tolist() == [0]
    # 40 tied boxes apart from each other, then a higher one: ties keep input order
    boxes = torch.tensor([[3.0 * i, 0, 3 * i + 1, 1] for i in range(41)])
    scores = torch.tensor([0.5] * 40 + [0.9])
    assert nms(boxes, scores, 0.5).tolist() == [40] + list(range(40))
    # DIoU-NMS on normalised coordinates: two identical small boxes, DIoU 1 -> the second goes
    small = torch.tensor([[0.1, 0.1, 0.2, 0.2], [0.1, 0.1, 0.2, 0.2]])
    assert nms(small, torch.tensor([0.9, 0.8]), 0.5, method="diou").tolist() == [0]
    with pytest.raises(ValueError, match=r"unknown NMS method 'soft'; use standard or diou"):
        nms(pair, torch.tensor([0.9, 0.8]), 0.5, method="soft")


def test_batched_nms_separates_classes_whatever_the_coordinates():
    # span of all coordinates: min -10, max 0 -> classes are moved 11 apart. Moving them
    # max + min + 1 = -9 apart would put the cat box (-1,-1,0,0) exactly on the dog box.
    boxes = torch.tensor([[-10.0, -10, -9, -9], [-1, -1, 0, 0]])
    scores = torch.tensor([0.9, 0.8])
    assert batched_nms(boxes, scores, torch.tensor([0, 1]), 0.5).tolist() == [0, 1]
    # min 5, max 15: classes 11 apart; 9 apart would put (5,5,6,6) of class 1 on (14,14,15,15)
    boxes = torch.tensor([[14.0, 14, 15, 15], [5, 5, 6, 6]])
    assert batched_nms(boxes, scores, torch.tensor([0, 1]), 0.5).tolist() == [0, 1]
    # and within one class they do suppress each other
    assert batched_nms(torch.tensor([[5.0, 5, 6, 6], [5, 5, 6, 6]]), scores, torch.tensor([1, 1]), 0.5).tolist() == [0]


def test_coco_iou_by_hand_with_crowds_and_no_overlap():
    dt = [[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 1, 1], [0, 0, 4, 2]]
    gt = [[5, 0, 10, 10],    # 5 x 10 = 50 shared: 50 / (100 + 100 - 50)
          [5, 0, 10, 10],    # the same as a crowd region: 50 / area(dt) = 50 / 100
          [20, 20, 5, 5],    # apart: 0
          [10, 0, 5, 10],    # touching edges (width 0): 0
          [5, 5, 1, 1],      # apart in both axes (negative w and h, positive product): 0
          [1, -1, 2, 2]]     # 2 x 1 = 2 shared: 2 / (8 + 4 - 2)
    crowd = [False, True, False, True, False, False]
    got = coco_iou_paired(dt, gt, np.array(crowd))
    assert got.dtype == np.float64 and got.shape == (6,)
    np.testing.assert_allclose(got, [1 / 3, 0.5, 0, 0, 0, 0.2], rtol=1e-15)
    # a crowd region larger than the detection: the detection is fully inside -> 1
    assert coco_iou_paired(np.array([2.0, 2, 3, 3]), np.array([0.0, 0, 10, 10]), True) == 1.0
    # broadcasting: one detection against two ground truths
    two = coco_iou_paired(np.array([[0.0, 0, 10, 10]]), np.array([[5.0, 0, 10, 10], [0, 0, 10, 10]]),
                          np.array([False, False]))
    np.testing.assert_allclose(two, [1 / 3, 1.0])



def test_coco_iou_general_boxes_partial_pixels_and_zero_areas_without_warnings():
    import warnings

    # dt (2,1) 4 x 6, gt (3,4) 5 x 2: overlap x 3..6 (3), y 4..6 (2) -> 6 / (24 + 10 - 6)
    assert coco_iou_paired(np.array([2.0, 1, 4, 6]), np.array([3.0, 4, 5, 2]), False) == pytest.approx(6 / 28)
    # less than a pixel of overlap still counts: width .5 -> .5 / (1 + 1 - .5)
    assert coco_iou_paired(np.array([0.0, 0, 1, 1]), np.array([0.5, 0, 1, 1]), False) == pytest.approx(1 / 3)
    dt = np.array([[0.0, 0, 10, 10],   # gt overlaps in x (3) but lies below (h -10): 0, not -30 / 145
                   [0, 0, 0, 5],       # zero-width crowd detection on the gt's edge: 0 / 0 -> 0
                   [0, 0, 5, 0],       # zero-height, the same
                   [10, 10, 0, 5],     # zero width, apart in both axes: 25 / 0 -> 0
                   [0, 0, 0, 0]])      # both empty, not a crowd: 0 / 0 -> 0
    gt = np.array([[2.0, 20, 3, 5], [0, 0, 5, 5], [0, 0, 5, 5], [0, 0, 5, 5], [0, 0, 0, 0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = coco_iou_paired(dt, gt, np.array([False, True, True, True, False]))
    assert got.tolist() == [0.0, 0.0, 0.0, 0.0, 0.0]


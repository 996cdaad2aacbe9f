"""YOLOv3 loss: hand-worked assignment, near-zero loss for a perfect prediction, ignore rule."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from vocli.yolo.loss import LossConfig, assign_targets, yolo_loss

# yolov3-tiny's anchors: coarse head (stride 32) first, as in the cfg.
HEADS = [
    SimpleNamespace(anchors=torch.tensor([[81.0, 82.0], [135.0, 169.0], [344.0, 319.0]]), stride=32),
    SimpleNamespace(anchors=torch.tensor([[10.0, 14.0], [23.0, 27.0], [37.0, 58.0]]), stride=16),
]
NUM_CLASSES = 3
SIZE = 128  # grids 4x4 and 8x8


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def empty_outputs(batch: int = 1) -> list[torch.Tensor]:
    outs = []
    for h in HEADS:
        g = SIZE // h.stride
        o = torch.zeros(batch, 3, g, g, 5 + NUM_CLASSES)
        o[..., 4] = -20.0  # confident "no object"
        o[..., 5:] = -20.0
        outs.append(o)
    return outs


# Ground truth: class 2, centre (0.6, 0.3), size 0.25 x 0.3 -> 32 x 38.4 px at 128 px.
# Shape IoU with each anchor (worked by hand):
#   (37, 58): 32*38.4 / (37*58) = 1228.8 / 2146 = 0.573   <- best
#   (23, 27): 23*27 / 1228.8 = 621 / 1228.8 = 0.505
#   (81, 82): 1228.8 / 6642 = 0.185, the rest smaller.
# So: head 1 (stride 16, 8x8 grid), anchor 2, cell gi = floor(0.6*8) = 4, gj = floor(0.3*8) = 2.
TARGET = torch.tensor([[0.0, 2.0, 0.6, 0.3, 0.25, 0.3]])


def perfect_outputs() -> list[torch.Tensor]:
    outs = empty_outputs()
    p = outs[1][0, 2, 2, 4]
    p[0] = logit(0.8)                 # 0.6*8 - 4
    p[1] = logit(0.4)                 # 0.3*8 - 2
    p[2] = math.log(32.0 / 37.0)
    p[3] = math.log(38.4 / 58.0)
    p[4] = 20.0
    p[5 + 2] = 20.0
    return outs


def test_assignment_picks_hand_worked_anchor_and_cell():
    asg = assign_targets(TARGET, HEADS, [(4, 4), (8, 8)], (SIZE, SIZE))
    assert len(asg[0].image) == 0
    a = asg[1]
    assert a.anchor.tolist() == [2] and a.gi.tolist() == [4] and a.gj.tolist() == [2]
    assert a.cls.tolist() == [2]
    assert torch.allclose(a.box, torch.tensor([[4.8, 2.4, 2.0, 2.4]]))


def test_large_box_goes_to_coarse_head():
    # 0.9 x 0.8 -> 115.2 x 102.4 px; best anchor (135, 169)? IoU = 115.2*102.4/(135*169) = 0.517,
    # (81, 82): 6642/11796 = 0.563 -> anchor 0 of head 0, cell (floor(0.5*4), floor(0.5*4)) = (2, 2).
    t = torch.tensor([[0.0, 0.0, 0.5, 0.5, 0.9, 0.8]])
    asg = assign_targets(t, HEADS, [(4, 4), (8, 8)], (SIZE, SIZE))
    assert asg[0].anchor.tolist() == [0] and asg[0].gi.tolist() == [2] and asg[0].gj.tolist() == [2]
    assert len(asg[1].image) == 0


def test_two_truths_on_one_cell_keep_the_later():
    t = torch.tensor([[0.0, 0.0, 0.6, 0.3, 0.25, 0.3], [0.0, 1.0, 0.61, 0.31, 0.25, 0.3]])
    asg = assign_targets(t, HEADS, [(4, 4), (8, 8)], (SIZE, SIZE))
    assert asg[1].cls.tolist() == [1]


@pytest.mark.parametrize("box", ["ciou", "diou", "giou", "mse"])
def test_perfect_prediction_has_near_zero_box_and_class_loss(box):
    parts = yolo_loss(perfect_outputs(), TARGET, HEADS, LossConfig(box=box))
    assert parts.box.item() < 1e-5
    assert parts.cls.item() < 1e-6
    assert parts.obj.item() < 1e-6


def test_wrong_prediction_costs_more():
    outs = perfect_outputs()
    outs[1][0, 2, 2, 4, 0] = logit(0.2)  # centre off by 0.6 cells
    outs[1][0, 2, 2, 4, 5 + 2] = -20.0   # class wrong
    parts = yolo_loss(outs, TARGET, HEADS, LossConfig(box="ciou"))
    assert parts.box.item() > 0.1
    # cls: mean BCE over 3 outputs, one of them now -20 against target 1 -> about 20 / 3
    assert parts.cls.item() == pytest.approx(20.0 / 3, rel=1e-3)


def test_ignore_threshold_spares_overlapping_predictions():
    outs = perfect_outputs()
    # Anchor 1 (23, 27) of the same cell predicts the same box and says "object" confidently.
    q = outs[1][0, 1, 2, 4]
    q[0], q[1] = logit(0.8), logit(0.4)
    q[2], q[3] = math.log(32.0 / 23.0), math.log(38.4 / 27.0)
    q[4] = 20.0
    spared = yolo_loss(outs, TARGET, HEADS, LossConfig(ignore_thresh=0.7, obj_balance=False))
    assert spared.obj.item() < 1e-6
    charged = yolo_loss(outs, TARGET, HEADS, LossConfig(ignore_thresh=1.0, obj_balance=False))
    # one wrong cell out of 3*8*8 = 192 in head 1, BCE about 20 -> 20 / 192
    assert charged.obj.item() == pytest.approx(20.0 / 192, rel=1e-3)


def test_total_combines_weights_and_batch():
    outs = empty_outputs(batch=2)
    t = torch.tensor([[1.0, 0.0, 0.5, 0.5, 0.2, 0.2]])
    cfg = LossConfig(box_weight=2.0, obj_weight=3.0, cls_weight=5.0)
    parts = yolo_loss(outs, t, HEADS, cfg)
    # Hand-worked. The truth is 25.6 x 25.6 px: best anchor (23, 27) (IoU 588.8 / 688.0 = 0.856),
    # head 1 (stride 16, 8x8), cell (4, 4); truth box in cells: centre (4, 4), size 1.6 x 1.6.
    # The empty prediction there decodes to centre (4.5, 4.5), size 23/16 x 27/16 = 1.4375 x 1.6875.
    px1, py1, px2, py2 = 4.5 - 1.4375 / 2, 4.5 - 1.6875 / 2, 4.5 + 1.4375 / 2, 4.5 + 1.6875 / 2
    inter = (4.8 - px1) * (4.8 - py1)                      # 1.01875 x 1.14375
    iou = inter / (1.4375 * 1.6875 + 1.6 * 1.6 - inter)   # 1.16520 / 3.82058 = 0.30498
    diag2 = (px2 - 3.2) ** 2 + (py2 - 3.2) ** 2           # enclosing box 2.01875 x 2.14375
    v = 4 / math.pi ** 2 * (math.atan(1.0) - math.atan(1.4375 / 1.6875)) ** 2
    box = 1 - (iou - 0.5 / diag2 - v * v / (1 - iou + v))  # centres 0.5 apart in x and y: d^2 = 0.5
    obj = 20.0 / (2 * 3 * 8 * 8)   # one cell of head 1's 384 at BCE(-20, 1) = 20; the rest ~2e-9 each
    cls = 20.0 / 3                 # one of three class outputs at BCE(-20, 1) = 20
    assert parts.box.item() == pytest.approx(box, rel=1e-5)
    assert parts.obj.item() == pytest.approx(obj, rel=1e-5)
    assert parts.cls.item() == pytest.approx(cls, rel=1e-5)
    # total = batch x (weighted sum)
    assert parts.total.item() == pytest.approx(2 * (2.0 * box + 3.0 * obj + 5.0 * cls), rel=1e-5)


def test_empty_targets_give_only_objectness():
    outs = empty_outputs()
    for o in outs:
        o.requires_grad_(True)
    parts = yolo_loss(outs, torch.zeros((0, 6)), HEADS)
    assert parts.box.item() == 0 and parts.cls.item() == 0
    parts.total.backward()
    assert outs[0].grad is not None


def test_unknown_box_loss_is_rejected():
    with pytest.raises(ValueError, match="box loss"):
        yolo_loss(empty_outputs(), TARGET, HEADS, LossConfig(box="l1"))


def test_scaled_weights_by_hand():
    from vocli.yolo.loss import scaled_weights

    # 160 px, 4 classes, 2 heads: box x 3/2; obj x (160/640)^2 x 3/2; cls x 4/80 x 3/2
    box, obj, cls = scaled_weights(0.05, 1.0, 0.5, 160, 4, 2)
    assert (box, obj, cls) == pytest.approx((0.075, 0.09375, 0.0375))
    assert scaled_weights(0.05, 1.0, 0.5, 640, 80, 3) == pytest.approx((0.05, 1.0, 0.5))  # nominal: unchanged


def _offset_wide_outputs() -> list[torch.Tensor]:
    """The perfect prediction moved 0.6 cells left and widened to 3 cells (48 px)."""
    outs = perfect_outputs()
    p = outs[1][0, 2, 2, 4]
    p[0] = logit(0.2)                 # centre x 4.2 instead of 4.8 (grid units)
    p[2] = math.log(48.0 / 37.0)      # width 48 px = 3.0 cells instead of 2.0
    return outs


# Hand-worked, grid units: prediction cx 4.2, cy 2.4, w 3.0, h 2.4 -> x 2.7..5.7, y 1.2..3.6;
# truth cx 4.8, cy 2.4, w 2.0, h 2.4 -> x 3.8..5.8, y 1.2..3.6.
# intersection 1.9 x 2.4 = 4.56; union 7.2 + 4.8 - 4.56 = 7.44; IoU = 4.56 / 7.44 = 0.6129032
# enclosing box 3.1 x 2.4 = 7.44 = union, so GIoU = IoU (GIoU loss 0.3870968)
# DIoU: centre distance^2 0.36 over enclosing diagonal^2 3.1^2 + 2.4^2 = 15.37 -> 0.0234223
# CIoU: v = 4/pi^2 (atan(2/2.4) - atan(3/2.4))^2 = 0.4052847 * 0.2013171^2 = 0.0164256,
#       alpha = v / (1 - IoU + v) = 0.0164256 / 0.4035224 = 0.0407056, alpha v = 0.0006686
# CIoU loss = 1 - (0.6129032 - 0.0234223 - 0.0006686) = 0.4111876
_IOU = 4.56 / 7.44
_DIOU_TERM = 0.36 / 15.37
_V = 4 / math.pi ** 2 * (math.atan(2 / 2.4) - math.atan(3 / 2.4)) ** 2
_CIOU_LOSS = 1 - (_IOU - _DIOU_TERM - _V * _V / (1 - _IOU + _V))


@pytest.mark.parametrize("box, expected", [("ciou", 0.4111876), ("diou", 1 - _IOU + _DIOU_TERM),
                                           ("giou", 1 - _IOU)])
def test_box_loss_kinds_on_an_imperfect_prediction_by_hand(box, expected):
    assert _CIOU_LOSS == pytest.approx(0.4111876, abs=1e-7)  # the arithmetic in the comment above
    parts = yolo_loss(_offset_wide_outputs(), TARGET, HEADS, LossConfig(box=box))
    assert parts.box.item() == pytest.approx(expected, abs=2e-6)


def test_default_box_loss_is_ciou():
    parts = yolo_loss(_offset_wide_outputs(), TARGET, HEADS)
    assert parts.box.item() == pytest.approx(_CIOU_LOSS, abs=2e-6)


def test_ignore_mask_on_a_non_square_input_with_several_truths_per_image():
    """Zero outputs decode to each anchor's own box at each cell centre; a truth equal to one of
    them (IoU 1) marks exactly that (image, anchor, row, column) above an ignore threshold of 0.99."""
    from vocli.yolo.loss import _ignore_mask

    head = HEADS[1]  # stride 16, anchors (10, 14), (23, 27), (37, 58)
    pred = torch.zeros(2, 3, 4, 8, 5 + NUM_CLASSES)  # input 64 high, 128 wide: 4 rows, 8 columns
    h, w = 64.0, 128.0
    targets = torch.tensor([
        # image, class, cx, cy, w, h (normalised): cell (column 2, row 3) centre (40, 56), anchor 2
        [1.0, 0.0, 40 / w, 56 / h, 37 / w, 58 / h],
        # image 0: cell (6, 1) centre (104, 24), anchor 1
        [0.0, 1.0, 104 / w, 24 / h, 23 / w, 27 / h],
        # image 1 again: cell (0, 0) centre (8, 8), anchor 0
        [1.0, 2.0, 8 / w, 8 / h, 10 / w, 14 / h],
    ])
    mask = _ignore_mask(pred, head, targets, (64, 128), 2, 0.99)
    assert mask.shape == (2, 3, 4, 8)
    assert sorted(map(tuple, mask.nonzero().tolist())) == [(0, 1, 1, 6), (1, 0, 0, 0), (1, 2, 3, 2)]
    # at 0.5: also neighbours whose boxes overlap enough, never the other image's cells
    loose = _ignore_mask(pred, head, targets, (64, 128), 2, 0.5)
    assert loose[0, 1, 1, 6] and not loose[0, :, 3, 2].any() and loose[1, 2, 3, 2]
    assert not _ignore_mask(pred, head, targets, (64, 128), 2, 1.0).any()  # >= 1: nothing is ignored
    assert not _ignore_mask(pred, head, targets[:0], (64, 128), 2, 0.5).any()


# --------------------------------------------------------------------------- added for mutation testing


def test_mse_box_loss_by_hand():
    # darknet's MSE on the offset, widened prediction (grid units, anchor (37, 58) / 16 = 2.3125 x 3.625):
    # sigmoid(tx) 0.2 vs tx* 4.8 - 4 = 0.8; sigmoid(ty) 0.4 vs 0.4;
    # tw = log(48 / 37) vs tw* = log(2.0 / 2.3125) = log(32 / 37): difference log(1.5); th exact
    # scale 2 - w h = 2 - 0.25 * 0.3 = 1.925
    expected = 1.925 * (0.6 ** 2 + math.log(1.5) ** 2)  # 1.925 * 0.524402 = 1.009474
    parts = yolo_loss(_offset_wide_outputs(), TARGET, HEADS, LossConfig(box="mse"))
    assert parts.box.item() == pytest.approx(expected, rel=1e-5)


def test_unknown_box_loss_message_lists_the_choices():
    with pytest.raises(ValueError, match=r"^unknown box loss 'l1'; use one of ciou, diou, giou, mse$"):
        yolo_loss(empty_outputs(), TARGET, HEADS, LossConfig(box="l1"))


def test_single_class_has_no_class_term():
    outs = [o[..., :6].clone() for o in perfect_outputs()]  # 5 + 1 outputs; the class logit is -20
    one_class = TARGET.clone()
    one_class[:, 1] = 0
    parts = yolo_loss(outs, one_class, HEADS)
    assert parts.cls.item() == 0.0  # with one class there is nothing to tell apart (not BCE(-20, 1) = 20)


def test_head_ignore_thresh_is_used_when_the_config_has_none():
    """A truth 37 x 58 px at (72, 40) px is assigned to head 1, anchor (37, 58), cell (4, 2), which
    decodes from zeros to exactly that box. Anchor (23, 27) of the same cell is widened to 32 x 58 px:
    IoU 32 / 37 = 0.865 with the truth (nested), and it says "object" (logit 5) where the target is 0."""
    outs = empty_outputs()
    outs[1][..., 4] = 0.0                  # head 1 objectness logit 0: BCE log 2 against 0 and against 1
    p = outs[1][0, 1, 2, 4]
    p[2], p[3], p[4] = math.log(32 / 23), math.log(58 / 27), 5.0
    truth = torch.tensor([[0.0, 0.0, 72 / 128, 40 / 128, 37 / 128, 58 / 128]])

    def obj(heads, cfg=LossConfig()):
        return yolo_loss(outs, truth, heads, cfg).obj.item()

    # counted: 192 cells of head 1 (balance 1.0 at stride 16); head 0's logits -20 add about 1e-9.
    # Not ignored: (191 log 2 + softplus(5)) / 192. Ignored: only cells at log 2 remain -> log 2
    # (neighbours at IoU 0.567 may be ignored at 0.5 too; they are log 2 as well).
    kept = (191 * math.log(2) + 5 + math.log1p(math.exp(-5))) / 192
    ignored = math.log(2)
    with_thresh = [[SimpleNamespace(**vars(h), ignore_thresh=t) for h in HEADS] for t in (0.9, 0.5)]
    assert obj(with_thresh[0]) == pytest.approx(kept, rel=1e-6)     # the head's 0.9 > 0.865
    assert obj(with_thresh[1]) == pytest.approx(ignored, rel=1e-6)  # the head's 0.5
    assert obj(HEADS) == pytest.approx(ignored, rel=1e-6)           # no head value: 0.7
    assert obj(with_thresh[1], LossConfig(ignore_thresh=0.95)) == pytest.approx(kept, rel=1e-6)  # config wins


# --------------------------------------------------------------------------- second round (surviving mutants)


def test_scaled_weights_for_one_head():
    from vocli.yolo.loss import scaled_weights

    # one head: every term x 3/1 (640 px and 80 classes leave obj and cls otherwise unchanged)
    assert scaled_weights(0.05, 1.0, 0.5, 640, 80, 1) == pytest.approx((0.15, 3.0, 1.5))


def test_centres_on_or_outside_the_border_are_clamped_into_the_grid():
    # 10 x 14 px truths (anchor (10, 14) itself: shape IoU 1) -> head 1 (8x8), anchor 0, all in image 0.
    w, h = 10 / 128, 14 / 128
    t = torch.tensor([
        [0.0, 0.0, 1.0, 1.0, w, h],      # centre on the far border: 8.0 -> last cell 7
        [0.0, 0.0, -0.2, -0.2, w, h],    # outside: -1.6 -> -1 -> first cell 0
        [0.0, 0.0, 0.99, 0.05, w, h],    # 7.92 -> 7, 0.4 -> 0
        [0.0, 0.0, 0.45, 0.0, w, h],     # row 0, column 3 (image 0, anchor 0: the lowest flat index)
        [0.0, 0.0, 0.0, 0.7, w, h],      # column 0, row 5
    ])
    a = assign_targets(t, HEADS, [(4, 4), (8, 8)], (SIZE, SIZE))[1]
    assert a.anchor.tolist() == [0] * 5 and a.image.tolist() == [0] * 5
    assert a.gi.tolist() == [7, 0, 7, 3, 0]
    assert a.gj.tolist() == [7, 0, 0, 0, 5]


def test_assignment_uses_both_width_and_height():
    # 40 x 10 px: shape IoU with (23, 27): 23*10 / (400 + 621 - 230) = 230 / 791 = 0.291 <- best;
    # (10, 14): 100 / 440 = 0.227; (37, 58): 370 / 2176 = 0.170; (81, 82): 400 / 6642 = 0.060.
    # (A 10 x 10 px box would pick (10, 14): 100 / 140 = 0.714.)
    t = torch.tensor([[0.0, 1.0, 0.5, 0.5, 40 / 128, 10 / 128]])
    asg = assign_targets(t, HEADS, [(4, 4), (8, 8)], (SIZE, SIZE))
    assert len(asg[0].image) == 0 and asg[1].anchor.tolist() == [1]


def test_non_square_input_with_two_classes():
    """Input 64 high x 128 wide: head 0 is 2 x 4, head 1 is 4 x 8; two classes (5 + 2 outputs).

    The truth (class 1, centre (0.6, 0.3), size 0.25 x 0.3) is 32 x 19.2 px. Shape IoU:
    (23, 27): 23*19.2 / (614.4 + 621 - 441.6) = 441.6 / 793.8 = 0.556 <- best;
    (37, 58): 614.4 / 2146 = 0.286; (10, 14): 140 / 614.4 = 0.228 (a 128-high reading, 32 x 38.4 px,
    would pick (37, 58)). Head 1, anchor 1, cell (floor(0.6*8), floor(0.3*4)) = (4, 1);
    box in cells (4.8, 1.2, 2.0, 1.2); anchor in cells 23/16 x 27/16.
    """
    outs = []
    for hd in HEADS:
        o = torch.zeros(1, 3, 64 // hd.stride, 128 // hd.stride, 5 + 2)
        o[..., 4:] = -20.0
        outs.append(o)
    p = outs[1][0, 1, 1, 4]
    p[0], p[1] = logit(0.8), logit(0.2)
    p[2], p[3] = math.log(2.0 / (23 / 16)), math.log(1.2 / (27 / 16))
    p[4] = 20.0                   # objectness right; both class logits -20: class 1 wrong
    t = torch.tensor([[0.0, 1.0, 0.6, 0.3, 0.25, 0.3]])
    parts = yolo_loss(outs, t, HEADS)
    assert parts.box.item() < 1e-5
    assert parts.obj.item() < 1e-6
    assert parts.cls.item() == pytest.approx(20.0 / 2, rel=1e-5)  # BCE(-20, 1) = 20 over 2 outputs


def _one_cell_head(stride: int):
    return SimpleNamespace(anchors=torch.tensor([[float(stride), float(stride)]]), stride=stride)


@pytest.mark.parametrize("stride, balance_on, factor", [
    (64, True, 0.1), (64, False, 1.0), (8, True, 4.0), (32, True, 0.4), (4, True, 1.0), (128, True, 1.0)])
def test_objectness_balance_per_stride_on_a_single_one_cell_head(stride, balance_on, factor):
    # One head, one anchor, a 1 x 1 grid, no truths, objectness logit 0: BCE log 2 over 1 counted
    # cell, times the stride's balance (4.0, 1.0, 0.4, 0.1 for 8, 16, 32, 64; 1 for others or off).
    out = torch.zeros(1, 1, 1, 1, 5 + 2)
    parts = yolo_loss([out], torch.zeros((0, 6)), [_one_cell_head(stride)], LossConfig(obj_balance=balance_on))
    assert parts.obj.item() == pytest.approx(factor * math.log(2), rel=1e-6)
    assert parts.total.item() == pytest.approx(factor * math.log(2), rel=1e-6)  # batch 1, obj weight 1


def test_mse_box_loss_of_two_truths_is_their_mean():
    # The offset, widened prediction of test_mse_box_loss_by_hand (1.925 * 0.524402) and a second truth
    # of the same shape at (0.2, 0.7) -> cell (1, 5), tx* = ty* = 0.6, predicted exactly (error 0).
    outs = _offset_wide_outputs()
    q = outs[1][0, 2, 5, 1]
    q[0], q[1] = logit(0.6), logit(0.6)
    q[2], q[3] = math.log(32.0 / 37.0), math.log(38.4 / 58.0)
    q[4] = 20.0
    t = torch.cat([TARGET, torch.tensor([[0.0, 2.0, 0.2, 0.7, 0.25, 0.3]])])
    parts = yolo_loss(outs, t, HEADS, LossConfig(box="mse"))
    expected = (1.925 * (0.6 ** 2 + math.log(1.5) ** 2) + 1.925 * 0.0) / 2
    assert parts.box.item() == pytest.approx(expected, rel=1e-5)


def test_mse_box_loss_of_a_zero_width_truth_is_finite():
    # Width 0: shape IoU 0 with every anchor -> the first, (81, 82) of head 0 (4x4, stride 32),
    # anchor in cells 2.53125 x 2.5625; centre (0.5, 0.5) -> cell (2, 2), tx* = ty* = 0.
    # Zero outputs: sigmoid 0.5 against 0 twice; tw* = log(0 + 1e-9), th* = log(2 / 2.5625).
    # scale 2 - 0 * 0.5 = 2.
    t = torch.tensor([[0.0, 0.0, 0.5, 0.5, 0.0, 0.5]])
    parts = yolo_loss(empty_outputs(), t, HEADS, LossConfig(box="mse"))
    expected = 2 * (2 * 0.25 + math.log(1e-9) ** 2 + math.log(2 / 2.5625) ** 2)  # 2 * 430.015 = 860.03
    assert parts.box.item() == pytest.approx(expected, rel=1e-5)


def test_width_logit_is_capped_at_20_in_the_box_term():
    # exp is clamped at 20 before decoding: above it, the width logit gets no gradient at all.
    grads = []
    for tw in (19.5, 20.5):
        outs = perfect_outputs()
        outs[1][0, 2, 2, 4, 2] = tw
        for o in outs:
            o.requires_grad_(True)
        yolo_loss(outs, TARGET, HEADS).total.backward()
        grads.append(outs[1].grad[0, 2, 2, 4, 2].item())
    assert grads[0] != 0.0 and grads[1] == 0.0


def test_ignore_mask_decodes_each_coordinate_from_its_own_output():
    """One prediction (head 1, anchor 2 (37, 58), cell column 2, row 1) with ty = logit(0.25) and
    tw = log(0.5), th = 0 decodes to centre (2.5 * 16, 1.25 * 16) = (40, 20), size 18.5 x 58 px;
    a truth exactly there has IoU 1 with it. (Reading cy from tw would give (1 + 1/3) * 16 = 21.3;
    the width from th would give 37.)"""
    from vocli.yolo.loss import _ignore_mask

    head = HEADS[1]
    pred = torch.zeros(1, 3, 4, 8, 5 + NUM_CLASSES)
    pred[0, 2, 1, 2, 1] = logit(0.25)
    pred[0, 2, 1, 2, 2] = math.log(0.5)
    # anchor 0 (10, 14) at column 7, row 3 (centre (120, 56)): width and height logits 20.5, capped at 20
    pred[0, 0, 3, 7, 2:4] = 20.5
    h, w = 64.0, 128.0
    truth = torch.tensor([[0.0, 0.0, 40 / w, 20 / h, 18.5 / w, 58 / h]])
    mask = _ignore_mask(pred, head, truth, (64, 128), 1, 0.99)
    assert mask.nonzero().tolist() == [[0, 2, 1, 2]]
    # Threshold 0: only an overlap above 0 is ignored; anchor 0 at column 0, row 3 (centre (8, 56),
    # 10 x 14 px, x 3..13) does not reach the truth (x 30.75..49.25): IoU exactly 0, still counted.
    zero = _ignore_mask(pred, head, truth, (64, 128), 1, 0.0)
    assert zero[0, 2, 1, 2] and not zero[0, 0, 3, 0]
    # The capped box (10 e^20 x 14 e^20 px) contains the truth: IoU = 18.5 * 58 / (140 e^40)
    # = 7.664 e^-40 = 3.26e-17 (uncapped at 20.5: 7.664 e^-41 = 1.20e-17).
    iou_capped = 18.5 * 58 / (140 * math.exp(40))
    assert iou_capped == pytest.approx(3.256e-17, rel=1e-3)
    assert _ignore_mask(pred, head, truth, (64, 128), 1, 2e-17)[0, 0, 3, 7]
    assert not _ignore_mask(pred, head, truth, (64, 128), 1, 4e-17)[0, 0, 3, 7]


def test_float64_targets_and_anchors_give_the_same_float32_loss():
    # Targets straight from numpy (float64) and anchors built in float64 are converted to float32:
    # the parts keep the outputs' dtype and the values of test_box_loss_kinds_on_an_imperfect_prediction_by_hand.
    heads64 = [SimpleNamespace(anchors=h.anchors.double(), stride=h.stride) for h in HEADS]
    for box, expected in (("ciou", _CIOU_LOSS), ("mse", 1.925 * (0.6 ** 2 + math.log(1.5) ** 2))):
        parts = yolo_loss(_offset_wide_outputs(), TARGET.double(), heads64, LossConfig(box=box))
        assert parts.box.dtype == parts.obj.dtype == parts.total.dtype == torch.float32
        assert parts.box.item() == pytest.approx(expected, rel=1e-5)

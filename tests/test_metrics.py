"""VOC AP worked out on paper, and the vectorised matcher against a plain devkit-style loop."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vocli.boxes import box_iou
from vocli.metrics import (Detections, GroundTruth, default_metric, evaluate_detections,
                           voc_ap)
from vocli.errors import VocliError

CLASSES = ("dog", "cat", "bird", "cow")
DOG, CAT, BIRD, COW = range(4)


def hand_case():
    # img1: dog A (1,1,10,10); dog B (21,21,30,30) difficult.  img2: dog C (1,1,10,10), cat (30,30,40,40).
    # img3: cow (5,5,20,20) which nobody detects.  No bird anywhere.
    gt = GroundTruth.from_images([
        ("img1", [[1, 1, 10, 10], [21, 21, 30, 30]], [DOG, DOG], [False, True]),
        ("img2", [[1, 1, 10, 10], [30, 30, 40, 40]], [DOG, CAT], [False, False]),
        ("img3", [[5, 5, 20, 20]], [COW], [False]),
    ])
    rows = [  # image, score, box, class
        ("img1", 0.9, [1, 1, 10, 10], DOG),     # TP on A
        ("img1", 0.8, [1, 1, 10, 10], DOG),     # duplicate of A -> FP
        ("img1", 0.7, [21, 21, 30, 30], DOG),   # on the difficult B -> ignored
        ("img2", 0.6, [50, 50, 60, 60], DOG),   # nothing there -> FP
        ("img2", 0.6, [1, 1, 10, 10], DOG),     # same score, later in input -> after the FP; TP on C
        ("img2", 0.5, [30, 30, 40, 40], CAT),   # TP
        ("img3", 0.4, [5, 5, 20, 20], BIRD),    # class without ground truth
    ]
    det = Detections(np.array([r[0] for r in rows], object), np.array([r[2] for r in rows], float),
                     np.array([r[1] for r in rows]), np.array([r[3] for r in rows]))
    return det, gt


def test_hand_worked_dog_curve_and_ap():
    det, gt = hand_case()
    # dog, sorted stably: TP, FP, ignored, FP, TP; npos = 2 (B is difficult)
    # tp 1,1,1,1,2  fp 0,1,1,2,2 -> recall .5,.5,.5,.5,1  precision 1,.5,.5,1/3,.5
    r12 = evaluate_detections(det, gt, CLASSES, metric="voc12")
    dog = r12.per_class[DOG]
    assert dog.num_gt == 2 and dog.num_difficult == 1 and dog.num_det == 5
    np.testing.assert_allclose(dog.recall, [.5, .5, .5, .5, 1])
    np.testing.assert_allclose(dog.precision, [1, .5, .5, 1 / 3, .5])
    # area: recall 0->.5 at envelope 1, .5->1 at envelope .5 -> .75
    # (an unstable sort putting the tied TP first would give .5 + .5 * 2/3 = .8333)
    assert dog.ap == pytest.approx(0.75)
    # 11-point: t = 0..0.5 (6 points) max precision 1; t = .6..1 (5 points) only recall 1 -> .5
    r07 = evaluate_detections(det, gt, CLASSES, metric="voc07")
    assert r07.per_class[DOG].ap == pytest.approx((6 * 1 + 5 * 0.5) / 11)


def test_missing_ground_truth_and_missing_detections():
    det, gt = hand_case()
    r = evaluate_detections(det, gt, CLASSES, metric="voc12")
    bird, cow, cat = r.per_class[BIRD], r.per_class[COW], r.per_class[CAT]
    assert math.isnan(bird.ap) and bird.num_gt == 0 and bird.num_det == 1
    assert r.excluded == ["bird"]
    assert cow.ap == 0.0 and cow.num_det == 0 and cow.num_gt == 1
    assert cat.ap == pytest.approx(1.0)
    assert r.map == pytest.approx((0.75 + 1.0 + 0.0) / 3)
    assert r.metric == "voc12" and r.num_images == 3 and r.num_detections == 7
    # nothing detected at all: every AP 0, no crash
    empty = evaluate_detections(Detections.empty(), gt, CLASSES, metric="voc07")
    assert empty.map == 0.0 and [c.num_det for c in empty.per_class] == [0, 0, 0, 0]


def test_iou_uses_inclusive_plus_one_widths():
    # (1,1,10,10) vs (6,1,15,10): 5 x 10 overlap, 10 x 10 each -> 50 / 150
    assert box_iou(np.array([[1., 1, 10, 10]]), np.array([[6., 1, 15, 10]]), plus_one=True)[0, 0] == pytest.approx(1 / 3)
    # gt (1,1,2,2) vs det (1,1,2,3): +1 rule 4 / 6 = .667 -> TP; continuous 1 / 2 = .5 would not be > .5
    gt = GroundTruth.from_images([("a", [[1, 1, 2, 2]], [0], [False])])
    det = Detections(np.array(["a"], object), np.array([[1., 1, 2, 3]]), np.array([1.0]), np.array([0]))
    assert evaluate_detections(det, gt, ["x"], metric="voc12").map == pytest.approx(1.0)
    # exactly 0.5 is not enough: (1,1,10,10) vs (1,1,10,5) -> 50 / 100
    det.boxes[:] = [[1, 1, 10, 5]]
    assert evaluate_detections(det, gt.__class__.from_images([("a", [[1, 1, 10, 10]], [0], [False])]),
                               ["x"], metric="voc12").map == 0.0


def test_voc_ap_by_hand():
    rec, prec = np.array([0.5, 1.0]), np.array([1.0, 0.5])
    assert voc_ap(rec, prec, use_07_metric=False) == pytest.approx(0.75)
    assert voc_ap(rec, prec, use_07_metric=True) == pytest.approx(8.5 / 11)
    # envelope lifts a dip: precision .5 at recall .25 is raised to the later 1.0
    assert voc_ap(np.array([.25, .5]), np.array([.5, 1.0]), False) == pytest.approx(0.5)
    for use07 in (True, False):
        assert voc_ap(np.empty(0), np.empty(0), use07) == 0.0


def test_coco_view_reports_both():
    det, gt = hand_case()
    r = evaluate_detections(det, gt, CLASSES, metric="coco")
    # pycocotools order and outcomes for dog: TP, FP, on crowd (difficult) B -> ignored, FP, TP;
    # envelope 1 up to recall .5, then .5; 101 points: r = 0..0.50 (51 points) -> 1, 50 points -> .5
    assert r.per_class[DOG].ap == pytest.approx(76 / 101)
    # all TPs are exact boxes (IoU 1), so every threshold in .5:.95 gives the same curve
    assert r.per_class[DOG].ap_50_95 == pytest.approx(76 / 101)
    assert r.map_50_95 == pytest.approx((76 / 101 + 1 + 0) / 3)


def test_default_metric_and_errors():
    assert default_metric(["2007/test"]) == "voc07"
    assert default_metric(["2012/val"]) == "voc12"
    assert default_metric(["2007/test", "2012/val"]) == "voc12"
    det, gt = hand_case()
    with pytest.raises(VocliError, match="unknown metric"):
        evaluate_detections(det, gt, CLASSES, metric="voc10")
    det.image_ids[0] = "nope"
    with pytest.raises(VocliError, match="nope"):
        evaluate_detections(det, gt, CLASSES)


# --------------------------------------------------------------------------- loop reference


def loop_eval(det_ids, det_boxes, det_scores, det_labels, gts, classes, thr, use07):
    """Devkit-style evaluation, one detection at a time (py-faster-rcnn structure, stable sort)."""
    aps, curves = [], []
    for c in range(len(classes)):
        recs = {}
        npos = 0
        for image_id, boxes, labels, difficult in gts:
            sel = [i for i in range(len(labels)) if labels[i] == c]
            recs[image_id] = ([boxes[i] for i in sel], [difficult[i] for i in sel], [False] * len(sel))
            npos += sum(1 for i in sel if not difficult[i])
        idx = [i for i in range(len(det_labels)) if det_labels[i] == c]
        idx.sort(key=lambda i: -det_scores[i])  # Python's sort is stable
        tp, fp = [], []
        for i in idx:
            bbs, diffs, seen = recs[det_ids[i]]
            bb = det_boxes[i]
            ovmax, jmax = -np.inf, -1
            for j, g in enumerate(bbs):
                iw = min(bb[2], g[2]) - max(bb[0], g[0]) + 1
                ih = min(bb[3], g[3]) - max(bb[1], g[1]) + 1
                inter = max(iw, 0) * max(ih, 0)
                uni = (bb[2] - bb[0] + 1) * (bb[3] - bb[1] + 1) + (g[2] - g[0] + 1) * (g[3] - g[1] + 1) - inter
                if inter / uni > ovmax:
                    ovmax, jmax = inter / uni, j
            t = f = 0
            if ovmax > thr:
                if not diffs[jmax]:
                    if not seen[jmax]:
                        t, seen[jmax] = 1, True
                    else:
                        f = 1
            else:
                f = 1
            tp.append(t)
            fp.append(f)
        tp, fp = np.cumsum(tp), np.cumsum(fp)
        rec = tp / npos if npos else None
        prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
        curves.append((rec, prec))
        if not npos:
            aps.append(float("nan"))
        elif use07:
            aps.append(sum(max([p for r, p in zip(rec, prec) if r >= t], default=0.0)
                           for t in np.arange(0, 1.1, 0.1)) / 11)
        else:
            points = [(0.0, 0.0)] + list(zip(rec, prec)) + [(1.0, 0.0)]
            area = 0.0
            for k in range(1, len(points)):
                envelope = max(p for _, p in points[k:])
                area += (points[k][0] - points[k - 1][0]) * envelope
            aps.append(area)
    return aps, curves


def random_case(seed, n_images=40, n_classes=3):
    rng = np.random.default_rng(seed)
    gts = []
    for i in range(n_images):
        n = int(rng.integers(0, 6))
        xy = rng.integers(1, 40, (n, 2))
        wh = rng.integers(3, 25, (n, 2))
        gts.append((f"im{i}", np.concatenate([xy, xy + wh], 1).astype(float).tolist(),
                    rng.integers(0, n_classes, n).tolist(), (rng.random(n) < 0.2).tolist()))
    # half the detections are jittered copies of ground truths (hits, duplicates, difficult ones), half random
    flat = [(f"im{i}", box, label) for i, (_, boxes, labels, _) in enumerate(gts) for box, label in zip(boxes, labels)]
    pick = rng.integers(0, len(flat), 200)
    near = np.array([flat[j][1] for j in pick]) + rng.integers(-3, 4, (200, 4))
    k = 200
    xy = rng.integers(1, 40, (k, 2))
    wh = rng.integers(3, 25, (k, 2))
    det_boxes = np.concatenate([near, np.concatenate([xy, xy + wh], 1)]).astype(float)
    det_scores = np.round(rng.random(2 * k), 1)  # many ties
    det_ids = np.array([flat[j][0] for j in pick] + [f"im{i}" for i in rng.integers(0, n_images, k)], object)
    det_labels = np.concatenate([[flat[j][2] for j in pick], rng.integers(0, n_classes, k)])
    order = rng.permutation(2 * k)
    return gts, det_ids[order], det_boxes[order], det_scores[order], det_labels[order]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("metric", ["voc07", "voc12"])
def test_vectorised_matches_loop_on_random_data(seed, metric):
    gts, det_ids, det_boxes, det_scores, det_labels = random_case(seed)
    classes = ("a", "b", "c")
    gt = GroundTruth.from_images(gts)
    result = evaluate_detections(Detections(det_ids, det_boxes, det_scores, det_labels), gt, classes,
                                 metric=metric)
    aps, curves = loop_eval(det_ids, det_boxes.tolist(), det_scores.tolist(), det_labels.tolist(),
                            gts, classes, 0.5, metric == "voc07")
    for c, (ap, (rec, prec)) in enumerate(zip(aps, curves)):
        got = result.per_class[c]
        np.testing.assert_allclose(got.precision, prec, rtol=0, atol=1e-12)
        if rec is not None:
            np.testing.assert_allclose(got.recall, rec, rtol=0, atol=1e-12)
        assert (math.isnan(ap) and math.isnan(got.ap)) or got.ap == pytest.approx(ap, abs=1e-12)


@pytest.mark.parametrize("block", [1, 3, 7, 4_000_000])
def test_best_ground_truth_pairs_match_a_per_detection_argmax(monkeypatch, block):
    """Blocks of any size, images with many ground truths, exact ties (first wins), NaN IoU (counts as top)."""
    import vocli.metrics as metrics

    monkeypatch.setattr(metrics, "_IOU_BLOCK", block)
    rng = np.random.default_rng(5)
    gt_image = np.concatenate([rng.integers(0, 6, 30), [6, 6, 6]])
    xy = rng.integers(1, 30, (33, 2)).astype(float)
    gt_boxes = np.concatenate([xy, xy + rng.integers(2, 15, (33, 2))], 1)
    gt_boxes[31] = gt_boxes[30]                      # identical twins in image 6: the first must win
    gt_boxes[32] = [5, 5, 3, 3]                      # zero area (+1 widths clip to 0)
    det_image = rng.integers(0, 9, 80)                # images 7, 8 have no ground truth
    det_image[:3] = 6
    dxy = rng.integers(1, 30, (80, 2)).astype(float)
    det_boxes = np.concatenate([dxy, dxy + rng.integers(0, 15, (80, 2))], 1)
    det_boxes[0] = gt_boxes[30]
    det_boxes[1] = [5, 5, 3, 3]                       # 0 / 0 against the zero-area ground truth -> NaN
    with np.errstate(invalid="ignore", divide="ignore"):
        best, overlap = metrics.best_ground_truth(det_image, det_boxes, gt_image, gt_boxes, num_images=9)
        for d in range(80):
            mine = np.flatnonzero(gt_image == det_image[d])
            if len(mine) == 0:
                assert best[d] == -1 and overlap[d] == -np.inf
                continue
            g = gt_boxes[mine]
            b = det_boxes[d]
            iw = np.maximum(np.minimum(b[2], g[:, 2]) - np.maximum(b[0], g[:, 0]) + 1, 0)
            ih = np.maximum(np.minimum(b[3], g[:, 3]) - np.maximum(b[1], g[:, 1]) + 1, 0)
            area_b = max(b[2] - b[0] + 1, 0) * max(b[3] - b[1] + 1, 0)
            area_g = np.maximum(g[:, 2] - g[:, 0] + 1, 0) * np.maximum(g[:, 3] - g[:, 1] + 1, 0)
            iou = iw * ih / (area_b + area_g - iw * ih)
            j = int(np.argmax(iou))
            assert best[d] == mine[j], d
            assert overlap[d] == iou[j] or (np.isnan(overlap[d]) and np.isnan(iou[j])), d
    assert best[0] == 30 and overlap[0] == 1.0
    assert best[1] == 32 and np.isnan(overlap[1])


def test_ap_is_never_above_one():
    from vocli.metrics import voc_ap

    # Eleven precisions of 1: adding 1/11 eleven times (voc_eval.py) gives 1.0000000000000002;
    # the sum divided once is exactly 1.
    assert sum([1 / 11.0] * 11) > 1.0  # the float excess is real
    ones = np.ones(1)
    assert voc_ap(ones, ones, use_07_metric=True) == 1.0
    # Recall 0.5 at precision 1, then 1.0 at 2/3: t = 0 .. 0.5 (6 points) take 1, t = 0.6 .. 1 (5) take 2/3:
    # (6 + 5 * 2/3) / 11 = 28/33.
    assert voc_ap(np.array([0.5, 1.0]), np.array([1.0, 2 / 3]), use_07_metric=True) == pytest.approx(28 / 33, abs=1e-15)


def test_forty_tied_detections_keep_input_order():
    """Ties are ranked in input order: 20 misses given before 20 hits at the same score.

    One more hit, scoring higher and given last, makes the scores unsorted: numpy's quicksort
    then moves tied entries around (it leaves an all-equal run alone, and runs of up to 16
    go through a stable insertion sort, so fewer or all-equal ties cannot tell the sorts apart).
    """
    gt = GroundTruth.from_images([("img", [[20 * i + 1, 1, 20 * i + 10, 10] for i in range(21)], [DOG] * 21,
                                   [False] * 21)])
    misses = [[20 * i + 1, 101, 20 * i + 10, 110] for i in range(20)]
    hits = [[20 * i + 1, 1, 20 * i + 10, 10] for i in range(21)]
    det = Detections(np.array(["img"] * 41, object), np.array(misses + hits, float),
                     np.array([0.5] * 40 + [0.9]), np.full(41, DOG))
    dog = evaluate_detections(det, gt, CLASSES, metric="voc12").per_class[DOG]
    # rank 1: the 0.9 hit; ranks 2..21: the misses; rank 21 + k: the k-th tied hit
    precision = [1.0] + [1 / r for r in range(2, 22)] + [(1 + k) / (21 + k) for k in range(1, 21)]
    recall = [1 / 21] * 21 + [(1 + k) / 21 for k in range(1, 21)]
    np.testing.assert_allclose(dog.precision, precision)
    np.testing.assert_allclose(dog.recall, recall)
    # envelope: 1 up to recall 1/21, then 21/41 (the last rank's precision, the highest after rank 1)
    assert dog.ap == pytest.approx(1 / 21 + 20 / 21 * 21 / 41)
    # 11-point: t = 0 -> 1; t = 0.1 .. 1 -> 21/41
    assert evaluate_detections(det, gt, CLASSES, metric="voc07").per_class[DOG].ap == pytest.approx(
        (1 + 10 * 21 / 41) / 11)


# --------------------------------------------------------------------------- containers, edges, COCO view
# (added for mutation testing: each test pins a behaviour a surviving mutant changed)


def test_ground_truth_and_detections_of_nothing_have_typed_empty_arrays():
    gt = GroundTruth.from_images([])
    assert gt.image_ids == [] and gt.boxes.shape == (0, 4) and gt.boxes.dtype == np.float64
    assert gt.labels.shape == (0,) and gt.labels.dtype == np.int64
    assert gt.difficult.shape == (0,) and gt.difficult.dtype == bool
    assert gt.image_index.shape == (0,) and gt.image_index.dtype == np.int64
    # an image without objects still counts as an image, with no rows
    gt = GroundTruth.from_images([("a", [], [], []), ("b", [[1, 2, 3, 4]], [2], [1])])
    assert gt.image_ids == ["a", "b"] and gt.image_index.tolist() == [1]
    assert gt.boxes.tolist() == [[1.0, 2.0, 3.0, 4.0]] and gt.labels.tolist() == [2]
    assert gt.difficult.dtype == bool and gt.difficult.tolist() == [True]
    # per-image labels and flags of any shape are flattened to one row per object
    gt = GroundTruth.from_images([("c", [[1, 1, 2, 2], [3, 3, 4, 4]], [[1], [0]], [[0], [1]])])
    assert gt.labels.tolist() == [1, 0] and gt.difficult.tolist() == [False, True]
    empty = Detections.empty()
    assert len(empty) == 0 and empty.image_ids.dtype == object and empty.boxes.shape == (0, 4)
    assert empty.scores.shape == (0,) and empty.labels.shape == (0,) and empty.labels.dtype == np.int64
    assert empty.coco_boxes is None


def test_detections_concat_keeps_order_types_and_coco_boxes_only_when_all_have_them():
    a = Detections(np.array(["x"], object), np.array([[1, 2, 3, 4]]), np.array([0.5]), np.array([1]),
                   coco_boxes=np.array([[0, 1, 3, 3]]))
    b = Detections(["y", "z"], [1, 1, 2, 2, 5, 5, 9, 9], [0.25, 1], [0, 2], coco_boxes=[[0, 0, 2, 2], [4, 4, 5, 5]])
    both = Detections.concat([a, b])
    assert both.image_ids.dtype == object and both.image_ids.tolist() == ["x", "y", "z"]
    assert both.boxes.dtype == np.float64 and both.boxes.tolist() == [[1, 2, 3, 4], [1, 1, 2, 2], [5, 5, 9, 9]]
    assert both.scores.dtype == np.float64 and both.scores.tolist() == [0.5, 0.25, 1.0]
    assert both.labels.dtype == np.int64 and both.labels.tolist() == [1, 0, 2]
    assert both.coco_boxes.dtype == np.float64
    assert both.coco_boxes.tolist() == [[0, 1, 3, 3], [0, 0, 2, 2], [4, 4, 5, 5]]
    assert len(both) == 3
    b.coco_boxes = None
    assert Detections.concat([a, b]).coco_boxes is None
    assert Detections.concat([b, a]).coco_boxes is None
    # plain lists everywhere: ids stay Python strings (object: a fixed-width array would cut longer
    # names assigned later), scores float, labels int, column shapes flattened
    c = Detections(["a", "b"], [[1, 1, 2, 2], [3, 3, 4, 4]], [[1], [0]], [[0.0], [2.0]])
    lists = Detections.concat([c, c])
    assert lists.image_ids.dtype == object and lists.image_ids.tolist() == ["a", "b", "a", "b"]
    assert lists.scores.dtype == np.float64 and lists.scores.tolist() == [1.0, 0.0, 1.0, 0.0]
    assert lists.labels.dtype == np.int64 and lists.labels.tolist() == [0, 2, 0, 2]
    none = Detections.concat([])
    assert len(none) == 0 and none.boxes.shape == (0, 4) and none.image_ids.dtype == object


def test_summary_is_the_result_without_curves():
    from converters._common import InvalidFile
    from vocli.metrics import ClassResult, EvalResult

    per_class = [ClassResult("dog", 0.75, 2, 5, 1, recall=np.array([0.25, 0.5, 0.75]), precision=np.array([1.0, 0.5, 0.6]),
                             ap_50_95=0.25),
                 ClassResult("cat", 0.0, 1, 0)]
    result = EvalResult(metric="voc12", iou_threshold=0.4, map=0.375, per_class=per_class, num_images=3,
                        num_detections=5, excluded=["bird"], map_50_95=0.125, source="dets.txt",
                        invalid=[InvalidFile("a.xml", "no size")], coco_stats={"AP": 0.125})
    assert result.summary() == {
        "metric": "voc12", "iou_threshold": 0.4, "map": 0.375, "map_50_95": 0.125, "num_images": 3,
        "num_detections": 5, "excluded": ["bird"], "sort": "stable (ties keep input order)",
        "source": "dets.txt", "coco_stats": {"AP": 0.125},
        "invalid": [{"path": "a.xml", "reason": "no size"}],
        "per_class": [
            {"name": "dog", "ap": 0.75, "ap_50_95": 0.25, "num_gt": 2, "num_difficult": 1, "num_det": 5,
             "recall": 0.75},  # the last point of the curve
            {"name": "cat", "ap": 0.0, "ap_50_95": None, "num_gt": 1, "num_difficult": 0, "num_det": 0,
             "recall": 0.0},  # no curve
        ],
    }
    assert isinstance(result.summary()["per_class"][0]["recall"], float)


def test_threshold_bounds_hint_progress_and_no_ground_truth_at_all():
    det, gt = hand_case()
    with pytest.raises(VocliError) as err:
        evaluate_detections(det, gt, CLASSES, metric="voc10")
    assert err.value.hint == "use one of voc07, voc12, coco"
    for bad in (1.0, 1.5, -0.1):
        with pytest.raises(VocliError, match=r"IoU threshold .* must be in \[0, 1\)"):
            evaluate_detections(det, gt, CLASSES, iou_threshold=bad)
    # 0 is allowed: any overlap counts. Dog at IoU > 0: the 0.7 detection on the difficult B is
    # still ignored, the rest as at 0.5 -> the same curve, AP .75 (voc12)
    zero = evaluate_detections(det, gt, CLASSES, iou_threshold=0.0, metric="voc12")
    assert zero.iou_threshold == 0.0 and zero.per_class[DOG].ap == pytest.approx(0.75)
    calls = []
    r = evaluate_detections(det, gt, CLASSES, iou_threshold=0.25, metric="voc07", progress=calls.append)
    assert calls == [1, 1, 1, 1] and r.iou_threshold == 0.25 and r.metric == "voc07"
    # bird has no ground truth: NaN AP under the 11-point metric too (not 0), and no recall
    bird = r.per_class[BIRD]
    assert math.isnan(bird.ap) and bird.recall.dtype == np.float64 and np.isnan(bird.recall).all()
    assert r.excluded == ["bird"]
    # no ground truth of any class: every class excluded, mAP NaN
    nothing = evaluate_detections(det, GroundTruth.from_images([(i, [], [], []) for i in ("img1", "img2", "img3")]),
                                  CLASSES, metric="voc12")
    assert math.isnan(nothing.map) and nothing.excluded == list(CLASSES)


def test_labels_outside_the_class_list_are_dropped_even_far_outside_int16():
    # 65538 and -65534 wrap to 2 in int16: clipping first keeps them out of class 2
    gt = GroundTruth.from_images([("a", [[1, 1, 10, 10]] * 3, [2, 65538, -65534], [False] * 3)])
    det = Detections(np.array(["a"] * 3, object), np.array([[1., 1, 10, 10]] * 3), np.array([0.9, 0.8, 0.7]),
                     np.array([65538, -65534, 3]))
    r = evaluate_detections(det, gt, ["a", "b", "c"], metric="voc12")
    assert [c.num_gt for c in r.per_class] == [0, 0, 1]
    assert [c.num_det for c in r.per_class] == [0, 0, 0]
    assert r.per_class[2].ap == 0.0


def test_unknown_image_message_lists_three_then_dots():
    det, gt = hand_case()
    det.image_ids[:4] = ["w", "z", "y", "x"]
    with pytest.raises(VocliError) as err:
        evaluate_detections(det, gt, CLASSES)
    assert err.value.message == "4 detected image id(s) are not in the evaluated set: w, x, y ..."
    assert err.value.hint == "evaluate the sets the detections were made on (--sets), or drop those lines"
    det.image_ids[0] = "img1"
    with pytest.raises(VocliError) as err:
        evaluate_detections(det, gt, CLASSES)
    assert err.value.message == "3 detected image id(s) are not in the evaluated set: x, y, z"


def test_iou_blocks_hold_as_many_whole_rows_as_fit(monkeypatch):
    """Memory bound: each IoU block has at most _IOU_BLOCK pairs (or one row), and is filled with whole rows."""
    import vocli.metrics as metrics

    sizes, original = [], metrics.box_iou_paired

    def recording(a, b, plus_one):
        sizes.append(len(a))
        return original(a, b, plus_one=plus_one)

    box = [[1.0, 1, 10, 10]]
    det_boxes = np.array(box * 6)
    for block, gt_per_image, expected in ((3, 1, [3, 3]), (1, 1, [1] * 6), (4, 2, [4, 4, 4]), (3, 2, [2] * 6)):
        monkeypatch.setattr(metrics, "_IOU_BLOCK", block)
        monkeypatch.setattr(metrics, "box_iou_paired", recording)
        sizes.clear()
        gt_image = np.repeat(np.arange(6), gt_per_image)
        best, overlap = metrics.best_ground_truth(np.arange(6), det_boxes, gt_image,
                                                  np.array(box * len(gt_image)), num_images=6)
        monkeypatch.undo()
        assert sizes == expected, (block, gt_per_image)
        assert best.tolist() == [gt_per_image * i for i in range(6)] and overlap.tolist() == [1.0] * 6


def coco_case():
    """Two images named by path (COCO ids 2008000002 and 2008000001: the second comes first in pycocotools).

    Dog ground truth 60 x 20 (area 1200: "medium"): A in the first image, D in the second, B difficult
    (crowd). Cat: one, never detected. Cow: no ground truth, one detection.
    """
    gt = GroundTruth.from_images([
        ("/data/2008_000002.jpg", [[1, 1, 60, 20], [101, 101, 160, 120], [301, 301, 360, 320]],
         [DOG, DOG, CAT], [False, True, False]),
        ("/data/2008_000001.jpg", [[1, 1, 60, 20]], [DOG], [False]),
    ])
    ids = ["/data/2008_000002.jpg", "/data/2008_000001.jpg", "/data/2008_000002.jpg", "/data/2008_000002.jpg"]
    boxes = [[201, 201, 260, 220],  # dog, 0.8, first image: nothing there -> FP
             [1, 1, 60, 20],        # dog, 0.8, second image: D exactly -> TP; tied, but its image id is lower
             [1, 1, 31, 20],        # dog, 0.5: inside A, IoU 31 * 20 / (60 * 20) = .5167: TP at .5 only
             [1, 1, 60, 20]]        # cow, 0.3
    det = Detections(np.array(ids, object), np.array(boxes, float), np.array([0.8, 0.8, 0.5, 0.3]),
                     np.array([DOG, DOG, DOG, COW]))
    return det, gt


def test_coco_metric_by_hand():
    from vocli.metrics import evaluate_coco

    det, gt = coco_case()
    # dog at IoU .5, pycocotools order (score, then image id): TP (D), FP, TP (A); npos 2
    #   recall .5, .5, 1; precision 1, .5, 2/3; 101 points: 51 (r <= .5) at 1, 50 at 2/3
    ap50 = (51 + 50 * 2 / 3) / 101
    # IoU .55 ... .95 (9 thresholds): TP, FP, FP -> 51 points at 1, the rest 0
    ap_rest = 51 / 101
    dog_50_95 = (ap50 + 9 * ap_rest) / 10
    for r in (evaluate_detections(det, gt, CLASSES, metric="coco"), evaluate_coco(det, gt, CLASSES)):
        assert [c.name for c in r.per_class] == list(CLASSES)
        dog, cat, bird, cow = r.per_class
        assert (dog.num_gt, dog.num_difficult, dog.num_det) == (2, 1, 3)
        assert (cat.num_gt, cat.num_difficult, cat.num_det) == (1, 0, 0)
        assert (cow.num_gt, cow.num_difficult, cow.num_det) == (0, 0, 1)
        assert dog.ap == pytest.approx(ap50) and dog.ap_50_95 == pytest.approx(dog_50_95)
        np.testing.assert_allclose(dog.recall, np.linspace(0, 1, 101))
        np.testing.assert_allclose(dog.precision, [1.0] * 51 + [2 / 3] * 50)
        assert cat.ap == 0.0 and cat.ap_50_95 == 0.0  # ground truth, no detection
        assert math.isnan(cow.ap) and cow.ap_50_95 is None and len(cow.recall) == 0 and len(cow.precision) == 0
        assert math.isnan(bird.ap) and bird.num_det == 0
        assert r.excluded == ["bird", "cow"]
        assert r.metric == "coco" and r.iou_threshold == 0.5 and r.num_images == 2 and r.num_detections == 4
        assert r.sort == "stable; pycocotools order (score, then image id, then input order)"
        assert r.map == pytest.approx(ap50 / 2) and r.map_50_95 == pytest.approx(dog_50_95 / 2)
        assert r.coco_stats["AP50"] == pytest.approx(ap50 / 2) and r.coco_stats["AP"] == pytest.approx(dog_50_95 / 2)
        # every ground truth is 60 x 20 = 1200 pixels: "medium"; none small or large -> -1
        assert r.coco_stats["APs"] == -1 and r.coco_stats["APl"] == -1


def test_coco_metric_takes_the_files_coco_boxes_and_is_nan_without_ground_truth():
    det, gt = coco_case()
    # COCO boxes of the same detections (VOC corners x1 - 1, y1 - 1, w, h), VOC boxes made useless
    det.coco_boxes = [[200, 200, 60, 20], [0, 0, 60, 20], [0, 0, 31, 20], [0, 0, 60, 20]]
    det.boxes = np.zeros((4, 4))
    r = evaluate_detections(det, gt, CLASSES, metric="coco")
    assert r.per_class[DOG].ap == pytest.approx((51 + 50 * 2 / 3) / 101)
    nothing = evaluate_detections(Detections.empty(), GroundTruth.from_images([("a", [], [], [])]), CLASSES,
                                  metric="coco")
    assert math.isnan(nothing.map) and math.isnan(nothing.map_50_95) and nothing.num_detections == 0
    assert nothing.excluded == list(CLASSES)


def test_ap_rounding_outside_the_unit_interval_is_clamped():
    from vocli.metrics import _unit

    assert _unit(1.0000000000000002) == 1.0 and _unit(-1e-17) == 0.0 and _unit(0.25) == 0.25
    assert math.isnan(_unit(float("nan")))


def test_coco_image_order_follows_numeric_ids_only():
    dog_ap = {}
    for first, second in (("2008_000002", "2008_000001"), ("2.jpg", "1.jpg")):
        det, gt = coco_case()  # the same boxes, the two images renamed
        names = {"/data/2008_000002.jpg": first, "/data/2008_000001.jpg": second}
        gt.image_ids = [names[i] for i in gt.image_ids]
        det.image_ids = np.array([names[i] for i in det.image_ids], object)
        dog_ap[first] = evaluate_detections(det, gt, CLASSES, metric="coco").per_class[DOG].ap
    # numeric VOC ids: 2008000001 comes first, as for the paths: TP, FP, TP (see test_coco_metric_by_hand)
    assert dog_ap["2008_000002"] == pytest.approx((51 + 50 * 2 / 3) / 101)
    # "2.jpg" is no numeric id (and no path to take a stem of): images numbered in input order, so the
    # tie goes to the first image's FP: FP, TP, TP -> precision 0, 1/2, 2/3; envelope 2/3 everywhere
    assert dog_ap["2.jpg"] == pytest.approx(2 / 3)

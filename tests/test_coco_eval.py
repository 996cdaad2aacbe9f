"""COCO box AP: cases worked out by hand, and random cases against pycocotools itself (when installed)."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest

from vocli.boxes import coco_iou_paired
from vocli.cli.app import main
from vocli.coco import coco_image_ids, results_list
from vocli.coco_eval import STAT_NAMES, CocoBoxes, coco_evaluate
from vocli.datasets.voc import VOC_CLASSES, parse_annotation, resolve_sets

EPS = np.spacing(1)


def _run(gt_rows, dt_rows, num_classes=1, image_ids=(1,)):
    """gt_rows: (image, class, x, y, w, h, crowd); dt_rows: (image, class, x, y, w, h, score)."""
    g = np.array(gt_rows, float).reshape(-1, 7)
    d = np.array(dt_rows, float).reshape(-1, 7)
    ids = np.asarray(image_ids)
    rank = np.empty(len(ids), np.int64)
    rank[np.argsort(ids)] = np.arange(len(ids))
    gt = CocoBoxes(g[:, 0].astype(int), g[:, 1].astype(int), g[:, 2:6], area=g[:, 4] * g[:, 5],
                   crowd=g[:, 6].astype(bool))
    dt = CocoBoxes(d[:, 0].astype(int), d[:, 1].astype(int), d[:, 2:6], score=d[:, 6])
    return coco_evaluate(gt, dt, num_classes, rank)


def test_iou_as_mask_utils():
    # 10x10 boxes overlapping on half: 50 / 150; a crowd divides by the detection's area only
    assert coco_iou_paired([0, 0, 10, 10], [5, 0, 10, 10], False) == pytest.approx(1 / 3)
    assert coco_iou_paired([10, 10, 20, 20], [0, 0, 100, 100], True) == 1.0
    assert coco_iou_paired([0, 0, 10, 10], [10, 0, 5, 5], False) == 0.0  # touching edges


def test_greedy_match_takes_the_next_free_object():
    # A (0,0,10,10), B (5,0,10,10). det1 = A exactly; det2 (2,0,10,10): IoU A 80/120 = .667, B 70/130 = .538.
    # A is taken, so det2 takes B where .538 >= t (t = .50 only): 2 TP at .50; TP, FP above.
    r = _run([(0, 0, 0, 0, 10, 10, 0), (0, 0, 5, 0, 10, 10, 0)],
             [(0, 0, 0, 0, 10, 10, .9), (0, 0, 2, 0, 10, 10, .8)])
    s = r.stats
    assert s["AP50"] == pytest.approx(1 / (1 + EPS))
    # above .50: recall .5 at precision 1, recall 1 never reached -> 51 of 101 points
    assert s["AP75"] == pytest.approx(51 / 101)
    assert s["AP"] == pytest.approx((1 + 9 * 51 / 101) / 10)
    assert s["APs"] == s["AP"] and s["APm"] == -1 and s["APl"] == -1   # areas 100: small only
    assert s["AR100"] == pytest.approx((1 + 9 * .5) / 10)
    assert s["AR1"] == pytest.approx(.5)                               # only det1 counts


def test_equal_ious_go_to_the_last_object():
    # det1 (2.5,0,10,10) overlaps A (0,0,10,10) and B (5,0,10,10) alike: 75 / 125 = .6 each; pycocotools
    # keeps the last, B. det2 (6,0,10,10) then has only A left at IoU 40 / 160 = .25: a FP.
    # (Taking A first would leave B, IoU 90 / 110, to det2: AP50 1.)
    r = _run([(0, 0, 0, 0, 10, 10, 0), (0, 0, 5, 0, 10, 10, 0)],
             [(0, 0, 2.5, 0, 10, 10, .9), (0, 0, 6, 0, 10, 10, .8)])
    assert r.stats["AP50"] == pytest.approx(51 / 101)


def test_crowd_absorbs_many_detections_and_area_ranges():
    # crowd C (0,0,100,100): two detections inside it are ignored (a crowd can be matched again);
    # D (200,200,10,10) found by the third. Without the crowd rule they would be FPs ranked first.
    r = _run([(0, 0, 0, 0, 100, 100, 1), (0, 0, 200, 200, 10, 10, 0)],
             [(0, 0, 10, 10, 20, 20, .9), (0, 0, 50, 50, 20, 20, .8), (0, 0, 200, 200, 10, 10, .5)])
    assert r.stats["AP"] == pytest.approx(1 / (1 + EPS))
    # area 32^2 counts as small and as medium (both ends inclusive). An unmatched 50x50 detection
    # scoring first is ignored in "small" (outside its range) but a FP in "medium" and "all".
    r = _run([(0, 0, 0, 0, 32, 32, 0)], [(0, 0, 0, 0, 32, 32, .9), (0, 0, 100, 100, 50, 50, .95)])
    assert r.stats["APs"] == pytest.approx(1 / (1 + EPS))
    assert r.stats["APm"] == pytest.approx(.5) and r.stats["AP"] == pytest.approx(.5)
    assert r.stats["APl"] == -1


def test_ties_go_by_image_id_then_input_order():
    # same score on two images: pycocotools takes image id 3 (rank 0) before id 7. A FP on id 3 first
    # then a TP on id 7: precision .5 at recall 1 -> AP .5; swapping the ids puts the TP first -> 1.
    gt = [(1, 0, 0, 0, 10, 10, 0)]
    dets = [(1, 0, 0, 0, 10, 10, .5), (0, 0, 50, 50, 10, 10, .5)]
    assert _run(gt, dets, image_ids=(3, 7)).stats["AP50"] == pytest.approx(.5)
    assert _run(gt, dets, image_ids=(7, 3)).stats["AP50"] == pytest.approx(1 / (1 + EPS))


def _pycocotools_stats(gt_doc: dict, results: list):
    pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = gt_doc
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes(results), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def _random_case(seed, images=25, classes=3, objects=60, detections=500, dense=False):
    rng = np.random.default_rng(seed)
    ids = rng.choice(np.arange(1, 100000), images, replace=False)
    gi, gl = rng.integers(0, images, objects), rng.integers(0, classes, objects)
    g = np.c_[rng.integers(0, 200, (objects, 2)), rng.integers(1, 150, (objects, 2))].astype(float)
    crowd = rng.random(objects) < 0.15
    src = rng.integers(0, objects, detections)
    d = g[src] + rng.normal(0, 8, (detections, 4))
    if seed % 2 == 0:
        d = np.round(d)                   # integer boxes: IoUs landing exactly on thresholds
    d[:, 2:] = np.maximum(d[:, 2:], 1)
    di, dl = gi[src].copy(), gl[src].copy()
    other = rng.random(detections) < 0.4
    di[other], dl[other] = rng.integers(0, images, other.sum()), rng.integers(0, classes, other.sum())
    s = rng.random(detections)
    if dense or seed % 3 == 0:
        s = np.round(s * 4) / 4           # many score ties
    return ids, (gi, gl, g, crowd), (di, dl, d, s)


@pytest.mark.parametrize("seed", range(8))
def test_random_cases_equal_pycocotools(seed):
    dense = seed >= 6                     # 3 images, > 100 detections per image and class: the cut at 100
    ids, (gi, gl, g, crowd), (di, dl, d, s) = _random_case(
        seed, images=3 if dense else 25, objects=80 if dense else 60, detections=1500 if dense else 500, dense=dense)
    classes = 3
    doc = {"images": [{"id": int(i), "width": 400, "height": 400} for i in ids],
           "categories": [{"id": c + 1, "name": str(c)} for c in range(classes)],
           "annotations": [{"id": n + 1, "image_id": int(ids[gi[n]]), "category_id": int(gl[n]) + 1,
                            "bbox": g[n].tolist(), "area": float(g[n, 2] * g[n, 3]), "iscrowd": int(crowd[n])}
                           for n in range(len(gi))]}
    results = [{"image_id": int(ids[di[n]]), "category_id": int(dl[n]) + 1, "bbox": d[n].tolist(),
                "score": float(s[n])} for n in range(len(di))]
    ref = _pycocotools_stats(doc, results)
    rank = np.empty(len(ids), np.int64)
    rank[np.argsort(ids)] = np.arange(len(ids))
    mine = coco_evaluate(CocoBoxes(gi, gl, g, area=g[:, 2] * g[:, 3], crowd=crowd), CocoBoxes(di, dl, d, score=s),
                         classes, rank)
    np.testing.assert_allclose(mine.precision, ref.eval["precision"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(mine.recall, ref.eval["recall"], rtol=0, atol=1e-9)
    np.testing.assert_allclose([mine.stats[k] for k in STAT_NAMES], ref.stats, rtol=0, atol=1e-9)


def _detections_on(voc_root, set_name, seed=0):
    """Detections near each real object and some anywhere, as (voc id, class, score, VOC corners)."""
    voc_set = resolve_sets(voc_root, set_name)[0]
    rng = np.random.default_rng(seed)
    rows = []
    for image_id in voc_set.ids():
        for o in parse_annotation(voc_set.annotation_path(image_id)).objects:
            for _ in range(int(rng.integers(0, 4))):
                rows.append((image_id, VOC_CLASSES.index(o.name), float(rng.random()),
                             np.round(np.array(o.bbox) + rng.normal(0, 6, 4))))
        for _ in range(4):
            x, y = rng.integers(1, 300, 2)
            rows.append((image_id, int(rng.integers(0, 20)), float(rng.random()),
                         np.array([x, y, x + rng.integers(1, 150), y + rng.integers(1, 150)], float)))
    return voc_set, rows


def _cli_stats(args, capsys):
    capsys.readouterr()
    assert main(args + ["--metric", "coco", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_evaluate_cli_equals_pycocotools_on_converted_sample(voc_sample, tmp_path, capsys):
    pytest.importorskip("pycocotools")
    voc_set, rows = _detections_on(voc_sample, "2007/test")
    assert main(["convert", "coco", "--root", str(voc_sample), "--sets", "2007/test", "--out", str(tmp_path),
                 "--json"]) == 0
    gt_doc = json.loads((tmp_path / "instances_2007_test.json").read_text())
    ids = dict(zip(voc_set.ids(), coco_image_ids(voc_set.ids())))
    results = results_list([ids[r[0]] for r in rows], np.array([r[3] for r in rows]),
                           np.array([r[2] for r in rows]), np.array([r[1] for r in rows]))
    ref = _pycocotools_stats(gt_doc, results)
    res_file = tmp_path / "results.json"
    res_file.write_text(json.dumps(results))
    comp4 = tmp_path / "comp4"
    comp4.mkdir()
    for c, name in enumerate(VOC_CLASSES):
        (comp4 / f"comp4_det_test_{name}.txt").write_text("".join(
            f"{r[0]} {r[2]!r} {' '.join(repr(float(v)) for v in r[3])}\n" for r in rows if r[1] == c))
    for source in (res_file, comp4):
        out = _cli_stats(["evaluate", "-d", str(source), "--root", str(voc_sample), "--sets", "2007/test"], capsys)
        np.testing.assert_allclose(list(out["coco_stats"].values()), ref.stats, rtol=0, atol=1e-9)
        assert out["map_50_95"] == pytest.approx(ref.stats[0], abs=1e-9)
        assert out["map"] == pytest.approx(ref.stats[1], abs=1e-9)
        # per class AP50 as pycocotools' precision at IoU .5, all areas, 100 detections
        for k, c in enumerate(out["per_class"]):
            p = ref.eval["precision"][0, :, k, 0, 2]
            if (p > -1).any():
                assert c["ap"] == pytest.approx(p.mean(), abs=1e-9)

"""Benchmark `vocli anchors` against a plain single-run IoU k-means, measured side by side.

Data: the real VOC annotation sample (2007 + 2012, all non-difficult boxes) and a
realistic 40,000-box set made from it: real shapes drawn with replacement, each
width and height multiplied by exp(N(0, 0.1)) jitter (about +-10 %), clipped to
(1 px at 416, 1]. The reference is the classic script approach: k random boxes
as initial centres, Lloyd iterations with 1 - IoU assignment and per-cluster
median update until no box moves, one run. Run: python benchmarks/bench_anchors.py
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from vocli.anchors import STOCK_YOLOV3_ANCHORS, anchor_metrics, compute_anchors, kmeans_iou
from vocli.datasets.box_shapes import voc_shapes
from vocli.boxes import wh_iou

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "voc-sample"
SETS = "2007/trainval,2007/test,2012/trainval"
N_BOXES, K, SEEDS = 40_000, 9, range(10)


def plain_kmeans(wh: np.ndarray, k: int, seed: int, iters: int = 300) -> np.ndarray:
    """One Lloyd run from k random boxes (no k-means++, no restarts). -> (k, 2) centres."""
    rng = np.random.default_rng(seed)
    centres = wh[rng.choice(len(wh), k, replace=False)].copy()
    last = None
    for _ in range(iters):
        labels = wh_iou(wh, centres).argmax(axis=1)
        if last is not None and np.array_equal(labels, last):
            break
        last = labels
        for j in range(k):
            members = wh[labels == j]
            if len(members):          # an empty cluster keeps its centre
                centres[j] = np.median(members, axis=0)
    return centres


def mean_iou(wh: np.ndarray, centres: np.ndarray) -> float:
    return float(wh_iou(wh, centres).max(axis=1).mean())


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def cpu_timed(fn):
    start = time.process_time()
    out = fn()
    return out, time.process_time() - start


def main() -> int:
    if not (SAMPLE / "VOCdevkit").is_dir():
        print(f"VOC sample not found at {SAMPLE}", file=sys.stderr)
        return 1
    real = voc_shapes(SAMPLE, SETS).wh
    rng = np.random.default_rng(12345)
    big = real[rng.integers(len(real), size=N_BOXES)] * np.exp(rng.normal(0.0, 0.1, (N_BOXES, 2)))
    big = big.clip(1 / 416, 1.0)
    print(f"real sample: {len(real)} boxes; synthetic: {len(big)} boxes (resampled + 10% log-normal jitter), k={K}")

    kmeans_iou(big, K, restarts=10, seed=0)  # warm-up (imports, allocator)
    cpu = [cpu_timed(lambda: kmeans_iou(big, K, restarts=10, seed=s))[1] for s in range(3)]
    print(f"vocli k={K}, 10 restarts: CPU time {statistics.median(cpu):.3f} s (median of 3; wall times below "
          f"depend on machine load, os.getloadavg()={tuple(round(x, 1) for x in os.getloadavg())})")
    rows = []
    for seed in SEEDS:
        ours, t_ours = timed(lambda: kmeans_iou(big, K, restarts=10, seed=seed))
        ref, t_ref = timed(lambda: plain_kmeans(big, K, seed))
        rows.append((seed, ours.mean_iou, t_ours, mean_iou(big, ref), t_ref))
    print("\nseed  vocli(10 restarts) IoU  time s | plain Lloyd IoU  time s | IoU gain")
    for seed, iou_o, t_o, iou_r, t_r in rows:
        print(f"{seed:4d}  {iou_o:23.4f}  {t_o:6.3f} | {iou_r:15.4f}  {t_r:6.3f} | {iou_o - iou_r:+.4f}")
    ours_iou = [r[1] for r in rows]
    ref_iou = [r[3] for r in rows]
    t_med = statistics.median(r[2] for r in rows)
    print(f"\nvocli: median wall time {t_med:.3f} s (goal < 1 s), mean IoU {statistics.mean(ours_iou):.4f} "
          f"(spread {max(ours_iou) - min(ours_iou):.4f})")
    print(f"plain: median wall time {statistics.median(r[4] for r in rows):.3f} s, mean IoU "
          f"{statistics.mean(ref_iou):.4f} (spread {max(ref_iou) - min(ref_iou):.4f})")
    wins = sum(o >= r for o, r in zip(ours_iou, ref_iou))
    print(f"vocli >= plain on {wins}/{len(rows)} seeds; mean IoU ratio vocli/plain "
          f"{statistics.mean(ours_iou) / statistics.mean(ref_iou):.4f}")

    mean_upd, t_mean = timed(lambda: kmeans_iou(big, K, restarts=10, seed=0, update="mean"))
    print(f"\nupdate rule (seed 0, 10 restarts): median {rows[0][1]:.4f} vs mean {mean_upd.mean_iou:.4f} ({t_mean:.3f} s)")
    evolved, t_evo = timed(lambda: kmeans_iou(big, K, restarts=10, seed=0, evolve=300))
    print(f"--evolve 300: mean IoU {evolved.mean_iou:.4f} (+{evolved.mean_iou - rows[0][1]:.4f}, "
          f"{evolved.evolve_improvements} kept) in {t_evo:.3f} s")
    stock = anchor_metrics(big * 416, np.array(STOCK_YOLOV3_ANCHORS))
    print(f"stock YOLOv3 anchors on the synthetic set: mean IoU {stock.mean_iou:.4f}")

    print("\nreal VOC sample (2007 + 2012, non-difficult), 416 px, seed 0, 10 restarts:")
    for k in (5, 9):
        result, t = timed(lambda: compute_anchors(k=k, root=SAMPLE, sets=SETS))
        m, s = result.metrics, result.stock_metrics
        print(f"k={k}: mean IoU {m.mean_iou:.4f} (stock {s.mean_iou:.4f}), BPR {m.best_possible_recall:.4f} "
              f"(stock {s.best_possible_recall:.4f}), anchors/box {m.anchors_above_threshold:.2f} "
              f"(stock {s.anchors_above_threshold:.2f}), {t:.2f} s incl. XML parsing\n     anchors = {result.cfg_anchors}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

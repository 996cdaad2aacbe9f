"""Benchmark: ``vocli evaluate --metric coco`` against pycocotools' COCOeval, each as a whole cold process.

A generated VOC2007-layout test set of VOC07 test size (4,952 images, VOC-like sizes, 1-6
objects of 20 classes, ~20 % difficult) and 250,000 detections (jittered copies of the objects
and random boxes, scores rounded to 3 places so that ties occur), written as one COCO results
JSON. ``vocli convert coco`` writes the ground truth JSON that pycocotools reads (not timed).

Each round starts both tools as fresh processes, alternating which goes first:

* vocli:       ``python -m vocli evaluate -d results.json --root R --sets 2007/test --metric coco --json``
               (reads the 4,952 VOC XML files itself);
* pycocotools: ``COCO(instances) ; loadRes(results) ; evaluate() ; accumulate() ; summarize()``.

Prints each round's wall time, the medians and the ratio, and checks that the 12 summary
numbers agree to 1e-9.

Run: python benchmarks/bench_coco.py [--images 4952] [--detections 250000] [--rounds 3]
(pycocotools must be installed: pip install -e '.[test]').
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from vocli.coco import coco_image_ids, results_list
from vocli.datasets.voc import VOC_CLASSES

from bench_evaluate import write_annotation  # the same synthetic annotations as bench_evaluate.py

PYCOCOTOOLS = """
import json, sys
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
import contextlib, io
with contextlib.redirect_stdout(io.StringIO()):
    gt = COCO(sys.argv[1])
    ev = COCOeval(gt, gt.loadRes(sys.argv[2]), "bbox")
    ev.evaluate(); ev.accumulate(); ev.summarize()
print(json.dumps([float(v) for v in ev.stats]))
"""


def generate(root: Path, images: int, detections: int, seed: int = 0) -> Path:
    """VOC2007 tree with a test split under ``root``; returns the COCO results file written beside it."""
    rng = np.random.default_rng(seed)
    voc = root / "VOCdevkit" / "VOC2007"
    (voc / "Annotations").mkdir(parents=True)
    (voc / "ImageSets" / "Main").mkdir(parents=True)
    ids = [f"{i:06d}" for i in range(1, images + 1)]
    extra = set(rng.choice(images, detections % images, replace=False).tolist())  # spread the remainder
    rows_img, rows_box, rows_score, rows_cls = [], [], [], []
    for index, image_id in enumerate(ids):
        per_image = detections // images + (index in extra)
        w, h = int(rng.integers(300, 501)), int(rng.integers(250, 501))
        n = int(rng.integers(1, 7))
        x1, y1 = rng.integers(1, w - 40, n), rng.integers(1, h - 40, n)
        x2, y2 = np.minimum(x1 + rng.integers(8, 300, n), w), np.minimum(y1 + rng.integers(8, 300, n), h)
        cls = rng.integers(0, len(VOC_CLASSES), n)
        diff = rng.random(n) < 0.2
        write_annotation(voc, image_id, w, h, cls, diff, x1, y1, x2, y2)
        near = np.repeat(np.stack([x1, y1, x2, y2], 1), 4, axis=0) + rng.normal(0, 6, (4 * n, 4))
        k = per_image - len(near)
        rx, ry = rng.uniform(1, w - 20, k), rng.uniform(1, h - 20, k)
        rand = np.stack([rx, ry, np.minimum(rx + rng.uniform(5, 250, k), w),
                         np.minimum(ry + rng.uniform(5, 250, k), h)], 1)
        boxes = np.concatenate([near, rand])
        boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2])
        rows_img += [image_id] * len(boxes)
        rows_box.append(boxes)
        rows_cls.append(np.concatenate([np.repeat(cls, 4), rng.integers(0, len(VOC_CLASSES), k)]))
        rows_score.append(np.concatenate([rng.uniform(0.3, 1.0, len(near)), rng.uniform(0.0, 0.7, k)]).round(3))
    (voc / "ImageSets" / "Main" / "test.txt").write_text("".join(f"{i}\n" for i in ids))
    numbers = dict(zip(ids, coco_image_ids(ids)))
    results = results_list([numbers[i] for i in rows_img], np.concatenate(rows_box), np.concatenate(rows_score),
                           np.concatenate(rows_cls))
    path = root / "results.json"
    path.write_text(json.dumps(results))
    return path


def _run(cmd: list[str]) -> tuple[float, list[float]]:
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} ... failed:\n{done.stderr[-2000:]}")
    out = json.loads(done.stdout)
    stats = list(out["coco_stats"].values()) if isinstance(out, dict) else out
    return wall, stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4952)
    parser.add_argument("--detections", type=int, default=250_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        results = generate(root, args.images, args.detections)
        subprocess.run([sys.executable, "-m", "vocli", "convert", "coco", "--root", str(root), "--sets", "2007/test",
                        "--out", str(root / "annotations"), "--json"], check=True, capture_output=True)
        instances = root / "annotations" / "instances_2007_test.json"
        n_dets = len(json.loads(results.read_text()))
        print(f"{args.images} images, {n_dets} detections generated in {time.perf_counter() - t:.1f} s; "
              f"{os.cpu_count()} cores")
        cmds = {
            "vocli": [sys.executable, "-m", "vocli", "evaluate", "-d", str(results), "--root", str(root),
                      "--sets", "2007/test", "--metric", "coco", "--json"],
            "pycocotools": [sys.executable, "-c", PYCOCOTOOLS, str(instances), str(results)],
        }
        times: dict[str, list[float]] = {name: [] for name in cmds}
        stats: dict[str, list[float]] = {}
        for r in range(args.rounds):
            order = list(cmds) if r % 2 == 0 else list(cmds)[::-1]
            for name in order:
                wall, stats[name] = _run(cmds[name])
                times[name].append(wall)
                print(f"round {r + 1}: {name:12s} {wall:7.2f} s")
        diff = float(np.max(np.abs(np.array(stats["vocli"]) - np.array(stats["pycocotools"]))))
        med = {name: statistics.median(v) for name, v in times.items()}
        print(f"median: vocli {med['vocli']:.2f} s, pycocotools {med['pycocotools']:.2f} s "
              f"-> vocli {med['pycocotools'] / med['vocli']:.1f}x faster (best {min(times['vocli']):.2f} vs "
              f"{min(times['pycocotools']):.2f} s)")
        print(f"AP {stats['vocli'][0]:.6f} AP50 {stats['vocli'][1]:.6f}; largest difference of the 12 numbers "
              f"from pycocotools: {diff:.3g}" + (" (equal to 1e-9)" if diff <= 1e-9 else " (NOT EQUAL)"))


if __name__ == "__main__":
    main()

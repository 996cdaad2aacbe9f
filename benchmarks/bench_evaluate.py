"""Benchmark: ``evaluate --detections`` against a per-detection Python loop, and ``detect`` against bare forward.

1. 5,000 generated images (VOC-like sizes, 1-8 objects of 20 classes, ~10 % difficult) with
   100 detections each (jittered ground truths and random boxes) written as a VOC tree and
   comp4 files. Times vocli's comp4 reading and its scoring, each against a straightforward
   implementation of the same definition (line-split comp4 reading; per class, one detection at
   a time as py-faster-rcnn's voc_eval does, with a stable sort), interleaved, best of 2, wall and
   CPU time; checks both give the same APs. Also: the same detections as JSON lines, VOC XML
   ground truth in-process vs a process pool, and ``evaluate`` end to end.
2. yolov3-tiny at 416 on a handful of generated images: ``detect`` images/s (no drawing, no
   files) against the bare model forward on the same letterboxed batches.

Run: python benchmarks/bench_evaluate.py [--images 5000] [--device cpu]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from vocli.datasets.voc import VOC_CLASSES


def write_annotation(voc: Path, image_id: str, w: int, h: int, cls, diff, x1, y1, x2, y2) -> None:
    """``voc/Annotations/<image_id>.xml``: one object per entry of the (n,) arrays (class index, difficult, corners)."""
    objs = "".join(
        f"<object><name>{VOC_CLASSES[c]}</name><difficult>{int(d)}</difficult><bndbox><xmin>{a}</xmin>"
        f"<ymin>{b}</ymin><xmax>{cc}</xmax><ymax>{dd}</ymax></bndbox></object>"
        for c, d, a, b, cc, dd in zip(cls, diff, x1, y1, x2, y2))
    (voc / "Annotations" / f"{image_id}.xml").write_text(
        f"<annotation><filename>{image_id}.jpg</filename><size><width>{w}</width><height>{h}</height>"
        f"<depth>3</depth></size>{objs}</annotation>")


def generate(root: Path, images: int, dets_per_image: int, seed: int = 0) -> Path:
    """VOC2007-layout tree with a test split under ``root``; comp4 files in ``root/results``."""
    rng = np.random.default_rng(seed)
    voc = root / "VOCdevkit" / "VOC2007"
    (voc / "Annotations").mkdir(parents=True)
    (voc / "ImageSets" / "Main").mkdir(parents=True)
    ids = [f"{i:06d}" for i in range(images)]
    per_class: dict[int, list[str]] = {c: [] for c in range(len(VOC_CLASSES))}
    for image_id in ids:
        w, h = int(rng.integers(300, 501)), int(rng.integers(250, 501))
        n = int(rng.integers(1, 9))
        x1 = rng.integers(1, w - 40, n)
        y1 = rng.integers(1, h - 40, n)
        x2 = np.minimum(x1 + rng.integers(20, 250, n), w)
        y2 = np.minimum(y1 + rng.integers(20, 250, n), h)
        cls = rng.integers(0, len(VOC_CLASSES), n)
        diff = rng.random(n) < 0.1
        write_annotation(voc, image_id, w, h, cls, diff, x1, y1, x2, y2)
        # detections: 3 jittered copies per object (hits and duplicates), the rest random
        near = np.repeat(np.stack([x1, y1, x2, y2], 1), 3, axis=0) + rng.normal(0, 8, (3 * n, 4))
        near_cls = np.repeat(cls, 3)
        k = dets_per_image - len(near)
        rx, ry = rng.uniform(1, w - 20, k), rng.uniform(1, h - 20, k)
        rand = np.stack([rx, ry, np.minimum(rx + rng.uniform(10, 200, k), w), np.minimum(ry + rng.uniform(10, 200, k), h)], 1)
        boxes = np.concatenate([near, rand])
        labels = np.concatenate([near_cls, rng.integers(0, len(VOC_CLASSES), k)])
        scores = np.concatenate([rng.uniform(0.3, 1.0, len(near)), rng.uniform(0.0, 0.7, k)]).round(3)  # ties
        for b, c, s in zip(boxes, labels, scores):
            per_class[int(c)].append(f"{image_id} {s:.3f} {b[0]:.1f} {b[1]:.1f} {b[2]:.1f} {b[3]:.1f}\n")
    (voc / "ImageSets" / "Main" / "test.txt").write_text("\n".join(ids) + "\n")
    results = root / "results"
    results.mkdir()
    for c, lines in per_class.items():
        (results / f"comp4_det_test_{VOC_CLASSES[c]}.txt").write_text("".join(lines))
    return results


# --------------------------------------------------------------------------- reference


def reference_read(results: Path) -> list[tuple[list[str], np.ndarray, np.ndarray]]:
    """comp4 files read as py-faster-rcnn's voc_eval does: split lines, float() per field."""
    per_class = []
    for name in VOC_CLASSES:
        lines = [x.strip().split() for x in (results / f"comp4_det_test_{name}.txt").read_text().splitlines()]
        image_ids = [x[0] for x in lines]
        confidence = np.array([float(x[1]) for x in lines])
        bb = np.array([[float(z) for z in x[2:]] for x in lines]).reshape(-1, 4)
        per_class.append((image_ids, confidence, bb))
    return per_class


def reference_score(per_class: list, gt_images: list, use_07: bool) -> list[float]:
    """The definition, one detection at a time (py-faster-rcnn's loop, stable sort). gt read by vocli."""
    aps = []
    for c, (image_ids, confidence, bb) in enumerate(per_class):
        recs, npos = {}, 0
        for image_id, boxes, labels, difficult in gt_images:
            sel = labels == c
            recs[image_id] = {"bbox": boxes[sel], "difficult": difficult[sel], "det": [False] * int(sel.sum())}
            npos += int((~difficult[sel]).sum())
        order = np.argsort(-confidence, kind="stable")
        bb = bb[order]
        image_ids = [image_ids[i] for i in order]
        tp, fp = np.zeros(len(image_ids)), np.zeros(len(image_ids))
        for d in range(len(image_ids)):
            r = recs[image_ids[d]]
            b = bb[d]
            ovmax, bbgt = -np.inf, r["bbox"]
            if bbgt.size:
                ixmin = np.maximum(bbgt[:, 0], b[0])
                iymin = np.maximum(bbgt[:, 1], b[1])
                ixmax = np.minimum(bbgt[:, 2], b[2])
                iymax = np.minimum(bbgt[:, 3], b[3])
                iw = np.maximum(ixmax - ixmin + 1.0, 0.0)
                ih = np.maximum(iymax - iymin + 1.0, 0.0)
                inters = iw * ih
                uni = ((b[2] - b[0] + 1.0) * (b[3] - b[1] + 1.0)
                       + (bbgt[:, 2] - bbgt[:, 0] + 1.0) * (bbgt[:, 3] - bbgt[:, 1] + 1.0) - inters)
                overlaps = inters / uni
                ovmax, jmax = np.max(overlaps), np.argmax(overlaps)
            if ovmax > 0.5:
                if not r["difficult"][jmax]:
                    if not r["det"][jmax]:
                        tp[d], r["det"][jmax] = 1.0, True
                    else:
                        fp[d] = 1.0
            else:
                fp[d] = 1.0
        fp, tp = np.cumsum(fp), np.cumsum(tp)
        rec = tp / npos
        prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
        if use_07:
            ap = sum((np.max(prec[rec >= t]) if np.sum(rec >= t) else 0.0) for t in np.arange(0.0, 1.1, 0.1)) / 11.0
        else:
            mrec = np.concatenate(([0.0], rec, [1.0]))
            mpre = np.concatenate(([0.0], prec, [0.0]))
            for i in range(mpre.size - 1, 0, -1):
                mpre[i - 1] = max(mpre[i - 1], mpre[i])
            i = np.where(mrec[1:] != mrec[:-1])[0]
            ap = float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))
        aps.append(float(ap))
    return aps


def _timed(fn, *args, **kwargs):
    """(result, wall seconds, CPU seconds of this process)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - wall, time.process_time() - cpu


def _write_jsonl(dets, path: Path) -> None:
    """The same detections as vocli JSON lines, one line per image (what ``detect --save-json`` writes)."""
    from vocli.detection_files import detection_json_line

    order = np.argsort(dets.image_ids.astype(str), kind="stable")
    ids = dets.image_ids[order]
    cuts = np.flatnonzero(ids[1:] != ids[:-1]) + 1
    with open(path, "w") as f:
        for part in np.split(order, cuts):
            f.write(detection_json_line(str(dets.image_ids[part[0]]), dets.boxes[part], dets.scores[part],
                                        dets.labels[part], VOC_CLASSES))


def bench_evaluate(images: int, repeats: int = 2) -> None:
    import os

    from vocli.datasets.voc import resolve_sets
    from vocli.detection_files import load_detections
    from vocli.evaluate import evaluate, voc_ground_truth
    from vocli.metrics import evaluate_detections

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        results = generate(root, images, 100)
        print(f"generated {images} images x 100 detections in {time.perf_counter() - t:.1f} s; "
              f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
        sets = resolve_sets(root, "2007/test")
        gt = voc_ground_truth(sets, VOC_CLASSES, workers=1)
        gt_images = [(gt.image_ids[i], gt.boxes[gt.image_index == i], gt.labels[gt.image_index == i],
                      gt.difficult[gt.image_index == i]) for i in range(len(gt.image_ids))]

        # Interleaved repeats, best of each, wall and CPU: both sides see the same machine load.
        best: dict[str, tuple[float, float]] = {}

        def keep(key, wall, cpu):
            old = best.get(key, (np.inf, np.inf))
            best[key] = (min(old[0], wall), min(old[1], cpu))

        for _ in range(repeats):
            dets, wall, cpu = _timed(load_detections, results, VOC_CLASSES)
            keep("read", wall, cpu)
            core, wall, cpu = _timed(evaluate_detections, dets[0], gt, VOC_CLASSES, metric="voc07")
            keep("score", wall, cpu)
            per_class, wall, cpu = _timed(reference_read, results)
            keep("ref read", wall, cpu)
            ref, wall, cpu = _timed(reference_score, per_class, gt_images, use_07=True)
            keep("ref score", wall, cpu)
        for key in ("read", "ref read"):
            best[key + " + score"] = tuple(a + b for a, b in zip(best[key], best[key.replace("read", "score")]))
        dets = dets[0]

        ours = [c.ap for c in core.per_class]
        diff = max(abs(a - b) for a, b in zip(ours, ref))
        print(f"detections: {len(dets)}  metric: {core.metric}  mAP: {core.map:.6f}  "
              f"(reference {np.mean(ref):.6f}, max |AP diff| {diff:.2e})")

        def line(label, key):
            wall, cpu = best[key]
            return f"{label:<44s} {wall:6.2f} s wall {cpu:6.2f} s CPU"

        def ratio(ref_key, key):
            return f"{best[ref_key][0] / best[key][0]:.1f}x wall, {best[ref_key][1] / best[key][1]:.1f}x CPU"

        print(line("vocli comp4 read (whole-file numpy):", "read"))
        print(line("vocli matching + AP (vectorised):", "score"))
        print(line("vocli read + score:", "read + score"))
        print(line("reference comp4 read (split/float per line):", "ref read"))
        print(line("reference per-detection loop:", "ref score"))
        print(line("reference read + score:", "ref read + score"))
        print(f"ratio reference / vocli, read + score (goal >= 10x): {ratio('ref read + score', 'read + score')}")
        print(f"ratio reference / vocli, scoring only:               {ratio('ref score', 'score')}")
        print(f"ratio reference / vocli, reading only:               {ratio('ref read', 'read')}")

        jsonl = root / "detections.jsonl"
        _write_jsonl(dets, jsonl)
        from_json, wall, cpu = _timed(load_detections, jsonl, VOC_CLASSES)
        same = evaluate_detections(from_json[0], gt, VOC_CLASSES, metric="voc07").map == core.map
        print(f"{'vocli JSON lines read (same detections):':<44s} {wall:6.2f} s wall {cpu:6.2f} s CPU  "
              f"(same mAP: {same})")

        _, t_seq, _ = _timed(voc_ground_truth, sets, VOC_CLASSES, workers=1)
        _, t_par, _ = _timed(voc_ground_truth, sets, VOC_CLASSES)
        print(f"VOC XML ground truth, {images} files: {t_seq:.2f} s in-process, {t_par:.2f} s with "
              f"{os.cpu_count()} worker processes")
        full, t_full, _ = _timed(evaluate, detections=results, root=root, sets="2007/test")
        assert full.map == core.map
        print(f"vocli evaluate, end to end (XML + comp4 + scoring): {t_full:.2f} s;  "
              f"reference read + score / this: {best['ref read + score'][0] / t_full:.1f}x")


def bench_detect(device: str, n_images: int = 32, batch: int = 8, repeats: int = 5) -> None:
    import torch

    from vocli.darknet.cfg import load_cfg
    from vocli.darknet.model import Darknet
    from vocli.detect import detect
    from vocli.images import letterbox, load_image, to_tensor_batch

    torch.manual_seed(0)
    model = Darknet(load_cfg("yolov3-tiny-voc"))
    with torch.no_grad():  # a trained-looking objectness: few boxes above --conf, as in real use
        for head in model.heads:
            conv = model.layers[head.layer_index - 1].conv
            conv.bias.view(len(head.anchor_indices), -1)[:, 4] = -6.0
    model.to(device).eval()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        from PIL import Image

        paths = []
        for i in range(n_images):
            p = Path(tmp) / f"img{i}.jpg"
            Image.fromarray(rng.integers(0, 255, (375, 500, 3), dtype=np.uint8)).save(p, quality=90)
            paths.append(p)
        batches = [to_tensor_batch([letterbox(load_image(p), 416)[0] for p in paths[i:i + batch]]).to(device)
                   for i in range(0, n_images, batch)]

        def sync():
            if device.startswith("cuda"):
                torch.cuda.synchronize()

        def forward_only():
            with torch.inference_mode():
                for x in batches:
                    model(x)
            sync()

        def run_detect(draw: bool):
            detect(paths, None, model=model, img_size=416, out=Path(tmp) / "out", draw=draw, device=device,
                   batch_size=batch)
            sync()

        # Interleaved repeats, best of each: the three runs see the same machine load.
        runs = {"forward": (forward_only,), "detect": (run_detect, False), "draw": (run_detect, True)}
        times = {k: [] for k in runs}
        for fn, *args in runs.values():
            fn(*args)  # warm-up
        for _ in range(repeats):
            for key, (fn, *args) in runs.items():
                t = time.perf_counter()
                fn(*args)
                times[key].append(time.perf_counter() - t)
        t_fwd, t_det, t_draw = (min(times[k]) for k in runs)
        print(f"yolov3-tiny-voc @416, {n_images} images of 500x375, batch {batch}, device {device}, "
              f"torch threads {torch.get_num_threads()}")
        print(f"bare forward on letterboxed batches: {n_images / t_fwd:.1f} images/s")
        print(f"detect (read, letterbox, forward, decode, NMS, map back): {n_images / t_det:.1f} images/s  "
              f"ratio {t_fwd / t_det:.2f}")
        print(f"detect + drawing and saving annotated JPEGs:              {n_images / t_draw:.1f} images/s  "
              f"ratio {t_fwd / t_draw:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--skip-evaluate", action="store_true")
    parser.add_argument("--skip-detect", action="store_true")
    args = parser.parse_args()
    if not args.skip_evaluate:
        bench_evaluate(args.images)
    if not args.skip_detect:
        bench_detect(args.device)

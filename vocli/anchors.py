"""Anchor boxes from data: seeded IoU k-means on box shapes, metrics, cfg rewriting.

Box shapes are ``(w, h)`` relative to their image (0..1]. They become pixels by
multiplying both by ``img_size``, i.e. the image stretched to a square network
input, which is how Darknet resizes and how its ``calc_anchors`` scales.

The result is the same on every machine for the same seed and input: the boxes
are sorted canonically first (input order does not matter), randomness comes
from ``numpy.random.default_rng`` (PCG64, platform independent) with one child
stream per restart (restart ``i`` does not depend on how many restarts run),
ties go to the lowest index, and every float step is an elementwise IEEE
operation or a fixed-order numpy reduction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from vocli.boxes import wh_iou, wh_iou_aligned
from vocli.datasets.box_shapes import load_shapes
from vocli.errors import AnchorError, DarknetFormatError

#: YOLOv3's anchors (COCO, 416 px input), smallest first.
STOCK_YOLOV3_ANCHORS: tuple[tuple[int, int], ...] = (
    (10, 13), (16, 30), (33, 23), (30, 61), (62, 45), (59, 119), (116, 90), (156, 198), (373, 326),
)
Progress = Optional[Callable[[int], None]]
#: Restarts run on a seeded subsample of at most this many boxes; the winner is refined on all.
RESTART_SAMPLE = 4096
#: Lloyd stops when at most this share of boxes changes cluster (0 below 1,000 boxes);
#: the last moves barely change the objective, and the polish step follows anyway.
LLOYD_TOL = 1e-3


# --------------------------------------------------------------------------- results


@dataclass
class AnchorMetrics:
    """How well anchors fit box shapes (both in pixels at the same image size).

    mean_iou: mean over boxes of the IoU (shapes aligned at a common centre) to
    the best anchor. best_possible_recall: share of boxes for which some anchor
    has width and height ratios both within ``ratio_threshold`` (4x, the
    criterion ultralytics uses to let an anchor learn a box).
    anchors_above_threshold: mean number of anchors per box passing that same
    ratio test (how many anchors could predict a typical box).
    """

    mean_iou: float
    best_possible_recall: float
    anchors_above_threshold: float
    ratio_threshold: float = 4.0


@dataclass
class Clustering:
    """Raw k-means output. centres: (k, 2) relative shapes sorted by area."""

    centres: np.ndarray
    mean_iou: float
    best_restart: int
    iterations: int
    converged: bool
    restart_mean_ious: list[float]
    evolve_improvements: int = 0
    distinct_shapes: int = 0  # distinct (w, h) rows of the input


@dataclass
class AnchorResult:
    """What ``vocli anchors`` reports. anchors: k (w, h) pairs in pixels at img_size, by area."""

    anchors: list[tuple[int, int]]
    cfg_anchors: str
    masks: list[list[int]]
    metrics: AnchorMetrics
    stock_metrics: AnchorMetrics
    k: int
    img_size: int
    boxes: int
    images: int
    distinct_shapes: int
    dropped_zero: int
    source: str
    seed: int
    restarts: int
    iters: int
    evolve: int
    update: str
    best_restart: int
    iterations: int
    converged: bool
    anchors_relative: list[tuple[float, float]] = field(default_factory=list)
    missing_labels: int = 0
    cfg_written: Optional[Path] = None
    cfg_sections: int = 0
    plot: Optional[Path] = None
    invalid: list = field(default_factory=list)  # InvalidFile of each annotation left out


# --------------------------------------------------------------------------- distance and metrics


def iou_distance(wh_a: np.ndarray, wh_b: np.ndarray) -> np.ndarray:
    """1 - IoU of shapes aligned at a common centre. wh_a: (N, 2), wh_b: (M, 2) -> (N, M)."""
    return 1.0 - wh_iou(wh_a, wh_b)


def _mean_best_iou(wh: np.ndarray, centres: np.ndarray) -> float:
    """Mean over boxes of the IoU to the best centre (the k-means objective). wh: (N, 2), centres: (K, 2)."""
    return float(np.mean(wh_iou(centres, wh).max(axis=0), dtype=np.float64))


def anchor_metrics(wh: np.ndarray, anchors: np.ndarray, ratio_threshold: float = 4.0) -> AnchorMetrics:
    """Fit of anchors to boxes. wh: (N, 2), anchors: (K, 2), same units (pixels at one size)."""
    wh = np.asarray(wh, dtype=np.float64)
    anchors = np.asarray(anchors, dtype=np.float64)
    # per axis, not as one (N, K, 2) array: a reduction over a last axis of 2 is numpy's slowest
    rw = wh[:, 0:1] / anchors[:, 0]                                  # (N, K)
    rh = wh[:, 1:2] / anchors[:, 1]
    worst = np.minimum(np.minimum(rw, 1.0 / rw), np.minimum(rh, 1.0 / rh))  # (N, K), in (0, 1]
    passes = worst > 1.0 / ratio_threshold
    return AnchorMetrics(
        mean_iou=_mean_best_iou(wh, anchors),
        best_possible_recall=float(passes.any(axis=1).mean()),
        anchors_above_threshold=float(passes.sum(axis=1).mean()),
        ratio_threshold=ratio_threshold,
    )


# --------------------------------------------------------------------------- k-means


def _seed_plus_plus(wh: np.ndarray, k: int, rngs: list[np.random.Generator]) -> np.ndarray:
    """k-means++ seeds, one set per generator: each new centre is a box drawn with
    probability proportional to d^2, d = 1 - IoU to its nearest chosen centre. -> (R, k, 2)."""
    n, r = len(wh), len(rngs)
    centres = np.empty((r, k, 2), dtype=wh.dtype)
    first = np.array([g.integers(n) for g in rngs])
    centres[:, 0] = wh[first]
    dist = 1.0 - wh_iou(wh, centres[:, 0])                         # (N, R)
    for j in range(1, k):
        cdf = np.cumsum(np.square(dist, dtype=np.float64), axis=0)  # sequential, order fixed
        picks = []
        for i, g in enumerate(rngs):
            total = cdf[-1, i]
            u = g.random()
            # total is 0 only when a subsample has fewer than k distinct shapes: the duplicate
            # centre this picks ends up empty and Lloyd moves it to the worst-fitting box.
            picks.append(min(int(np.searchsorted(cdf[:, i], u * total, side="right")), n - 1))
        centres[:, j] = wh[np.array(picks)]
        dist = np.minimum(dist, 1.0 - wh_iou(wh, centres[:, j]))
    return centres


def _grouped_median(values_sorted: np.ndarray, keys: np.ndarray, groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Median of ``values_sorted`` (ascending) per key. keys: (R, N) ints -> medians (groups,), counts."""
    r, n = keys.shape
    flat = keys.ravel()
    order = np.argsort(flat, kind="stable")                          # radix sort on small ints
    vals = np.tile(values_sorted, r)[order]
    counts = np.bincount(flat, minlength=groups)
    starts = np.cumsum(counts) - counts
    lo = np.clip(starts + (counts - 1) // 2, 0, len(vals) - 1)
    hi = np.clip(starts + counts // 2, 0, len(vals) - 1)
    return (vals[lo] + vals[hi]) / 2, counts


def _lloyd(wh: np.ndarray, centres: np.ndarray, iters: int, update: str, tol: float = 0.0):
    """Lloyd iterations for R restarts at once. wh: (N, 2) sorted by w; centres: (R, k, 2).

    A restart stops when at most ``tol * N`` boxes change cluster (none with the
    default 0); only running ones are computed.
    Returns centres, iterations run per restart (R,), converged flags (R,).
    """
    r, k, _ = centres.shape
    centres = centres.copy()
    order_h = np.argsort(wh[:, 1], kind="stable")
    h_sorted = wh[order_h, 1]
    last = np.full((r, len(wh)), -1, dtype=np.int64)
    done = np.zeros(r, dtype=bool)
    iterations = np.zeros(r, dtype=np.int64)
    for _ in range(iters):
        active = np.flatnonzero(~done)
        a = len(active)
        iou = wh_iou(centres[active].reshape(-1, 2), wh).reshape(a, k, -1)   # (A, k, N)
        labels = iou.argmax(axis=1)                                          # first index on ties
        still = (labels != last[active]).sum(axis=1) > int(tol * len(wh))
        done[active[~still]] = True
        if not still.any():
            break
        active, labels, iou = active[still], labels[still], iou[still]
        a = len(active)
        last[active] = labels
        iterations[active] += 1
        keys = labels + (np.arange(a) * k)[:, None]
        keys = keys.astype(np.uint8 if a * k <= 255 else np.uint16 if a * k <= 65535 else np.int64)
        if update == "median":
            new_w, counts = _grouped_median(wh[:, 0], keys, a * k)
            new_h, _ = _grouped_median(h_sorted, keys[:, order_h], a * k)
        else:
            flat = keys.ravel()
            counts = np.bincount(flat, minlength=a * k)
            safe = np.maximum(counts, 1)
            new_w = np.bincount(flat, weights=np.tile(wh[:, 0], a), minlength=a * k) / safe
            new_h = np.bincount(flat, weights=np.tile(wh[:, 1], a), minlength=a * k) / safe
        new = np.stack([new_w, new_h], axis=1).reshape(a, k, 2).astype(wh.dtype)
        empty = (counts == 0).reshape(a, k)
        if empty.any():
            # Move an empty cluster onto the box its restart fits worst (deterministic).
            best = iou.max(axis=1)                                           # (A, N)
            for i, j in zip(*np.nonzero(empty)):
                worst = int(np.argmin(best[i]))
                new[i, j] = wh[worst]
                best[i, worst] = np.inf
        centres[active] = new
    return centres, iterations, done


def _polish(wh: np.ndarray, centres: np.ndarray, rounds: int = 3, step: float = 0.01,
            min_step: float = 1e-3) -> np.ndarray:
    """Coordinate ascent on the true objective after Lloyd. wh: (N, 2), centres: (k, 2), float64.

    The median is only a proxy for the shape that maximises the summed IoU of a
    cluster. Here each centre's width or height is scaled by exp(+-step) while
    that raises its cluster's summed IoU, halving the step when nothing does;
    then boxes are reassigned. Both moves can only raise the mean best IoU.
    """
    moves = np.exp(np.array([[step, 0], [-step, 0], [0, step], [0, -step]]))[:, None, :]  # (4, 1, 2)
    centres = centres.copy()
    labels = wh_iou(centres, wh).argmax(axis=0)
    for _ in range(rounds):
        order = np.argsort(labels, kind="stable")
        grouped = wh[order]                                          # boxes contiguous per cluster
        counts = np.bincount(labels, minlength=len(centres))
        live = np.flatnonzero(counts)
        starts = (np.cumsum(counts) - counts)[live]

        def cluster_sums(cand: np.ndarray) -> np.ndarray:            # cand: (M, k, 2) -> (M, live)
            own = np.repeat(cand[:, live], counts[live], axis=1)
            return np.add.reduceat(wh_iou_aligned(grouped[None], own), starts, axis=1)

        sums = cluster_sums(centres[None])[0]
        start_sums, scale = sums.copy(), 1.0
        while step * scale >= min_step:
            cand = centres[None] * moves ** scale                    # (4, k, 2)
            cand_sums = cluster_sums(cand)
            pick = cand_sums.argmax(axis=0)
            better = cand_sums[pick, np.arange(len(live))] > sums
            if better.any():
                chosen = live[better]
                centres[chosen] = cand[pick[better], chosen]
                sums[better] = cand_sums[pick[better], np.flatnonzero(better)]
            else:
                scale /= 2
        new_labels = wh_iou(centres, wh).argmax(axis=0)
        if not (sums > start_sums).any() or (new_labels == labels).all():
            break
        labels = new_labels
    return np.clip(centres, 1e-9, 1.0)


def _evolve(wh: np.ndarray, centres: np.ndarray, generations: int, rng: np.random.Generator,
            progress: Progress = None) -> tuple[np.ndarray, float, int]:
    """Multiplicative mutations of all centres, kept only when the mean best IoU rises."""
    best = _mean_best_iou(wh, centres)
    kept = 0
    for _ in range(generations):
        factor = np.ones_like(centres)
        while (factor == 1).all():
            mutate = rng.random(centres.shape) < 0.9
            factor = (mutate * rng.random() * rng.standard_normal(centres.shape) * 0.1 + 1).clip(0.3, 3.0)
        candidate = np.clip(centres * factor, 1e-9, 1.0)
        score = _mean_best_iou(wh, candidate)
        if score > best:
            best, centres, kept = score, candidate, kept + 1
        if progress:
            progress(1)
    return centres, best, kept


def _sort_by_area(wh: np.ndarray) -> np.ndarray:
    return wh[np.lexsort((wh[:, 0], wh[:, 0] * wh[:, 1]))]


def kmeans_iou(wh: np.ndarray, k: int, restarts: int = 10, iters: int = 300, seed: int = 0,
               update: str = "median", evolve: int = 0, progress: Progress = None) -> Clustering:
    """Cluster shapes with distance 1 - IoU. wh: (N, 2) > 0 -> ``Clustering`` (centres by area).

    1. k-means++ seeding per restart: each new centre is a box drawn with
       probability proportional to d^2, d = 1 - IoU to the nearest chosen centre.
    2. Lloyd iterations (assign each box to its highest-IoU centre, then move
       each centre to the per-axis **median** of its boxes) until at most
       ``LLOYD_TOL`` of the boxes change cluster, or ``iters``. The median beat
       the mean on VOC-like shapes (mean IoU 0.697 vs 0.690 on the benchmark's
       40,000 boxes, k=9): a cluster's mean is dragged towards its few largest
       boxes, while the IoU of the many small ones drops fastest as it grows.
    3. Restarts run on a seeded subsample of ``RESTART_SAMPLE`` boxes (they
       only choose the basin); the one with the highest mean best IoU on all
       boxes is refined by Lloyd on all boxes in float64, then polished by
       coordinate ascent on the mean best IoU itself (``_polish``). A step that
       would lower the objective is never kept.
    4. ``evolve`` generations of random multiplicative mutations, kept only
       when the mean best IoU rises (optional, slower, small gains).
    """
    if update not in ("median", "mean"):
        raise ValueError(f"unknown update {update!r}; use median or mean")
    if k < 1:
        raise AnchorError(f"k must be at least 1, got {k}")
    if restarts < 1 or iters < 1:
        raise AnchorError(f"restarts and iters must be at least 1, got {restarts} and {iters}")
    wh = np.asarray(wh, dtype=np.float64).reshape(-1, 2)
    if len(wh) == 0:
        raise AnchorError("no boxes to cluster")
    wh = wh[np.lexsort((wh[:, 1], wh[:, 0]))]                        # canonical order
    # Distinct rows of the sorted boxes (np.unique(axis=0) sorts again, 3x slower).
    distinct = 1 + int(np.count_nonzero((wh[1:] != wh[:-1]).any(axis=1)))
    if distinct < k:
        raise AnchorError(f"only {distinct} distinct box shapes for k={k} anchors",
                          hint=f"use --k {distinct} or fewer, or add data")
    work = wh.astype(np.float32)
    sub_stream, evolve_stream, restart_stream = np.random.SeedSequence(seed).spawn(3)
    rngs = [np.random.default_rng(s) for s in restart_stream.spawn(restarts)]
    sample = work
    if len(work) > RESTART_SAMPLE:
        picked = np.random.default_rng(sub_stream).choice(len(work), RESTART_SAMPLE, replace=False)
        sample = work[np.sort(picked)]
    candidates, _, _ = _lloyd(sample, _seed_plus_plus(sample, k, rngs), iters, update, LLOYD_TOL)
    scores = [_mean_best_iou(wh, c.astype(np.float64)) for c in candidates]
    best = int(np.argmax(scores))
    chosen, score, kept = candidates[best].astype(np.float64), scores[best], 0
    # The winner is refined in float64 on all boxes, so its medians are exact.
    refined, iterations, converged = _lloyd(wh, candidates[best:best + 1].astype(np.float64), iters, update, LLOYD_TOL)
    refined = _polish(wh, refined[0])
    refined_score = _mean_best_iou(wh, refined)
    if refined_score >= score:  # Lloyd's update is a proxy; never let it lower the objective
        chosen, score = refined, refined_score
    if progress:
        progress(restarts)
    if evolve > 0:
        chosen, score, kept = _evolve(wh, chosen, evolve, np.random.default_rng(evolve_stream), progress)
    return Clustering(centres=_sort_by_area(chosen), mean_iou=score, best_restart=best,
                      iterations=int(iterations[0]), converged=bool(converged[0]),
                      restart_mean_ious=[float(s) for s in scores], evolve_improvements=kept,
                      distinct_shapes=distinct)


def anchor_masks(k: int, scales: int = 3) -> list[list[int]]:
    """Anchor indices per [yolo] layer in cfg order (coarsest scale, largest anchors, first).

    Anchors (sorted by area) are split into ``scales`` contiguous groups; when k
    is not a multiple of ``scales`` the finer scales get the extra anchors
    (small objects are the most numerous). k=9 -> [[6,7,8],[3,4,5],[0,1,2]].
    """
    if k < scales:
        raise AnchorError(f"k={k} anchors cannot be shared by {scales} [yolo] layers", hint=f"use --k {scales} or more")
    sizes = [k // scales + (1 if i < k % scales else 0) for i in range(scales)]  # finest first
    groups, start = [], 0
    for size in sizes:
        groups.append(list(range(start, start + size)))
        start += size
    return groups[::-1]


# --------------------------------------------------------------------------- the command


def format_cfg_anchors(anchors: Sequence[tuple[int, int]]) -> str:
    """Darknet syntax: ``10,13,  16,30,  33,23``."""
    return ",  ".join(f"{int(w)},{int(h)}" for w, h in anchors)


def compute_anchors(k: int = 9, root=None, sets=None, labels=None, img_size: int = 416,
                    include_difficult: bool = False, restarts: int = 10, iters: int = 300,
                    evolve: int = 0, seed: int = 0, write_cfg=None, plot=None,
                    update: str = "median", progress: Progress = None, workers: Optional[int] = None,
                    cfg=None) -> AnchorResult:
    """Everything ``vocli anchors`` does: load shapes, cluster, measure, optionally write cfg/plot.

    ``write_cfg``: a cfg file whose [yolo] anchors are rewritten in place; with ``cfg`` (a
    shipped name or a cfg path), a new file: a copy of ``cfg`` with the anchors put in.
    """
    if k < 1:
        raise AnchorError(f"--k must be at least 1, got {k}")
    if img_size < 1:
        raise AnchorError(f"--img-size must be positive, got {img_size}")
    if cfg is not None:
        from vocli.darknet.cfg import load_cfg

        if write_cfg is None:
            raise AnchorError("--cfg names the cfg to start from; give the new file with --write-cfg FILE")
        if Path(write_cfg).exists():
            raise DarknetFormatError(f"{write_cfg} exists", hint="drop --cfg to rewrite its anchors in place, "
                                                                  "or choose a new file name")
        load_cfg(cfg)  # an unknown name or a bad cfg fails now, before the clustering
    elif write_cfg is not None and not Path(write_cfg).is_file():
        raise DarknetFormatError(
            f"{write_cfg}: cfg file not found",
            hint=f"start from a shipped cfg: add --cfg yolov3-voc to write {write_cfg} from it "
                 "(`vocli models` lists them), or edit an existing cfg in place")
    shapes = load_shapes(root, sets, labels, include_difficult, progress, workers)
    if len(shapes.wh) == 0:
        dropped = f" ({shapes.dropped_zero} zero-size dropped)" if shapes.dropped_zero else ""
        missing = f" ({shapes.missing_labels} label files missing)" if shapes.missing_labels else ""
        raise AnchorError(f"no boxes found in {shapes.source}{dropped}{missing}",
                          hint="check --root/--sets or --labels, and --include-difficult")
    clustering = kmeans_iou(shapes.wh, k, restarts, iters, seed, update, evolve, progress)
    anchors_px = np.maximum(np.rint(clustering.centres * img_size), 1).astype(np.int64)
    anchors = [(int(w), int(h)) for w, h in anchors_px]
    boxes_px = shapes.wh * img_size
    result = AnchorResult(
        anchors=anchors, cfg_anchors=format_cfg_anchors(anchors), masks=anchor_masks(k, min(3, k)),
        metrics=anchor_metrics(boxes_px, anchors_px), stock_metrics=anchor_metrics(boxes_px, np.array(STOCK_YOLOV3_ANCHORS)),
        k=k, img_size=img_size, boxes=len(shapes.wh), images=shapes.images,
        distinct_shapes=clustering.distinct_shapes, dropped_zero=shapes.dropped_zero,
        source=shapes.source, seed=seed, restarts=restarts, iters=iters, evolve=evolve, update=update,
        best_restart=clustering.best_restart, iterations=clustering.iterations, converged=clustering.converged,
        anchors_relative=[(float(w), float(h)) for w, h in clustering.centres], missing_labels=shapes.missing_labels,
        invalid=shapes.invalid,
    )
    if write_cfg is not None:
        if cfg is not None:
            from vocli.darknet.cfg import export_cfg

            export_cfg(cfg, write_cfg)
        try:
            result.cfg_sections = write_cfg_anchors(write_cfg, anchors)
        except BaseException:
            if cfg is not None:  # a copy that did not take the anchors is no use
                Path(write_cfg).unlink(missing_ok=True)
            raise
        result.cfg_written = Path(write_cfg)
    if plot is not None:
        result.plot = plot_anchors(plot, shapes.wh, anchors_px, img_size, seed)
    return result


def plot_anchors(path, wh: np.ndarray, anchors_px: np.ndarray, img_size: int, seed: int = 0,
                 max_points: int = 5000) -> Path:
    """Scatter of box shapes (a seeded sample of at most ``max_points``) with the anchors on top."""
    from vocli.plotting import scatter_chart

    if len(wh) > max_points:
        wh = wh[np.sort(np.random.default_rng(seed).choice(len(wh), max_points, replace=False))]
    px = wh * img_size
    stock = np.array(STOCK_YOLOV3_ANCHORS)
    return scatter_chart(
        path, {"boxes": (px[:, 0].tolist(), px[:, 1].tolist())},
        title=f"{len(anchors_px)} anchors at {img_size} px", xlabel="width (px)", ylabel="height (px)",
        highlight={"anchors": (anchors_px[:, 0].tolist(), anchors_px[:, 1].tolist()),
                   "YOLOv3 stock": (stock[:, 0].tolist(), stock[:, 1].tolist())},
    )


# --------------------------------------------------------------------------- cfg rewriting

_OPTION_LINE = re.compile(r"^(\s*[A-Za-z_]+\s*=\s*)(.*?)(\s*(?:#.*)?)$", re.S)


def write_cfg_anchors(path, anchors: Sequence[tuple[int, int]]) -> int:
    """Set ``anchors=`` and ``num=`` of every [yolo] section of a cfg file, in place, atomically.

    Every other byte stays as it was (line endings, spacing, comments). When the
    anchor count changes, ``mask=`` is rewritten too (``anchor_masks``) and so is
    the ``filters=`` of the convolution feeding each [yolo] layer
    (``len(mask) * (5 + classes)``), because the old masks would point at the
    wrong anchors and the head would have the wrong number of outputs. With the
    same count, hand-made masks are kept. Returns the number of [yolo] sections.
    """
    from vocli.darknet.cfg import parse_cfg, yolo_anchors_and_mask
    from vocli.paths import atomic_write_bytes

    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DarknetFormatError(f"{path}: cfg file not found") from None
    text = raw.decode("utf-8", errors="surrogateescape")
    cfg = parse_cfg(text, source=str(path))
    yolos = cfg.yolo_layers
    if not yolos:
        raise DarknetFormatError(f"{path}: no [yolo] section to put anchors in")
    k = len(anchors)
    count_changes = any(len(yolo_anchors_and_mask(y)[0]) != k for y in yolos)
    masks = anchor_masks(k, len(yolos)) if count_changes else None
    lines = text.splitlines(keepends=True)
    replace: dict[int, str] = {}                  # 0-based line -> new value
    inserts: dict[int, list[str]] = {}            # after 0-based header line -> "key=value"

    def set_option(section, key: str, value: str) -> None:
        if key in section.option_lines:
            replace[section.option_lines[key] - 1] = value
        else:
            inserts.setdefault(section.line - 1, []).append(f"{key}={value}")

    for i, yolo in enumerate(yolos):
        set_option(yolo, "anchors", format_cfg_anchors(anchors))
        set_option(yolo, "num", str(k))
        if masks is not None:
            set_option(yolo, "mask", ",".join(str(m) for m in masks[i]))
            conv = cfg.layers[yolo.index - 1] if yolo.index > 0 else None
            if conv is None or conv.kind != "convolutional":
                raise DarknetFormatError(f"{path}:{yolo.line}: [yolo] must follow a [convolutional] "
                                         "layer to change the anchor count")
            set_option(conv, "filters", str(len(masks[i]) * (5 + yolo.get_int("classes", 20))))
    out = []
    for n, line in enumerate(lines):
        body = line.rstrip("\r\n")
        ending = line[len(body):]
        if n in replace:
            m = _OPTION_LINE.match(body)
            body = m.group(1) + replace[n] + m.group(3)
        out.append(body + ending)
        if n in inserts:
            eol = ending or "\n"
            if not ending:
                out[-1] += eol
            out.extend(f"{opt}{eol}" for opt in inserts[n])
    new_text = "".join(out)
    parse_cfg(new_text, source=str(path))         # never write a cfg our own parser rejects
    atomic_write_bytes(path, new_text.encode("utf-8", errors="surrogateescape"))
    return len(yolos)

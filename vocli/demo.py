"""``vocli demo``: the whole pipeline on the generated shapes set, ending with a working detector.

Each step calls the same library function its command runs, with the same
arguments, and reports that command line (``StepInfo.command``) so a user can
copy it: fetch shapes -> convert yolo -> convert ssd -> anchors (written into a
copy of yolov3-tiny-voc re-classed to the shapes classes, filters halved) ->
train -> evaluate (per-class AP, PR plots) -> detect (annotated images).

Sizing: before anything else the demo times a few training steps of the model
on this machine with 1 thread and with every core (on a machine other jobs
share, one thread is often several times faster: the threads of a parallel
operation wait for each other while one of them is descheduled) and trains
with the faster. Training gets what is left of ``minutes`` after the steps
before it and an estimate of evaluation and detection. When the time allows
well over what the recipe needs, it evaluates on the val split after every
epoch and stops as soon as that mAP reaches ``TARGET_VAL_MAP``; otherwise (or
when that never happens) it stops when its time is up (the LR schedule follows
the clock, so it ends annealed).
From the measured speed the demo predicts how many training images fit in the
budget; when that is short of what the recipe needs it says so before
training, with the ``--minutes`` that would do. The result says whether the
model works (``reached``: mAP@0.5 >= ``MAP_GOAL`` on the test split and
detections drawn); the CLI exits 1 when it does not.
"""

from __future__ import annotations

import math
import os
import re
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from vocli.errors import VocliError

DEFAULT_OUT = "vocli-demo"
CFG_BASE = "yolov3-tiny-voc"  # two heads, masks 3,4,5 and 0,1,2: all six anchors used
CFG_NAME = "yolov3-tiny-shapes.cfg"
#: Filters of every convolution but the heads' outputs, relative to yolov3-tiny-voc. Half the filters is
#: about a quarter of the multiply-adds and twice the training images/s on 2 CPU cores; on the shapes set it
#: learns about as much per training image as the full width (see docs/demo.md).
WIDTH = 0.5
ANCHORS_K = 6
SHAPES_SIZE = 256  # generated image side (the shapes default); training letterboxes to img_size
DETECT_IMAGES = 8
SPLITS = "shapes/train,shapes/val"  # YOLO lists: train.txt trains, the val list (test.txt) stops training
TRAIN_SETS = "shapes/trainval,shapes/test"  # for the SSD targets: one file per set
TEST_SET = "shapes/test"
#: What the demo must end with: VOC mAP@0.5 on the test split, and detections drawn.
MAP_GOAL = 0.5
#: Training stops after the first epoch whose mAP@0.5 on the val split reaches this (above MAP_GOAL:
#: the val split is small, so its mAP is noisy).
TARGET_VAL_MAP = 0.65
#: Training images (batch steps x batch size) the recipe needs to pass MAP_GOAL on the test split at 160 px,
#: with the LR schedule ending with the time (measured: 3,732 images gave 0.45, 6,000 gave 0.50 on val;
#: see docs/demo.md).
IMAGES_NEEDED = 5000
#: Evaluating on val after every epoch (to stop at TARGET_VAL_MAP) pays only when this many times
#: IMAGES_NEEDED fit in the time; below it training runs to the time limit without evaluations.
EVAL_WHEN = 1.5
#: Real training runs at about this share of the probe's bare step rate (loss assignment, EMA, evaluations;
#: measured 0.82 and 0.86 on the shared machine).
TRAIN_EFFICIENCY = 0.8

# Training recipe for a from-scratch tiny model in a few minutes. Measured on 300 shapes images
# at 160 px: after 10 epochs AdamW 1e-3, batch 8, no augmentation reached mAP 0.29 where the
# trainer's defaults (SGD 0.01, batch 16, augmentation) reached 0.03; in 3-epoch trials LR 3e-3
# and batch 4 did worse than 1e-3 and batch 8. Cached images without augmentation cost next to
# nothing to load, so no loader process competes with the model for the cores.
BATCH_SIZE = 8
LR = 0.001
OPTIMIZER = "adam"
WARMUP_EPOCHS = 0.5
AUGMENT = False
WORKERS = 0
MAX_EPOCHS = 100  # a ceiling: on CPU the time limit ends training long before
#: Evaluation and detection cost this many bare forward passes per image (decode, NMS, scoring, drawing).
INFERENCE_OVERHEAD = 1.5
#: The speed probe stops timing a thread count that runs below this share of the best one's rate.
SLOW_CANDIDATE = 0.4
#: A bare forward pass is about this many times faster per image than a training step.
INFERENCE_SPEEDUP = 2.5
#: Fixed costs of each of the evaluate and detect steps (loading the model, ground truth, plots), seconds.
INFERENCE_FIXED_S = 3.0
#: Kept free at the end: share of the budget, at least SAFETY_MIN_S seconds.
SAFETY_SHARE, SAFETY_MIN_S = 0.04, 2.0


@dataclass
class StepInfo:
    """A step about to run: its name and the equivalent command line (``argv`` without ``vocli``)."""

    name: str
    command: str
    argv: list[str]
    note: str = ""  # what the demo does besides the command (e.g. writes the class list)


@dataclass
class StepResult:
    """A finished step: how long it took, what it wrote (label -> path) and a one-line summary."""

    name: str
    command: str
    seconds: float
    outputs: dict[str, Any]
    summary: str
    note: str = ""


@dataclass
class SpeedProbe:
    """Measured training speed of the demo's model at the training size (forward, backward, AdamW step).

    ``images_per_s`` is the rate with ``threads``, the fastest of ``rates`` (threads -> images/s).
    """

    images_per_s: float
    seconds: float
    threads: int = 1
    rates: dict[int, float] = field(default_factory=dict)


@dataclass
class DemoResult:
    """Everything the demo did. ``map`` is the VOC mAP@0.5 of the trained weights (last.pt) on the test split."""

    out: Path
    steps: list[StepResult]
    map: float
    metric: str
    ap_per_class: dict[str, float]
    paths: dict[str, Any]
    seconds: float
    budget_seconds: float
    device: str
    images: int
    img_size: int
    seed: int
    epochs: int  # the epoch ceiling given to train (the target or the time limit ends it first)
    epochs_run: int
    train_stopped: str  # "target_map", "time_limit" or "completed"
    train_budget_seconds: float
    probe: Optional[SpeedProbe] = None
    threads: int = 1
    images_trained: int = 0  # training images seen (all epochs)
    images_predicted: int = 0  # what the probe predicted would fit in the training time
    detections: int = 0  # boxes drawn on the detect images
    reached: bool = False  # map >= MAP_GOAL and detections > 0: the model works
    advice: str = ""  # when not reached: what to do, with the --minutes to pass
    suggested_minutes: Optional[int] = None


def _command(argv: list[str]) -> str:
    return "vocli " + shlex.join(argv)


def _p(path: Path) -> str:
    return str(path)


def training_seconds(budget_s: float, elapsed_s: float, probe: SpeedProbe, test_images: int,
                     detect_images: int) -> float:
    """Seconds left for training after evaluation, detection and a margin (at least 1).

    Evaluation and detection: ``INFERENCE_OVERHEAD`` bare forward passes per image, a forward
    pass taking 1 / ``INFERENCE_SPEEDUP`` of a training step's time per image, plus
    ``INFERENCE_FIXED_S`` each; margin: ``SAFETY_SHARE`` of the budget.
    """
    return max(1.0, budget_s - elapsed_s - _after_training_s(budget_s, probe, test_images, detect_images))


def _after_training_s(budget_s: float, probe: SpeedProbe, test_images: int, detect_images: int) -> float:
    infer_rate = max(probe.images_per_s * INFERENCE_SPEEDUP, 1e-6)
    infer = (test_images + detect_images) * INFERENCE_OVERHEAD / infer_rate
    return infer + 2 * INFERENCE_FIXED_S + max(SAFETY_MIN_S, SAFETY_SHARE * budget_s)


def predicted_images(train_s: float, probe: SpeedProbe) -> int:
    """Training images that fit in ``train_s`` at the probed rate (times ``TRAIN_EFFICIENCY``)."""
    return int(train_s * probe.images_per_s * TRAIN_EFFICIENCY)


def suggested_minutes(elapsed_s: float, probe: SpeedProbe, test_images: int, detect_images: int) -> int:
    """Whole minutes of budget in which training fits ``IMAGES_NEEDED`` images at the probed rate.

    The steps before training take ``elapsed_s`` again; a quarter more for the machine's ups and downs.
    """
    train_s = IMAGES_NEEDED / max(probe.images_per_s * TRAIN_EFFICIENCY, 1e-6)
    fixed = elapsed_s + train_s + _after_training_s(0.0, probe, test_images, detect_images)
    budget_s = fixed / (1.0 - SAFETY_SHARE)  # the margin grows with the budget
    return max(1, math.ceil(1.25 * budget_s / 60.0))


def demo_cfg_text(num_classes: int, width: float = WIDTH) -> str:
    """yolov3-tiny-voc re-classed to ``num_classes``, every convolution but the heads' outputs at ``width``."""
    from vocli.darknet.cfg import load_cfg

    cfg = load_cfg(CFG_BASE).with_classes(num_classes)
    if width == 1.0:
        return cfg.text
    outputs = 3 * (5 + num_classes)  # filters of the convolution feeding each [yolo]

    def scale(match: "re.Match[str]") -> str:
        filters = int(match.group(2))
        return match.group(1) + str(filters if filters == outputs else max(8, int(round(filters * width))))

    return re.sub(r"^(\s*filters\s*=\s*)(\d+)", scale, cfg.text, flags=re.M)


def probe_speed(cfg_text: str, img_size: int, device: str, batch: int = 4, rounds: int = 2) -> SpeedProbe:
    """Time training steps (forward, backward, AdamW) of the model on random input, per thread count.

    On CPU it tries 1 thread and every usable core, ``rounds`` times each, alternating
    (a shared machine's load changes by the second), and keeps each count's best round;
    a count whose first (warm-up) step already runs below ``SLOW_CANDIDATE`` of the best
    rate is not timed further. Torch's thread count is restored afterwards.
    """
    import torch

    from vocli.darknet.cfg import parse_cfg
    from vocli.darknet.model import Darknet
    from vocli.yolo.setup import resolve_device

    started = time.perf_counter()
    dev = resolve_device(device)
    model = Darknet(parse_cfg(cfg_text)).to(dev).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR)
    x = torch.rand(batch, 3, img_size, img_size, generator=torch.Generator().manual_seed(0)).to(dev)

    def step() -> None:
        loss = sum(out.float().square().mean() for out in model(x))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    previous = torch.get_num_threads()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    candidates = sorted({1, cores}) if dev.type == "cpu" else [previous]
    rates: dict[int, float] = {}

    def timed(steps: int) -> float:
        t = time.perf_counter()
        for _ in range(steps):
            step()
        return steps * batch / (time.perf_counter() - t)

    try:
        for round_ in range(rounds):
            for threads in candidates:
                torch.set_num_threads(threads)
                if round_ == 0:
                    warm = timed(1)  # warm-up (allocator, kernels for this thread count), timed as a bound
                    if rates and warm < SLOW_CANDIDATE * max(rates.values()):
                        rates[threads] = warm  # clearly slower even counting the warm-up: no more time on it
                        continue
                elif rates[threads] < SLOW_CANDIDATE * max(rates.values()):
                    continue
                rates[threads] = max(rates.get(threads, 0.0), timed(2))
    finally:
        torch.set_num_threads(previous)
    best = max(rates, key=lambda n: (rates[n], -n))
    return SpeedProbe(rates[best], time.perf_counter() - started, best, rates)


def _split_ids(root: Path, split: str) -> list[str]:
    from vocli.datasets.voc import read_split

    return read_split(root / "VOCdevkit" / "VOCshapes" / "ImageSets" / "Main" / f"{split}.txt")


def demo(out: str | os.PathLike = DEFAULT_OUT, minutes: float = 5.0, device: str = "cpu", images: int = 1000,
         img_size: int = 160, seed: int = 0, on_step: Optional[Callable[[StepInfo], None]] = None,
         on_done: Optional[Callable[[StepResult, Any], None]] = None,
         train_progress: Optional[Callable[[Any], None]] = None) -> DemoResult:
    """Run the pipeline on ``images`` generated shapes images under ``out`` within ``minutes``.

    ``on_step(StepInfo)`` is called before each step (the CLI prints the command);
    ``on_done(StepResult, library_result)`` after it; ``train_progress`` receives the
    trainer's ``TrainEvent``s. Paths in commands are absolute. ``DemoResult.reached``
    says whether the model works; when not, ``advice`` says what to pass.
    Re-running with the same ``out`` reuses the fetched data and rewrites every output.
    """
    if minutes <= 0:
        raise VocliError(f"--minutes must be positive, got {minutes}")
    if img_size < 32 or img_size % 32:
        raise VocliError(f"--img-size {img_size} is not a positive multiple of 32", hint="e.g. 160")
    if images < 10:
        raise VocliError(f"--images {images} is too few to split into train, val and test", hint="use 10 or more")
    started = time.perf_counter()
    budget_s = minutes * 60.0
    # Absolute paths: the printed commands then work from any folder (and `fetch` needs one for
    # the file:// URL of the generated tar).
    out = Path(out).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    data_root = out / "data"
    steps: list[StepResult] = []

    def run(name: str, argv: list[str], call: Callable[[], Any], describe: Callable[[Any], tuple[dict, str]],
            note: str = "") -> Any:
        info = StepInfo(name, _command(argv), argv, note)
        if on_step:
            on_step(info)
        t = time.perf_counter()
        result = call()
        outputs, summary = describe(result)
        step = StepResult(name, info.command, time.perf_counter() - t, outputs, summary, note)
        steps.append(step)
        if on_done:
            on_done(step, result)
        return result

    # 0. how fast does this machine train the demo's model, and with how many threads?
    from vocli.datasets.shapes import SHAPES_CLASSES

    cfg_text = demo_cfg_text(len(SHAPES_CLASSES))
    probe = probe_speed(cfg_text, img_size, device)

    # 1. fetch: generate, pack, verify and extract like a downloaded VOC tar
    from vocli.fetch import fetch

    fetched = run(
        "fetch",
        ["fetch", "shapes", "--root", _p(data_root), "--images", str(images), "--size", str(SHAPES_SIZE),
         "--seed", str(seed)],
        lambda: fetch(["shapes"], root=data_root, images=images, size=SHAPES_SIZE, seed=seed),
        lambda r: ({"dataset": r.items[0].tree, "tar": r.items[0].files[0].path},
                   ", ".join(f"{k} {v}" for k, v in r.items[0].splits.items()) +
                   (" (already fetched)" if r.items[0].files[0].skipped else "")))
    voc_dir = fetched.items[0].tree

    # 2. convert yolo: labels, lists, .names, .data (class list written first: convert takes a file).
    # train.txt is the train split; with no test set converted, the .data's valid list is the val split,
    # on which training measures when to stop. The test split is scored from its XML in step 6.
    from converters.voc_to_yolo import convert_yolo
    from vocli.paths import atomic_write_text

    names_file = out / "shapes.names"
    atomic_write_text(names_file, "".join(f"{c}\n" for c in SHAPES_CLASSES))
    yolo = run(
        "convert yolo",
        ["convert", "yolo", "--root", _p(data_root), "--sets", SPLITS, "--classes", _p(names_file),
         "--out", _p(out)],
        lambda: convert_yolo(root=data_root, sets=SPLITS, out=out, classes=names_file),
        lambda r: ({"data_file": r.data_file, "labels": r.out / voc_dir.name / "labels", "train_list": r.train_list,
                    "valid_list": r.test_list},
                   ", ".join(f"{s.name} {s.images} images / {s.objects} objects" for s in r.sets)),
        note=f"wrote the class list {names_file} ({', '.join(SHAPES_CLASSES)}), one name per line")
    _no_invalid(yolo, "convert yolo")
    data_file = out / yolo.data_file.name

    # 3. convert ssd: SSD300 prior matching, one HDF5 per set
    from converters.ssd_targets import build_ssd_targets

    ssd_dir = out / "ssd"
    ssd = run(
        "convert ssd",
        ["convert", "ssd", "--root", _p(data_root), "--sets", TRAIN_SETS, "--classes", _p(names_file),
         "--out", _p(ssd_dir)],
        lambda: build_ssd_targets(root=data_root, sets=TRAIN_SETS, out=ssd_dir, classes=names_file),
        lambda r: ({f.set: f.path for f in r.files},
                   f"SSD{r.size}, {r.num_priors} priors; " + ", ".join(
                       f"{f.set} {f.images} images, {f.positives_per_image:.1f} positives/image" for f in r.files)))
    _no_invalid(ssd, "convert ssd")

    # 4. anchors: k-means on the YOLO labels at the training size, into the demo's cfg
    from vocli.anchors import compute_anchors

    cfg_path = out / CFG_NAME
    atomic_write_text(cfg_path, cfg_text)
    width_note = "" if WIDTH == 1.0 else f", filters x{WIDTH:g}"
    run(
        "anchors",
        ["anchors", "--k", str(ANCHORS_K), "--labels", _p(data_file), "--img-size", str(img_size),
         "--seed", str(seed), "--write-cfg", _p(cfg_path)],
        lambda: compute_anchors(k=ANCHORS_K, labels=data_file, img_size=img_size, seed=seed, write_cfg=cfg_path),
        lambda r: ({"cfg": cfg_path},
                   f"anchors = {r.cfg_anchors}; mean IoU {r.metrics.mean_iou:.3f} "
                   f"(stock YOLOv3 {r.stock_metrics.mean_iou:.3f})"),
        note=f"copied {CFG_BASE} re-classed to {len(SHAPES_CLASSES)} classes{width_note} to {cfg_path}")

    # 5. train within what is left of the budget, stopping early once the val mAP reaches the target
    from vocli.yolo.train import train

    test_ids = _split_ids(data_root, "test")
    detect_count = min(DETECT_IMAGES, len(test_ids))
    elapsed = time.perf_counter() - started
    train_s = training_seconds(budget_s, elapsed, probe, len(test_ids), detect_count)
    time_limit = max(0.01, round(train_s / 60.0, 2))
    train_s = time_limit * 60.0
    expected = predicted_images(train_s, probe)
    advice_minutes = suggested_minutes(elapsed, probe, len(test_ids), detect_count)
    epochs = MAX_EPOCHS
    run_dir = out / "train"
    for stale in ("best.pt", "last.pt"):  # old checkpoints of an earlier demo go
        (run_dir / stale).unlink(missing_ok=True)
    speeds = ", ".join(f"{n} thread{'s' if n > 1 else ''} {r:.1f}" for n, r in sorted(probe.rates.items()))
    note = (f"measured {speeds} training images/s: training with {probe.threads} thread"
            f"{'s' if probe.threads > 1 else ''}; about {expected:,} images fit in {train_s / 60:.1f} min "
            f"(the recipe needs about {IMAGES_NEEDED:,})")
    eval_every = 1 if expected >= EVAL_WHEN * IMAGES_NEEDED else 0
    if not eval_every:
        note += f"; no val evaluations (the val mAP cannot reach {TARGET_VAL_MAP:g} before the time is up)"
    if expected < IMAGES_NEEDED:
        note += (f". This machine is too slow for a working model in {minutes:g} min: "
                 f"expect a weak one, or stop and run `vocli demo --minutes {advice_minutes}`")
    trained = run(
        "train",
        ["train", "--data", _p(data_file), "--cfg", _p(cfg_path), "--img-size", str(img_size),
         "--epochs", str(epochs), "--batch-size", str(BATCH_SIZE), "--accumulate", "1", "--optimizer", OPTIMIZER,
         "--lr", f"{LR:g}", "--warmup-epochs", f"{WARMUP_EPOCHS:g}", "--augment" if AUGMENT else "--no-augment",
         "--cache", "--workers", str(WORKERS), "--threads", str(probe.threads),
         "--eval-every", str(eval_every), *(["--target-map", f"{TARGET_VAL_MAP:g}"] if eval_every else []),
         "--time-limit", f"{time_limit:g}",
         "--seed", str(seed), "--device", device, "--out", _p(run_dir)],
        lambda: train(data=str(data_file), cfg=str(cfg_path), img_size=img_size, epochs=epochs,
                      batch_size=BATCH_SIZE, accumulate=1, optimizer=OPTIMIZER, lr=LR,
                      warmup_epochs=WARMUP_EPOCHS, augment=AUGMENT, cache=True, workers=WORKERS,
                      threads=probe.threads, eval_every=eval_every,
                      target_map=TARGET_VAL_MAP if eval_every else None, time_limit=time_limit,
                      seed=seed, device=device, out=str(run_dir), progress=train_progress),
        lambda r: ({"weights": r.best, "last": r.last, "metrics": Path(r.out) / "metrics.csv",
                    "curves": Path(r.out) / "results.png"},
                   f"{r.epochs_run} epochs ({_STOPPED.get(r.stopped, r.stopped)}), "
                   + (f"best val mAP@0.5 {r.best_map:.3f} (epoch {r.best_epoch}), " if r.best_map is not None else "")
                   + f"{sum(m.images for m in r.metrics):,} images"),
        note=note)
    weights = trained.best  # the epoch with the best val mAP (the last one without evaluations)

    # 6. evaluate the best weights on the test split from the VOC XML (difficult flags count as in the devkit)
    from vocli.evaluate import evaluate

    eval_dir = out / "eval"
    evaluated = run(
        "evaluate",
        ["evaluate", "--weights", _p(weights), "--root", _p(data_root), "--sets", TEST_SET,
         "--img-size", str(img_size), "--device", device, "--plots", _p(eval_dir)],
        lambda: evaluate(weights=weights, root=data_root, sets=TEST_SET, img_size=img_size, device=device,
                         plots=eval_dir),
        lambda r: ({"pr_curves": eval_dir / "pr_curves.png", "ap_per_class": eval_dir / "ap_per_class.png"},
                   f"mAP ({r.metric}) {r.map:.4f} on {r.num_images} images: " +
                   ", ".join(f"{c.name} {c.ap:.3f}" for c in r.per_class)))

    # 7. detect on the first test images: annotated copies
    from vocli.detect import detect

    detect_dir = out / "detect"
    sources = [voc_dir / "JPEGImages" / f"{i}.jpg" for i in test_ids[:DETECT_IMAGES]]
    for old in detect_dir.glob("*.jpg") if detect_dir.is_dir() else ():
        old.unlink()  # images of an earlier demo with other test ids
    detected = run(
        "detect",
        ["detect", *map(_p, sources), "--weights", _p(weights), "--img-size", str(img_size),
         "--device", device, "--out", _p(detect_dir), "--exist-ok"],
        lambda: detect(sources, weights, img_size=img_size, device=device, out=detect_dir, exist_ok=True),
        lambda r: ({"images": sorted(detect_dir.glob("*.jpg"))},
                   f"{r.num_detections} detections in {r.images} images: " +
                   ", ".join(f"{k} {v}" for k, v in r.counts.items())))

    paths = {
        "dataset": voc_dir, "data_file": data_file, "names": names_file, "labels": out / voc_dir.name / "labels",
        "ssd": [f.path for f in ssd.files], "cfg": cfg_path, "weights": weights,
        "train_curves": Path(trained.out) / "results.png", "pr_curves": eval_dir / "pr_curves.png",
        "ap_per_class": eval_dir / "ap_per_class.png", "detect": detect_dir,
        "detect_images": sorted(detect_dir.glob("*.jpg")),
    }
    ap = {c.name: c.ap for c in evaluated.per_class}
    result = DemoResult(
        out=out, steps=steps, map=float(evaluated.map), metric=evaluated.metric, ap_per_class=ap, paths=paths,
        seconds=time.perf_counter() - started, budget_seconds=budget_s, device=device, images=images,
        img_size=img_size, seed=seed, epochs=epochs, epochs_run=trained.epochs_run, train_stopped=trained.stopped,
        train_budget_seconds=train_s, probe=probe, threads=probe.threads,
        images_trained=sum(m.images for m in trained.metrics), images_predicted=expected,
        detections=int(detected.num_detections))
    result.reached = result.map >= MAP_GOAL and result.detections > 0
    if not result.reached:
        # What the whole run showed, not only the probe: the rate training really had.
        rate = result.images_trained / max(trained.seconds, 1e-6)
        measured = SpeedProbe(rate / TRAIN_EFFICIENCY, 0.0, probe.threads, probe.rates)
        # At least half as much time again: a run that trained the images the recipe needs and still fell
        # short needs more of them, not the same number.
        result.suggested_minutes = max(suggested_minutes(elapsed, measured, len(test_ids), detect_count),
                                       math.ceil(minutes * 1.5))
        shortfall = (f"mAP@0.5 {result.map:.2f} is below {MAP_GOAL:g}" if result.map < MAP_GOAL
                     else "no detections were drawn")
        needed = (f"; the recipe needs about {IMAGES_NEEDED:,}" if result.images_trained < IMAGES_NEEDED else "")
        result.advice = (f"the model does not work yet: {shortfall} after {result.images_trained:,} training images "
                         f"({result.epochs_run} epochs, {rate:.1f} images/s with {probe.threads} thread"
                         f"{'s' if probe.threads > 1 else ''}){needed}. "
                         f"Give it more time: vocli demo --minutes {result.suggested_minutes}")
    return result


_STOPPED = {"target_map": "val mAP target reached", "time_limit": "time limit", "completed": "all epochs done"}


def _no_invalid(result, step: str) -> None:
    if result.invalid:
        first = result.invalid[0]
        raise VocliError(f"{step}: {len(result.invalid)} invalid annotation(s), first {first.path}: {first.reason}",
                         hint="run `vocli fetch shapes --force` to generate the data again")

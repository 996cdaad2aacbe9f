"""``vocli demo``: the whole pipeline on the generated shapes set, within a time budget.

Each step calls the same library function its command runs, with the same
arguments, and reports that command line (``StepInfo.command``) so a user can
copy it: fetch shapes -> convert yolo -> convert ssd -> anchors (written into a
copy of yolov3-tiny-voc re-classed to the shapes classes) -> train -> evaluate
(per-class AP, PR plots) -> detect (annotated images).

Budget: everything but training is cheap or bounded by the test-set size, so
training gets what is left of ``minutes`` after the steps before it and an
estimate of evaluation and detection, made from a short forward-pass probe of
the model on this machine. Training runs to ``--time-limit`` (``--epochs`` is
only a ceiling for fast machines); the trainer paces its LR schedule by the
clock under a time limit, so the schedule ends with the time.
"""

from __future__ import annotations

import os
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from vocli.errors import VocliError

DEFAULT_OUT = "vocli-demo"
CFG_BASE = "yolov3-tiny-voc"  # two heads, masks 3,4,5 and 0,1,2: all six anchors used
CFG_NAME = "yolov3-tiny-shapes.cfg"
ANCHORS_K = 6
SHAPES_SIZE = 256  # generated image side (the shapes default); training letterboxes to img_size
DETECT_IMAGES = 8
SPLITS = "shapes/train,shapes/val,shapes/test"
TRAIN_SETS = "shapes/trainval,shapes/test"  # for the SSD targets: one file per set
TEST_SET = "shapes/test"

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
    """Measured inference speed of the model at the training size (bare forward, no gradients)."""

    images_per_s: float
    seconds: float


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
    epochs: int  # the epoch ceiling given to train (the time limit usually ends it first)
    epochs_run: int
    train_stopped: str  # "completed" or "time_limit"
    train_budget_seconds: float
    probe: Optional[SpeedProbe] = None


def _command(argv: list[str]) -> str:
    return "vocli " + shlex.join(argv)


def _p(path: Path) -> str:
    return str(path)


def training_seconds(budget_s: float, elapsed_s: float, probe: SpeedProbe, test_images: int,
                     detect_images: int) -> float:
    """Seconds left for training after evaluation, detection and a margin (at least 1).

    Evaluation and detection: ``INFERENCE_OVERHEAD`` bare forward passes per image at the
    probe's speed plus ``INFERENCE_FIXED_S`` each; margin: ``SAFETY_SHARE`` of the budget.
    """
    infer = (test_images + detect_images) * INFERENCE_OVERHEAD / max(probe.images_per_s, 1e-6)
    after = infer + 2 * INFERENCE_FIXED_S + max(SAFETY_MIN_S, SAFETY_SHARE * budget_s)
    return max(1.0, budget_s - elapsed_s - after)


def probe_speed(cfg_path: Path, img_size: int, device: str, batch: int = 8) -> SpeedProbe:
    """Time the bare model's forward pass on random input (two warm-ups, then two timed)."""
    import torch

    from vocli.darknet.cfg import load_cfg
    from vocli.darknet.model import Darknet
    from vocli.yolo.setup import resolve_device

    started = time.perf_counter()
    dev = resolve_device(device)
    model = Darknet(load_cfg(cfg_path)).to(dev).eval()
    x = torch.rand(batch, 3, img_size, img_size, generator=torch.Generator().manual_seed(0)).to(dev)

    def forward() -> float:
        t = time.perf_counter()
        with torch.no_grad():
            model(x)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        return time.perf_counter() - t

    forward(), forward()  # warm-up: allocator, kernel selection
    timed = forward() + forward()
    return SpeedProbe(2 * batch / timed, time.perf_counter() - started)


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
    trainer's ``TrainEvent``s. Paths in commands are absolute.
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

    # 2. convert yolo: labels, lists, .names, .data (class list written first: convert takes a file)
    from converters.voc_to_yolo import convert_yolo
    from vocli.datasets.shapes import SHAPES_CLASSES
    from vocli.paths import atomic_write_text

    names_file = out / "shapes.names"
    atomic_write_text(names_file, "".join(f"{c}\n" for c in SHAPES_CLASSES))
    yolo = run(
        "convert yolo",
        ["convert", "yolo", "--root", _p(data_root), "--sets", SPLITS, "--classes", _p(names_file),
         "--out", _p(out)],
        lambda: convert_yolo(root=data_root, sets=SPLITS, out=out, classes=names_file),
        lambda r: ({"data_file": r.data_file, "labels": r.out / voc_dir.name / "labels", "train_list": r.train_list,
                    "test_list": r.test_list},
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

    # 4. anchors: k-means on the YOLO labels at the training size, into a copy of the cfg
    from vocli.anchors import compute_anchors
    from vocli.darknet.cfg import load_cfg

    cfg_path = out / CFG_NAME
    atomic_write_text(cfg_path, load_cfg(CFG_BASE).with_classes(len(SHAPES_CLASSES)).text)
    run(
        "anchors",
        ["anchors", "--k", str(ANCHORS_K), "--labels", _p(data_file), "--img-size", str(img_size),
         "--seed", str(seed), "--write-cfg", _p(cfg_path)],
        lambda: compute_anchors(k=ANCHORS_K, labels=data_file, img_size=img_size, seed=seed, write_cfg=cfg_path),
        lambda r: ({"cfg": cfg_path},
                   f"anchors = {r.cfg_anchors}; mean IoU {r.metrics.mean_iou:.3f} "
                   f"(stock YOLOv3 {r.stock_metrics.mean_iou:.3f})"),
        note=f"copied {CFG_BASE} re-classed to {len(SHAPES_CLASSES)} classes to {cfg_path}")

    # 5. train within what is left of the budget
    from vocli.yolo.train import train

    test_ids = _split_ids(data_root, "test")
    probe = probe_speed(cfg_path, img_size, device)
    train_s = training_seconds(budget_s, time.perf_counter() - started, probe, len(test_ids),
                               min(DETECT_IMAGES, len(test_ids)))
    epochs = MAX_EPOCHS
    time_limit = max(0.01, round(train_s / 60.0, 2))
    train_s = time_limit * 60.0
    run_dir = out / "train"
    # Training evaluates nothing (the next step does, once, with plots), so there is no "best"
    # epoch: evaluate and detect use last.pt, the weights at the time limit. (With --eval-every 0
    # the trainer writes best.pt only after the first epoch.) Old checkpoints of an earlier demo go.
    for stale in ("best.pt", "last.pt"):
        (run_dir / stale).unlink(missing_ok=True)
    trained = run(
        "train",
        ["train", "--data", _p(data_file), "--cfg", _p(cfg_path), "--img-size", str(img_size),
         "--epochs", str(epochs), "--batch-size", str(BATCH_SIZE), "--accumulate", "1", "--optimizer", OPTIMIZER,
         "--lr", f"{LR:g}", "--warmup-epochs", f"{WARMUP_EPOCHS:g}", "--augment" if AUGMENT else "--no-augment",
         "--cache", "--workers", str(WORKERS),
         "--eval-every", "0", "--time-limit", f"{time_limit:g}", "--seed", str(seed), "--device", device,
         "--out", _p(run_dir)],
        lambda: train(data=str(data_file), cfg=str(cfg_path), img_size=img_size, epochs=epochs,
                      batch_size=BATCH_SIZE, accumulate=1, optimizer=OPTIMIZER, lr=LR,
                      warmup_epochs=WARMUP_EPOCHS, augment=AUGMENT, cache=True, workers=WORKERS, eval_every=0,
                      time_limit=time_limit, seed=seed, device=device, out=str(run_dir), progress=train_progress),
        lambda r: ({"weights": r.last, "metrics": Path(r.out) / "metrics.csv",
                    "curves": Path(r.out) / "results.png"},
                   f"{r.epochs_run} epochs ({r.stopped.replace('_', ' ')}), final loss {r.metrics[-1].total:.3f}"
                   if r.metrics else f"{r.epochs_run} epochs ({r.stopped.replace('_', ' ')})"))

    # 6. evaluate last.pt on the test split from the VOC XML (difficult flags count as in the devkit)
    from vocli.evaluate import evaluate

    eval_dir = out / "eval"
    evaluated = run(
        "evaluate",
        ["evaluate", "--weights", _p(trained.last), "--root", _p(data_root), "--sets", TEST_SET,
         "--img-size", str(img_size), "--device", device, "--plots", _p(eval_dir)],
        lambda: evaluate(weights=trained.last, root=data_root, sets=TEST_SET, img_size=img_size, device=device,
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
    run(
        "detect",
        ["detect", *map(_p, sources), "--weights", _p(trained.last), "--img-size", str(img_size),
         "--device", device, "--out", _p(detect_dir), "--exist-ok"],
        lambda: detect(sources, trained.last, img_size=img_size, device=device, out=detect_dir, exist_ok=True),
        lambda r: ({"images": sorted(detect_dir.glob("*.jpg"))},
                   f"{r.num_detections} detections in {r.images} images: " +
                   ", ".join(f"{k} {v}" for k, v in r.counts.items())))

    paths = {
        "dataset": voc_dir, "data_file": data_file, "names": names_file, "labels": out / voc_dir.name / "labels",
        "ssd": [f.path for f in ssd.files], "cfg": cfg_path, "weights": trained.last,
        "train_curves": Path(trained.out) / "results.png", "pr_curves": eval_dir / "pr_curves.png",
        "ap_per_class": eval_dir / "ap_per_class.png", "detect": detect_dir,
        "detect_images": sorted(detect_dir.glob("*.jpg")),
    }
    ap = {c.name: c.ap for c in evaluated.per_class}
    return DemoResult(
        out=out, steps=steps, map=float(evaluated.map), metric=evaluated.metric, ap_per_class=ap, paths=paths,
        seconds=time.perf_counter() - started, budget_seconds=budget_s, device=device, images=images,
        img_size=img_size, seed=seed, epochs=epochs, epochs_run=trained.epochs_run, train_stopped=trained.stopped,
        train_budget_seconds=train_s, probe=probe)


def _no_invalid(result, step: str) -> None:
    if result.invalid:
        first = result.invalid[0]
        raise VocliError(f"{step}: {len(result.invalid)} invalid annotation(s), first {first.path}: {first.reason}",
                         hint="run `vocli fetch shapes --force` to generate the data again")

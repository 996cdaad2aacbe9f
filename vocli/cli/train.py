"""``vocli train``: train a Darknet YOLOv3 model (thin layer over ``vocli.yolo.train.train``)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Optional

import typer

from vocli.cli.common import JSON_OPTION, ROOT_OPTION, SETS_OPTION, emit_json, err_console


def train(
    data: Optional[Path] = typer.Option(None, "--data", help="Darknet .data file (from `vocli convert yolo`)."),
    root: Optional[Path] = ROOT_OPTION,
    sets: Optional[str] = SETS_OPTION,
    valid_sets: Optional[str] = typer.Option(None, "--valid-sets", help="With --sets: sets to evaluate on (default 2007/test, or shapes/test)."),
    classes: Optional[Path] = typer.Option(None, "--classes", help="Class list file (.names); default from --data or the sets."),
    cfg: str = typer.Option("yolov3-voc", "--cfg", help="Darknet cfg name (yolov3-voc, yolov3-tiny-voc, ...) or file; classes are rewritten to fit."),
    anchors: Optional[str] = typer.Option(None, "--anchors", help="Replace the cfg's anchors: 'w,h w,h ...' in input pixels, or 'auto' (k-means on the training boxes at --img-size)."),
    weights: Optional[str] = typer.Option(None, "--weights", help="Start from darknet53.conv.74, yolov3.weights, a .pt, or none."),
    freeze: str = typer.Option("none", "--freeze", help="Freeze none, backbone, or the first N layers."),
    freeze_epochs: int = typer.Option(0, "--freeze-epochs", help="Unfreeze after this many epochs (0: stay frozen)."),
    img_size: int = typer.Option(416, "--img-size", help="Training and evaluation input size (multiple of 32)."),
    epochs: int = typer.Option(100, "--epochs", help="Epochs to train."),
    batch_size: int = typer.Option(16, "--batch-size", help="Images per batch (over all processes)."),
    accumulate: Optional[int] = typer.Option(None, "--accumulate", help="Batches per optimiser step (default: round(64 / batch size))."),
    lr: float = typer.Option(0.01, "--lr", help="Initial learning rate (SGD, Nesterov momentum 0.937)."),
    schedule: str = typer.Option("cosine", "--schedule", help="LR schedule: cosine or step."),
    optimizer: str = typer.Option("sgd", "--optimizer", help="sgd (Nesterov momentum 0.937) or adam (AdamW, try --lr 0.001)."),
    warmup_epochs: float = typer.Option(1.0, "--warmup-epochs", help="Linear LR/momentum warm-up length in epochs."),
    box_loss: str = typer.Option("ciou", "--box-loss", help="ciou, diou, giou or mse."),
    box_weight: float = typer.Option(0.05, "--box-weight", help="Weight of the box loss."),
    obj_weight: float = typer.Option(1.0, "--obj-weight", help="Weight of the objectness loss."),
    cls_weight: float = typer.Option(0.5, "--cls-weight", help="Weight of the class loss."),
    augment: bool = typer.Option(True, "--augment/--no-augment", help="Flip, HSV jitter, random scale/translate."),
    multi_scale: bool = typer.Option(False, "--multi-scale", help="Resize each batch to a random multiple of 32 in [0.67, 1.5] x img-size."),
    ema: bool = typer.Option(True, "--ema/--no-ema", help="Evaluate and keep an exponential moving average of the weights."),
    amp: bool = typer.Option(False, "--amp", help="Mixed precision (CUDA only; ignored on CPU)."),
    sync_bn: bool = typer.Option(False, "--sync-bn", help="Synchronised batch norm under torchrun."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA when present, else CPU), cpu, cuda or cuda:N."),
    workers: int = typer.Option(2, "--workers", help="DataLoader worker processes."),
    threads: Optional[int] = typer.Option(None, "--threads", help="torch CPU threads (default: torch's choice)."),
    cache: bool = typer.Option(False, "--cache", help="Keep decoded training images in RAM."),
    seed: int = typer.Option(0, "--seed", help="Seed for initialisation, shuffling and augmentation."),
    eval_every: int = typer.Option(1, "--eval-every", help="Evaluate every N epochs (and at the end); 0: never."),
    metric: Optional[str] = typer.Option(None, "--metric", help="voc07 or voc12 (default: voc07 for 2007/test)."),
    time_limit: Optional[float] = typer.Option(None, "--time-limit", help="Stop cleanly after this many minutes, evaluating at the end."),
    out: Optional[Path] = typer.Option(None, "--out", help="Run folder (default runs/train/exp, exp2, ...)."),
    name: str = typer.Option("exp", "--name", help="Run name under runs/train when --out is not given."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue the run of this last.pt (other options come from it)."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Train YOLOv3 on VOC (or any darknet dataset): last.pt, best.pt, metrics.csv, results.png.

    \b
    Each epoch is evaluated (VOC mAP@0.5, EMA weights) on the valid list; the best
    epoch is kept in best.pt. Ctrl-C saves last.pt; --resume continues the run.
    Under `torchrun --nproc_per_node N -m vocli train ...` it trains with DDP.

    \b
    Example: vocli train --data voc.data --cfg yolov3-voc --weights darknet53.conv.74 --epochs 50
    Example: vocli train --root ~/data --sets shapes/trainval --cfg yolov3-tiny --img-size 160 --anchors auto --optimizer adam --lr 0.001 --batch-size 8 --time-limit 10
    Example: vocli train --resume runs/train/exp/last.pt
    """
    from vocli.datasets.voc import read_classes
    from vocli.yolo.train import TrainConfig, TrainingInterrupted
    from vocli.yolo.train import train as run_train

    anchor_list = None
    if anchors and anchors.strip().lower() == "auto":
        anchor_list = "auto"
    elif anchors:
        try:
            anchor_list = [[int(round(float(v))) for v in pair.split(",")] for pair in anchors.replace(";", " ").split()]
        except ValueError:
            raise typer.BadParameter(f"{anchors!r}; use 'w,h w,h ...'", param_hint="--anchors") from None
        if any(len(a) != 2 for a in anchor_list):
            raise typer.BadParameter(f"{anchors!r}; use 'w,h w,h ...'", param_hint="--anchors")
    if resume is not None:
        config = TrainConfig(resume=str(resume), device=device, workers=workers, threads=threads)
    else:
        config = TrainConfig(
            data=str(data) if data else None, root=str(root) if root else None, sets=sets, valid_sets=valid_sets,
            classes=list(read_classes(classes)) if classes else None, cfg=cfg, anchors=anchor_list,
            weights=weights, freeze=freeze, freeze_epochs=freeze_epochs, img_size=img_size, epochs=epochs,
            batch_size=batch_size, accumulate=accumulate, lr=lr, schedule=schedule, optimizer=optimizer, warmup_epochs=warmup_epochs,
            box_loss=box_loss, box_weight=box_weight, obj_weight=obj_weight, cls_weight=cls_weight,
            augment=augment, multi_scale=multi_scale, ema=ema, amp=amp, sync_bn=sync_bn, device=device,
            workers=workers, threads=threads, cache=cache, seed=seed, eval_every=eval_every, metric=metric,
            time_limit=time_limit, out=str(out) if out else None, name=name)
        if data is None and sets is None:
            raise typer.BadParameter("give --data FILE, or --sets (with --root) for VOC-layout data",
                                     param_hint="--data/--sets")
        if data is None:
            from vocli.cli.common import resolve_root

            config.root = str(resolve_root(root))
    main_rank = int(os.environ.get("RANK", "0")) == 0
    try:
        with _epoch_progress(enabled=main_rank) as report:
            result = run_train(config, progress=report)
    except TrainingInterrupted as stop:
        if main_rank:
            _say_how_to_resume(stop.last)
        raise
    if not main_rank:
        return
    if json_out:
        emit_json(result)
    else:
        render(result)


@contextlib.contextmanager
def _epoch_progress(enabled: bool):
    """A rich bar per epoch with running losses on a terminal; one line per epoch otherwise."""
    console = err_console()
    if not enabled:
        yield None
        return
    if not console.is_terminal:
        def plain(event):
            if event.kind in ("start", "info"):
                console.print(event.message, soft_wrap=True)
            elif event.kind == "epoch":
                m = event.losses
                mAP = "" if event.map is None else f"  mAP@0.5 {event.map:.4f}"
                console.print(f"epoch {event.epoch + 1}/{event.epochs}  box {m['box']:.4f}  obj {m['obj']:.4f}  "
                              f"cls {m['cls']:.4f}  lr {event.lr:.5f}{mAP}  ({m['seconds']:.0f}s)", soft_wrap=True)
        yield plain
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.fields[losses]}"), console=console, transient=False) as bar:
        tasks: dict[int, int] = {}

        def report(event):
            if event.kind in ("start", "info"):
                bar.console.print(event.message, soft_wrap=True)
            elif event.kind == "batch":
                if event.epoch not in tasks:
                    tasks[event.epoch] = bar.add_task(f"epoch {event.epoch + 1}/{event.epochs}",
                                                      total=event.batches, losses="")
                m = event.losses
                bar.update(tasks[event.epoch], completed=event.batch,
                           losses=f"box {m['box']:.3f} obj {m['obj']:.3f} cls {m['cls']:.3f} lr {event.lr:.4f}")
            elif event.kind == "eval" and event.epoch in tasks:
                bar.update(tasks[event.epoch], description=f"epoch {event.epoch + 1}/{event.epochs} "
                                                           f"mAP@0.5 {event.map:.4f}")
        yield report


def _say_how_to_resume(last: Optional[Path]) -> None:
    """Where the interrupted run's state is and the command that goes on from it."""
    import shlex

    console = err_console()
    if last is None:
        console.print("nothing saved yet (interrupted before the first optimizer step)", soft_wrap=True)
        return
    console.print(f"saved {last}\nresume: vocli train --resume {shlex.quote(str(last))}",
                  soft_wrap=True, markup=False, highlight=False)


def render(result) -> None:
    """Summary lines on stderr."""
    console = err_console()
    best = "n/a" if result.best_map is None else f"{result.best_map:.4f} (epoch {result.best_epoch})"
    console.print(f"[bold]trained[/] {result.epochs_run} epochs in {result.seconds / 60:.1f} min"
                  f" ({result.stopped}); best mAP@0.5 {best}", soft_wrap=True)
    console.print(f"last: {result.last}\nbest: {result.best}\nmetrics: {Path(result.out) / 'metrics.csv'}",
                  soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("train")(train)

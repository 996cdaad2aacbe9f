"""Train a Darknet YOLOv3 model: data, SGD with warm-up, EMA, AMP, evaluation, checkpoints, DDP.

``train(TrainConfig(...), progress=...) -> TrainResult`` is what ``vocli train`` runs.
Determinism: every random choice (shuffle, augmentation, multi-scale size) is a pure function of
``(seed, epoch, index)``, so a resumed run on CPU repeats an uninterrupted one exactly.
Under ``torchrun`` (``WORLD_SIZE > 1``) it trains with DistributedDataParallel; only rank 0
evaluates, writes files and reports progress.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from vocli.errors import TrainingDivergedError, VocliError
from vocli.outputs import check_run_folder, next_run_dir
from vocli.paths import atomic_write_text
from vocli.yolo import checkpoint as ckpt_io
from vocli.yolo.data import AugmentConfig, YoloDataset, make_loader, multi_scale_size
from vocli.yolo.loss import BOX_LOSSES, LossConfig, scaled_weights, yolo_loss
from vocli.yolo.optim import (OPTIMIZERS, SCHEDULES, ModelEMA, apply_warmup, build_optimizer, default_accumulate,
                              lr_factor)
from vocli.yolo.setup import (anchor_fit_message, build_model, evaluate_map, fit_anchors, freeze_layers,
                              init_distributed, load_datasets, write_metrics)


@dataclass
class TrainConfig:
    """Everything a run depends on; stored in every checkpoint and in ``config.json``."""

    data: Optional[str] = None          # darknet .data file, or None with root + sets
    root: Optional[str] = None          # VOC root (folder holding VOCdevkit/)
    sets: Optional[str] = None          # training sets, e.g. "2007/trainval,2012/trainval"
    valid_sets: Optional[str] = None    # evaluation sets, e.g. "2007/test"
    classes: Optional[list[str]] = None  # class names (default: from .data names / VOC classes)
    cfg: str = "yolov3-voc"
    anchors: Any = None                 # replace the cfg's anchors: [[w, h], ...] pixels, or "auto" (k-means)
    weights: Optional[str] = None       # .weights / .pt / checkpoint to start from; None = scratch
    freeze: str = "none"                # none | backbone | N (first N layers)
    freeze_epochs: int = 0              # unfreeze after this many epochs (0: keep frozen)
    img_size: int = 416
    epochs: int = 100
    batch_size: int = 16
    accumulate: Optional[int] = None    # default: round(64 / batch_size)
    lr: float = 0.01
    final_lr_ratio: float = 0.01
    schedule: str = "cosine"
    optimizer: str = "sgd"              # sgd (Nesterov) | adam (AdamW)
    momentum: float = 0.937
    weight_decay: float = 5e-4
    warmup_epochs: float = 1.0
    warmup_momentum: float = 0.8
    warmup_bias_lr: float = 0.1
    box_loss: str = "ciou"
    box_weight: float = 0.05
    obj_weight: float = 1.0
    cls_weight: float = 0.5
    obj_balance: bool = True
    scale_loss_weights: bool = False    # YOLOv5-style obj/cls re-weighting (loss.scaled_weights); slower on shapes
    ignore_thresh: Optional[float] = None  # default: the cfg's [yolo] ignore_thresh
    augment: bool = True
    flip: float = 0.5
    hsv_h: float = 0.015
    hsv_s: float = 0.7
    hsv_v: float = 0.4
    scale: float = 0.5
    translate: float = 0.1
    multi_scale: bool = False
    ema: bool = True
    amp: bool = False
    sync_bn: bool = False
    device: str = "auto"               # CUDA when present, else CPU
    workers: int = 2
    seed: int = 0
    cache: bool = False
    out: Optional[str] = None           # default runs/train/exp, exp2, ...
    name: str = "exp"
    resume: Optional[str] = None
    eval_every: int = 1                 # 0: never evaluate (best.pt = last.pt)
    eval_conf: float = 0.005
    eval_iou: float = 0.45
    eval_batch_size: int = 16
    metric: Optional[str] = None        # voc07 | voc12 (default: from the sets)
    time_limit: Optional[float] = None  # minutes; stop cleanly and evaluate when reached
    threads: Optional[int] = None       # torch CPU threads


@dataclass
class EpochMetrics:
    epoch: int
    box: float
    obj: float
    cls: float
    total: float
    lr: float
    map: Optional[float]
    seconds: float
    images: int


@dataclass
class TrainResult:
    out: Path
    last: Path
    best: Path
    best_map: Optional[float]
    best_epoch: Optional[int]
    final_map: Optional[float]
    epochs_run: int
    stopped: str                        # "completed" | "time_limit"
    seconds: float
    metrics: list[EpochMetrics] = field(default_factory=list)
    weights_report: Optional[dict] = None
    config: dict = field(default_factory=dict)


@dataclass
class TrainEvent:
    """Progress report: ``kind`` is "start", "epoch", "batch", "eval" or "info"."""

    kind: str
    epoch: int = 0
    epochs: int = 0
    batch: int = 0
    batches: int = 0
    losses: dict = field(default_factory=dict)
    lr: float = 0.0
    map: Optional[float] = None
    message: str = ""


def _validate(config: TrainConfig) -> None:
    if config.box_loss not in BOX_LOSSES:
        raise VocliError(f"--box-loss {config.box_loss!r} is not known", hint=f"use {', '.join(BOX_LOSSES)}")
    if config.schedule not in SCHEDULES:
        raise VocliError(f"--schedule {config.schedule!r} is not known", hint=f"use {', '.join(SCHEDULES)}")
    if config.optimizer not in OPTIMIZERS:
        raise VocliError(f"--optimizer {config.optimizer!r} is not known", hint=f"use {', '.join(OPTIMIZERS)}")
    if config.img_size % 32 or config.img_size < 32:
        raise VocliError(f"--img-size {config.img_size} is not a positive multiple of 32", hint="e.g. 416")
    if config.epochs < 1 or config.batch_size < 1:
        raise VocliError("--epochs and --batch-size must be at least 1")


def train(config: Optional[TrainConfig] = None, progress: Optional[Callable[[TrainEvent], None]] = None,
          **options: Any) -> TrainResult:
    """Run (or resume) a training run; see the module docstring.

    Pass a ``TrainConfig`` or its fields as keywords (``train(data="voc.data", epochs=10)``).
    Raises ``KeyboardInterrupt`` after saving ``last.pt`` when interrupted and
    ``TrainingDivergedError`` on a NaN/inf loss.
    """
    config = dataclasses.replace(config, **options) if config is not None else TrainConfig(**options)
    resume_ckpt = None
    if config.resume:
        resume_ckpt = ckpt_io.load_checkpoint(config.resume)
        saved = resume_ckpt["config"]
        config = TrainConfig(**{**saved, "resume": config.resume, "workers": config.workers,
                                "device": config.device, "threads": config.threads,
                                "out": saved.get("out") or str(Path(config.resume).parent)})
    _validate(config)
    dist = init_distributed(config.device)
    try:
        return _run(config, dist, resume_ckpt, progress if dist.rank == 0 else None)
    finally:
        if dist.world_size > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _run(config: TrainConfig, dist, resume_ckpt, progress) -> TrainResult:
    report = progress or (lambda event: None)
    started = time.monotonic()
    device = dist.device
    if config.threads:
        torch.set_num_threads(config.threads)
    is_main = dist.rank == 0
    out = Path(config.out) if config.out else next_run_dir(Path("runs/train"), config.name)
    if resume_ckpt is None:  # a resumed run goes on in its own folder
        weights = config.weights if config.weights and str(config.weights).lower() != "none" else None
        check_run_folder(out, [weights] if weights else [])
    config = dataclasses.replace(config, out=str(out))

    train_data, valid_data, classes = load_datasets(config)
    for bad in [*train_data.invalid, *valid_data.data.invalid]:  # left out, as convert does
        report(TrainEvent("info", message=f"invalid annotation left out: {bad.path}: {bad.reason}"))
    config = dataclasses.replace(config, classes=list(classes))
    if isinstance(config.anchors, str):
        if config.anchors.strip().lower() != "auto":
            raise VocliError(f"--anchors {config.anchors!r} is not known", hint="use 'w,h w,h ...' or auto")
        config = dataclasses.replace(config, anchors=fit_anchors(config.cfg, train_data, config.img_size, config.seed))
        report(TrainEvent("info", message="anchors fitted to the training boxes at "
                                          f"{config.img_size} px: {config.anchors}"))
    model, weights_report = build_model(config, len(classes), resume_ckpt is None)
    model.to(device)
    if weights_report is not None:
        report(TrainEvent("info", message=weights_report["summary"]))
    fit_warning = anchor_fit_message(model, train_data, config.img_size)
    if fit_warning:
        report(TrainEvent("info", message=fit_warning))

    per_rank_batch = max(1, config.batch_size // dist.world_size)
    accumulate = config.accumulate or default_accumulate(config.batch_size)
    optimizer = build_optimizer(model, config.lr, config.momentum, config.weight_decay, config.batch_size, accumulate,
                                config.optimizer)
    factor = lr_factor(config.schedule, config.epochs, config.final_lr_ratio)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: factor(e))
    use_amp = config.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    ema = ModelEMA(model) if config.ema else None

    start_epoch, best_map, best_epoch, history = 0, None, None, []
    start_batch, partial = 0, None  # where an interrupted epoch resumes, and its running loss sums
    if resume_ckpt is not None:
        model.load_state_dict(resume_ckpt.get("raw_model") or resume_ckpt["model"])
        optimizer.load_state_dict(resume_ckpt["optimizer"])
        scheduler.load_state_dict(resume_ckpt["scheduler"])
        if "scaler" in resume_ckpt and use_amp:
            scaler.load_state_dict(resume_ckpt["scaler"])
        if ema is not None:
            ema.module.load_state_dict(resume_ckpt["model"])
            ema.updates = int(resume_ckpt.get("ema_updates", 0))
        ckpt_io.set_rng_state(resume_ckpt["rng"])
        start_epoch = int(resume_ckpt["epoch"])
        start_batch, partial = int(resume_ckpt.get("batch", 0)), resume_ckpt.get("partial")
        best_map, best_epoch = resume_ckpt.get("best_map"), resume_ckpt.get("best_epoch")
        history = [EpochMetrics(**row) for row in resume_ckpt.get("metrics", [])]

    augment = AugmentConfig(enabled=config.augment, flip=config.flip, hsv_h=config.hsv_h, hsv_s=config.hsv_s,
                            hsv_v=config.hsv_v, scale=config.scale, translate=config.translate)
    dataset = YoloDataset(train_data, config.img_size, augment, seed=config.seed, cache=config.cache)
    loader = make_loader(dataset, per_rank_batch, config.workers, config.seed, True, dist.rank, dist.world_size)
    batches = len(loader)
    # A warm-up of at most a tenth of the run, so short runs spend most of it at full LR.
    warmup_iters = min(round(config.warmup_epochs * batches), max(1, config.epochs * batches // 10))
    weights = (config.box_weight, config.obj_weight, config.cls_weight)
    if config.scale_loss_weights:
        weights = scaled_weights(*weights, config.img_size, len(classes), len(model.heads))
    loss_config = LossConfig(box=config.box_loss, box_weight=weights[0], obj_weight=weights[1],
                             cls_weight=weights[2], ignore_thresh=config.ignore_thresh,
                             obj_balance=config.obj_balance)
    heads = model.heads
    frozen = freeze_layers(model, config.freeze) if start_epoch < config.freeze_epochs or not config.freeze_epochs \
        else []
    if config.sync_bn and dist.world_size > 1:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    net = dist.wrap(model)
    paths = {"last": out / "last.pt", "best": out / "best.pt"}
    if is_main:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "config.json", json.dumps(ckpt_io.plain(dataclasses.asdict(config)), indent=2) + "\n")

    saved_buffers = set(model.state_dict())  # buffers that checkpoints hold (not the non-persistent ones)

    def buffers() -> dict[str, torch.Tensor]:
        # Batch-norm statistics move with every forward pass, weights only at optimizer steps.
        return {name: b.detach().clone() for name, b in model.named_buffers() if name in saved_buffers}

    def checkpoint(epoch_done: int, mark: Optional[_StepMark] = None) -> dict[str, Any]:
        """The run after ``epoch_done`` epochs, or with ``mark`` part way through the next one."""
        raw = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if mark is not None:
            raw.update(mark.buffers)  # as at the last step: later batches are trained again
        ck = {"model": ema.module.state_dict() if ema else raw, "optimizer": optimizer.state_dict(),
              "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(), "epoch": epoch_done,
              "best_map": best_map, "best_epoch": best_epoch,
              # An interrupt while the epoch's own row is being saved repeats the epoch: not its row.
              "metrics": [dataclasses.asdict(m) for m in history[:epoch_done]], "rng": ckpt_io.rng_state(),
              "config": ckpt_io.plain(dataclasses.asdict(config)), "cfg_text": model.cfg.text,
              "classes": list(classes)}
        if ema is not None:
            ck["raw_model"] = raw
            ck["ema_updates"] = ema.updates
        if mark is not None:
            ck["batch"] = mark.batch
            ck["partial"] = {"sums": mark.sums.tolist(), "seen": mark.seen, "seconds": mark.seconds}
            # The epoch's evaluation, if it ran, runs again on resume: the best as before it.
            ck["best_map"], ck["best_epoch"] = mark.best
        return ck

    report(TrainEvent("start", epoch=start_epoch, epochs=config.epochs, batches=batches,
                      message=f"{len(train_data)} training images, {len(valid_data.data)} validation images, "
                              f"batch {config.batch_size} x accumulate {accumulate}, device {device}"
                              + (f"; resuming epoch {start_epoch + 1} at batch {start_batch + 1}"
                                 if start_batch else "")))
    stopped, epochs_done, dirty, final_map = "completed", start_epoch, False, None
    mark: Optional[_StepMark] = None  # the last optimizer step of the current epoch
    deadline = started + config.time_limit * 60 if config.time_limit else None
    loop_start = time.monotonic()
    eval_seconds: Optional[float] = None  # the last evaluation's duration (reserved before the deadline)
    trained_images = 0

    def train_deadline() -> Optional[float]:
        """When training must stop so the final evaluation still ends by the time limit."""
        if deadline is None or config.eval_every <= 0:
            return deadline
        reserve = eval_seconds
        if reserve is None:  # inference is about 3x faster than a training step; NMS and scoring cost extra
            rate = trained_images / max(1e-6, time.monotonic() - loop_start)
            reserve = len(valid_data.data) / max(rate, 1e-6) / 2.5 if trained_images else 0.0
        return deadline - reserve

    def lr_progress(epoch: int, i: int) -> float:
        """Position in the LR schedule, in epochs: by iterations, or by the clock under a time limit."""
        by_iter = epoch + i / batches
        stop = train_deadline()
        if stop is None:
            return by_iter
        by_time = config.epochs * (time.monotonic() - loop_start) / max(1e-6, stop - loop_start)
        return min(float(config.epochs), max(by_iter, dist.from_rank0(by_time)))

    def step(batches_done: int) -> None:
        """An optimizer step, and the epoch's mark after it; Ctrl-C waits for both (never half a step)."""
        nonlocal mark
        with _signals_held():
            _optimizer_step(model, optimizer, scaler, ema)
            mark = _StepMark(batches_done, sums.clone(), seen, time.monotonic() - epoch_start, buffers(),
                             best_before)

    try:
        for epoch in range(start_epoch, config.epochs):
            epoch_start = time.monotonic()
            if frozen and config.freeze_epochs and epoch >= config.freeze_epochs:
                freeze_layers(model, "none")
                frozen = []
                net = dist.wrap(model)
                report(TrainEvent("info", epoch=epoch, message="unfroze all layers"))
            net.train()
            for layer in frozen:
                layer.eval()  # frozen batch-norm keeps its running statistics
            loader.sampler.set_epoch(epoch)
            dataset.set_epoch(epoch)
            first = start_batch if epoch == start_epoch else 0
            loader.sampler.start_at(first * per_rank_batch)
            sums, seen = torch.zeros(4), 0
            if first and partial:
                sums, seen = torch.tensor(partial["sums"], dtype=torch.float32), int(partial["seen"])
                epoch_start -= float(partial["seconds"])
            best_before = (best_map, best_epoch)
            mark = _StepMark(first, sums.clone(), seen, time.monotonic() - epoch_start, buffers(), best_before)
            optimizer.zero_grad(set_to_none=True)
            pending = 0
            time_up = False
            for i, (images, targets) in enumerate(loader, start=first):
                ni = epoch * batches + i
                scheduled = factor(lr_progress(epoch, i))  # cosine/step per iteration
                if ni <= warmup_iters:  # the last call lands exactly on the scheduled values
                    apply_warmup(optimizer, ni, warmup_iters, scheduled, config.lr, config.momentum,
                                 config.warmup_momentum, config.warmup_bias_lr)
                else:
                    for group in optimizer.param_groups:
                        group["lr"] = config.lr * scheduled
                images = images.to(device, non_blocking=True).float().div_(255.0)
                if config.multi_scale:
                    size = multi_scale_size(config.img_size, config.seed, epoch, i)
                    if size != images.shape[-1]:
                        images = torch.nn.functional.interpolate(images, size=(size, size), mode="bilinear",
                                                                 align_corners=False)
                with torch.autocast(device_type=device.type, enabled=use_amp):
                    outputs = net(images)
                parts = yolo_loss(outputs, targets.to(device), heads, loss_config)
                loss = parts.total * dist.world_size  # DDP averages gradients over ranks
                if not torch.isfinite(loss):
                    raise TrainingDivergedError(
                        f"loss became {loss.item()} at epoch {epoch + 1}, batch {i + 1}",
                        hint="lower --lr, use --box-loss ciou, or train without --amp")
                scaler.scale(loss).backward()
                dirty = True
                pending += 1
                batch_losses = torch.stack([parts.box, parts.obj, parts.cls, parts.total.detach() / len(images)])
                sums += batch_losses.cpu() * len(images)
                seen += len(images)
                trained_images += len(images)
                if pending >= accumulate or i == batches - 1:
                    step(i + 1)
                    pending = 0
                running = sums / max(1, seen)
                report(TrainEvent("batch", epoch=epoch, epochs=config.epochs, batch=i + 1, batches=batches,
                                  losses={"box": running[0].item(), "obj": running[1].item(),
                                          "cls": running[2].item(), "total": running[3].item()},
                                  lr=optimizer.param_groups[1]["lr"]))
                if deadline is not None and dist.agree(time.monotonic() >= train_deadline()):
                    if pending:
                        step(i + 1)
                        pending = 0
                    time_up = True
                    break
            lr_now = optimizer.param_groups[1]["lr"]
            scheduler.step()
            evaluate_now = config.eval_every > 0 and (
                time_up or (epoch + 1) % config.eval_every == 0 or epoch + 1 == config.epochs)
            current_map = None
            if evaluate_now:
                dist.barrier()
                if is_main:
                    eval_model = ema.module if ema else model
                    eval_start = time.monotonic()
                    current_map = evaluate_map(eval_model, valid_data, classes, config, device)
                    eval_seconds = time.monotonic() - eval_start
                    report(TrainEvent("eval", epoch=epoch, epochs=config.epochs, map=current_map))
                dist.barrier()
            seen_all = dist.sum(seen)
            mean = dist.mean_vector(sums / max(1, seen))
            row = EpochMetrics(epoch + 1, *[float(v) for v in mean], lr=float(lr_now), map=current_map,
                               seconds=time.monotonic() - epoch_start, images=int(seen_all))
            history.append(row)
            if current_map is not None:
                final_map = current_map
                if best_map is None or current_map > best_map:
                    best_map, best_epoch = current_map, epoch + 1
            if is_main:
                ck = checkpoint(epoch + 1)
                ckpt_io.save_checkpoint(paths["last"], ck)
                if best_epoch == epoch + 1 or config.eval_every <= 0 or not paths["best"].exists():
                    ckpt_io.save_checkpoint(paths["best"], ckpt_io.inference_checkpoint(ck))
                write_metrics(out, history)
            epochs_done, dirty = epoch + 1, False
            report(TrainEvent("epoch", epoch=epoch, epochs=config.epochs, losses=dataclasses.asdict(row),
                              lr=lr_now, map=current_map))
            dist.barrier()
            if time_up:
                stopped = "time_limit"
                break
    except KeyboardInterrupt:
        # Mid-epoch: keep the progress up to the last optimizer step; --resume goes on from there.
        if is_main and dirty:
            ckpt_io.save_checkpoint(paths["last"], checkpoint(epochs_done, mark))
        raise TrainingInterrupted(paths["last"] if is_main and paths["last"].is_file() else None) from None
    return TrainResult(out=out, last=paths["last"], best=paths["best"], best_map=best_map, best_epoch=best_epoch,
                       final_map=final_map, epochs_run=len(history), stopped=stopped,
                       seconds=time.monotonic() - started, metrics=history, weights_report=weights_report,
                       config=ckpt_io.plain(dataclasses.asdict(config)))


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped training. ``last``: the checkpoint ``--resume`` goes on from
    (None when the run had saved none yet)."""

    def __init__(self, last: Optional[Path]):
        super().__init__()
        self.last = last


@dataclass
class _StepMark:
    """The state of an epoch at its last optimizer step: where a resumed epoch goes on.

    batch: batches of the epoch in the weights; sums, seen: the running loss sums over
    them; seconds: time spent in the epoch; buffers: batch-norm statistics as they were;
    best: (best mAP, its epoch) before the epoch.
    """

    batch: int
    sums: torch.Tensor
    seen: int
    seconds: float
    buffers: dict[str, torch.Tensor]
    best: tuple[Optional[float], Optional[int]]


def _signals_held():
    """Ctrl-C and SIGTERM arriving inside the block take effect at its end (main thread only)."""
    from vocli.interrupts import DeferredSignals

    return DeferredSignals()


def _optimizer_step(model, optimizer, scaler, ema) -> None:
    scaler.unscale_(optimizer)
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=10.0)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    if ema is not None:
        ema.update(model)

"""What a training run needs around its loop: devices and DDP, data, model and weights,
freezing, evaluation, the run folder and the metrics files."""

from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional, Sequence

import torch
from torch import nn

from vocli.errors import VocliError
from vocli.yolo.data import LabelledImages, darknet_images, voc_images

# --------------------------------------------------------------------------- devices and DDP


def resolve_device(spec: str, local_rank: int = 0) -> torch.device:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N`` -> a device; ``auto`` is ``cuda`` when CUDA is
    available, else ``cpu``; ``cuda`` under torchrun means ``cuda:LOCAL_RANK``."""
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "cuda" or spec.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise VocliError(f"--device {spec}: CUDA is not available in this torch build or machine",
                             hint="use --device cpu")
        index = local_rank if spec == "cuda" else int(spec.split(":", 1)[1] or 0)
        if index >= torch.cuda.device_count():
            raise VocliError(f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s)")
        return torch.device("cuda", index)
    raise VocliError(f"--device {spec!r} is not known", hint="use auto, cpu, cuda or cuda:N")


@dataclass
class Distributed:
    """This process's place in a (possibly single-process) run, and the few collectives the loop uses."""

    rank: int
    local_rank: int
    world_size: int
    device: torch.device

    def wrap(self, model: nn.Module) -> nn.Module:
        if self.world_size == 1:
            return model
        ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def _tensor(self, values) -> torch.Tensor:
        dev = self.device if self.device.type == "cuda" else torch.device("cpu")
        return torch.as_tensor(values, dtype=torch.float64, device=dev)

    def barrier(self) -> None:
        if self.world_size > 1:
            torch.distributed.barrier()

    def agree(self, flag: bool) -> bool:
        """Rank 0's decision, on every rank (so all ranks stop at the same batch)."""
        if self.world_size == 1:
            return flag
        t = self._tensor([1.0 if flag else 0.0])
        torch.distributed.broadcast(t, src=0)
        return bool(t.item())

    def from_rank0(self, value: float) -> float:
        """Rank 0's value on every rank (clock-driven choices must agree across ranks)."""
        if self.world_size == 1:
            return value
        t = self._tensor([value])
        torch.distributed.broadcast(t, src=0)
        return float(t.item())

    def sum(self, value: float) -> float:
        if self.world_size == 1:
            return value
        t = self._tensor([value])
        torch.distributed.all_reduce(t)
        return float(t.item())

    def mean_vector(self, values: torch.Tensor) -> torch.Tensor:
        if self.world_size == 1:
            return values
        t = self._tensor(values.tolist())
        torch.distributed.all_reduce(t)
        return (t / self.world_size).cpu()


def init_distributed(device_spec: str) -> Distributed:
    """Read torchrun's WORLD_SIZE/RANK/LOCAL_RANK; start the process group (nccl on CUDA, gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_spec, local)
    if world > 1 and not torch.distributed.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Distributed(rank, local, world, device)


# --------------------------------------------------------------------------- data


@dataclass
class ValidSet:
    """Validation images with their labels; ``ground_truth`` (VOC XML beside the images when
    present, else the label files) is read on first use and kept for later epochs."""

    data: LabelledImages
    ground_truth: Optional[object] = None


def _voc_classes(sets: str) -> tuple[str, ...]:
    from vocli.datasets.shapes import SHAPES_CLASSES
    from vocli.datasets.voc import VOC_CLASSES, parse_set_names

    years = {year for year, _ in parse_set_names(sets)}
    return SHAPES_CLASSES if years == {"shapes"} else VOC_CLASSES


def load_datasets(config) -> tuple[LabelledImages, ValidSet, tuple[str, ...]]:
    """Training images, validation set and class names from ``--data`` or ``--root/--sets``."""
    if config.data:
        from converters.voc_to_yolo import read_data_file

        df = read_data_file(config.data)
        classes = tuple(config.classes or df.names)
        if len(classes) != df.classes:
            raise VocliError(f"{config.data}: classes = {df.classes} but {df.names and len(df.names)} names",
                             hint="fix classes= or the names file")
        train = darknet_images(df.train, len(classes))
        valid = ValidSet(darknet_images(df.valid, len(classes)))
        check_images_present(train, "training", df.train)
        check_images_present(valid.data, "validation", df.valid)
        return train, valid, classes
    if not config.sets:
        raise VocliError("no training data given", hint="pass --data voc.data, or --root and --sets 2007/trainval")
    root = config.root
    classes = tuple(config.classes or _voc_classes(config.sets))
    train = voc_images(root, config.sets, classes)
    valid_sets = config.valid_sets or ("shapes/test" if classes == _voc_classes("shapes/x") else "2007/test")
    valid = ValidSet(voc_images(root, valid_sets, classes))
    check_images_present(train, "training", config.sets)
    check_images_present(valid.data, "validation", valid_sets)
    return train, valid, classes


def check_images_present(data: LabelledImages, what: str, source) -> None:
    """Raise naming how many of ``data``'s images have no file (and the first), before any training.

    Each folder is listed once (one directory read, not a stat per image).
    """
    listed: dict[Path, set] = {}
    missing = []
    for path in data.paths:
        if path.parent not in listed:
            try:
                listed[path.parent] = set(os.listdir(path.parent))
            except OSError:
                listed[path.parent] = set()
        if path.name not in listed[path.parent]:
            missing.append(path)
    if missing:
        from vocli.errors import DatasetNotFoundError

        first = ", ".join(str(p) for p in missing[:3])
        raise DatasetNotFoundError(
            f"{len(missing)} of {len(data)} {what} images in {source} are missing (first: {first})",
            hint="put the images in place (`vocli verify` and `vocli stats` name them), or train on sets that have them")


# --------------------------------------------------------------------------- anchors


def _label_shapes(data: LabelledImages, img_size: int):
    """(N, 2) box w, h in input pixels at ``img_size`` (normalised sizes x ``img_size``, as ``vocli anchors``)."""
    import numpy as np

    rows = [lab[:, 3:5] for lab in data.labels if len(lab)]
    wh = np.concatenate(rows).astype(np.float64) * img_size if rows else np.zeros((0, 2))
    return wh[(wh > 0).all(1)]


def fit_anchors(cfg_name: str, data: LabelledImages, img_size: int, seed: int = 0) -> list[list[int]]:
    """IoU k-means anchors (w, h input pixels at ``img_size``) of the training boxes, as many as the cfg has.

    Darknet anchors are absolute input pixels, so a cfg's anchors (chosen at 416 px for COCO)
    are far too large for a model trained at 160 px; ``--anchors auto`` refits them.
    """
    from vocli.anchors import kmeans_iou
    from vocli.darknet.cfg import load_cfg, yolo_anchors_and_mask

    cfg = load_cfg(cfg_name)
    k = len(yolo_anchors_and_mask(cfg.yolo_layers[0])[0])
    wh = _label_shapes(data, img_size)
    if len(wh) < k:
        raise VocliError(f"--anchors auto: only {len(wh)} training boxes for {k} anchors",
                         hint="pass --anchors 'w,h w,h ...' or use the cfg's anchors")
    centres = kmeans_iou(wh / img_size, k, restarts=3, seed=seed).centres
    return [[max(1, int(round(w * img_size))), max(1, int(round(h * img_size)))] for w, h in centres]


def anchor_fit_message(model: nn.Module, data: LabelledImages, img_size: int) -> Optional[str]:
    """A one-line warning when the model's anchors fit the training boxes badly (else None)."""
    from vocli.anchors import anchor_metrics

    wh = _label_shapes(data, img_size)
    anchors = model.heads[0].all_anchors
    if len(wh) == 0 or anchors is None:
        return None
    fit = anchor_metrics(wh, anchors.numpy())
    if fit.best_possible_recall >= 0.98 and fit.mean_iou >= 0.5:
        return None
    return (f"anchors fit the training boxes at {img_size} px poorly (mean best IoU {fit.mean_iou:.2f}, "
            f"{fit.best_possible_recall:.0%} of boxes within 4x of an anchor); --anchors auto refits them")


# --------------------------------------------------------------------------- model


def build_model(config, num_classes: int, load_initial: bool) -> tuple[nn.Module, Optional[dict]]:
    """The Darknet model for ``config.cfg`` with ``num_classes`` (and anchors); starting weights loaded."""
    from vocli.darknet.cfg import load_cfg
    from vocli.darknet.model import Darknet

    cfg = load_cfg(config.cfg)
    if cfg.num_classes != num_classes:
        cfg = cfg.with_classes(num_classes)
    if config.anchors:
        cfg = cfg.with_anchors([tuple(a) for a in config.anchors])
    torch.manual_seed(config.seed)
    model = Darknet(cfg)
    init_head_biases(model, config.img_size)
    report = None
    if load_initial and config.weights and str(config.weights).lower() != "none":
        from converters.darknet_weights import load_weights

        from vocli.yolo.checkpoint import check_enough_loaded

        lr = load_weights(model, config.weights)
        backbone = check_enough_loaded(list(model.state_dict()), lr.loaded, lr.skipped, config.weights)
        skipped = [f"{k} ({why})" for k, why in lr.skipped]
        summary = f"loaded {len(lr.loaded)} tensors from {config.weights}" + (f" ({backbone})" if backbone else "")
        if skipped:
            summary += f"; skipped {len(skipped)}: " + ", ".join(skipped[:6]) + (" ..." if len(skipped) > 6 else "")
        report = {"loaded": len(lr.loaded), "skipped": [list(s) for s in lr.skipped], "missing": list(lr.missing),
                  "summary": summary}
    return model, report


def init_head_biases(model: nn.Module, img_size: int) -> None:
    """Start objectness at about 8 objects per image and classes at a 0.6 prior (trains from scratch faster)."""
    with torch.no_grad():
        for head in model.heads:
            conv = model.layers[head.layer_index - 1].conv
            if conv.bias is None:
                continue
            bias = conv.bias.view(head.num_anchors, -1)
            cells = (img_size / head.stride) ** 2
            bias[:, 4] += math.log(8 / cells)
            if head.num_classes > 1:
                bias[:, 5:] += math.log(0.6 / (head.num_classes - 0.99))


def freeze_layers(model: nn.Module, spec: str) -> list[nn.Module]:
    """Freeze ``none``, ``backbone`` (``model.backbone_layers``) or the first N layers; returns the frozen ones.

    Frozen layers get ``requires_grad=False``; the caller keeps them in eval mode so their
    batch-norm statistics stay fixed.
    """
    spec = str(spec).strip().lower()
    if spec == "none":
        count = 0
    elif spec == "backbone":
        count = model.backbone_layers
    else:
        try:
            count = int(spec)
        except ValueError:
            raise VocliError(f"--freeze {spec!r} is not known", hint="use none, backbone or a layer count") from None
        if not 0 <= count <= len(model.layers):
            raise VocliError(f"--freeze {count}: the model has {len(model.layers)} layers")
    for i, layer in enumerate(model.layers):
        for p in layer.parameters():
            p.requires_grad_(i >= count)
    return list(model.layers[:count])


# --------------------------------------------------------------------------- evaluation


def evaluate_map(model: nn.Module, valid: ValidSet, classes: Sequence[str], config, device) -> float:
    """VOC mAP@0.5 of ``model`` on the validation set via ``vocli.evaluate.evaluate_model`` (0 if no truth)."""
    from vocli.evaluate import evaluate_model, ground_truth_for_images

    if valid.ground_truth is None:
        valid.ground_truth = ground_truth_for_images(valid.data.paths, classes)
    was_training = model.training
    model.eval()
    try:
        result = evaluate_model(model, valid.data.paths, valid.ground_truth, classes=classes,
                                img_size=config.img_size, conf=config.eval_conf, iou=config.eval_iou,
                                batch_size=config.eval_batch_size, device=str(device), metric=config.metric)
    finally:
        model.train(was_training)
    return float(result.map) if math.isfinite(result.map) else 0.0


# --------------------------------------------------------------------------- metrics


CSV_FIELDS = ("epoch", "box", "obj", "cls", "total", "lr", "map", "seconds", "images")


def write_metrics(out: Path, history: list) -> None:
    """``metrics.csv`` (one row per epoch) and ``results.png`` (loss, LR and mAP curves)."""
    from vocli.paths import atomic_write_text

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in history:
        values = asdict(row)
        writer.writerow({k: ("" if values[k] is None else values[k]) for k in CSV_FIELDS})
    atomic_write_text(out / "metrics.csv", buf.getvalue())
    try:
        from vocli.plotting import multi_line_grid
    except ImportError:  # plotting not installed in this tree
        return
    epochs = [r.epoch for r in history]
    panels = [(name, {name: (epochs, [getattr(r, name) for r in history])}) for name in ("box", "obj", "cls", "total", "lr")]
    evaluated = [(r.epoch, r.map) for r in history if r.map is not None]
    if evaluated:
        panels.append(("mAP@0.5", {"mAP": ([e for e, _ in evaluated], [m for _, m in evaluated])}))
    multi_line_grid(out / "results.png", panels, xlabel="epoch", cols=3)

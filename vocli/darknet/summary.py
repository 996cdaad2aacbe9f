"""What a Darknet cfg costs, worked out from the cfg alone (no torch): ``vocli models``.

Parameters, floats of a ``.weights`` file and GFLOPs come from ``DarknetCfg.layer_specs``,
the same shapes ``vocli.darknet.model.Darknet`` builds, so they equal
``Darknet(cfg).count_parameters()`` (tests check it) without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from vocli.darknet.cfg import DarknetCfg, load_cfg


def backbone_layer_count(cfg: DarknetCfg) -> int:
    """How many leading layers form the feature extractor that ``--freeze backbone`` freezes.

    With residual blocks: up to the last ``[shortcut]`` before the first ``[yolo]``
    (Darknet-53: layers 0-74, the 52 convolutions that darknet53.conv.74 holds).
    Without (yolov3-tiny): up to the layer before the first 1x1 convolution at the
    deepest stride (layers 0-12: the conv/maxpool stack ending in the 1024-filter conv).
    """
    specs = cfg.layer_specs()
    first_yolo = next((s.index for s in specs if s.kind == "yolo"), len(specs))
    shortcuts = [s.index for s in specs[:first_yolo] if s.kind == "shortcut"]
    if shortcuts:
        return shortcuts[-1] + 1
    deepest = max(s.stride for s in specs[:first_yolo]) if first_yolo else 1
    for s in specs[:first_yolo]:
        if s.kind == "convolutional" and s.size == 1 and s.stride == deepest:
            return s.index
    return first_yolo


def model_summary(cfg: DarknetCfg, size: int = 416) -> dict:
    """Layer count, trainable parameters, floats in a .weights file, GFLOPs at ``size`` x ``size``."""
    specs = cfg.layer_specs(size, size)
    floats = sum(s.weight_count for s in specs)
    return {
        "layers": len(specs),
        "conv_layers": sum(s.kind == "convolutional" for s in specs),
        "params": sum(s.param_count for s in specs),
        "weight_floats": floats,
        "gflops": sum(s.flops for s in specs) / 1e9,
        "backbone_layers": backbone_layer_count(cfg),
    }


@dataclass
class ModelInfo:
    name: str
    classes: int
    layers: int
    conv_layers: int
    backbone_layers: int
    params: int              # trainable (BN running stats excluded)
    weight_floats: int       # floats in a full .weights file (BN running stats included)
    gflops: float            # at img_size x img_size, darknet's 2 x multiply-add count
    weights_bytes: int       # full .weights file with the 20-byte (v0.2) header
    cfg_path: str = ""       # where the shipped cfg is installed (`vocli models --export NAME FILE` copies it)


def models(img_size: int = 416) -> list[ModelInfo]:
    """The shipped cfgs with their sizes (what `vocli models` lists)."""
    from vocli.darknet.cfg import shipped_cfg_names, shipped_cfg_path

    infos = []
    for name in shipped_cfg_names():
        cfg = load_cfg(name)
        summary = model_summary(cfg, img_size)
        infos.append(ModelInfo(name=name, classes=cfg.num_classes, layers=summary["layers"],
                               conv_layers=summary["conv_layers"], backbone_layers=summary["backbone_layers"],
                               params=summary["params"], weight_floats=summary["weight_floats"],
                               gflops=round(summary["gflops"], 3), weights_bytes=20 + 4 * summary["weight_floats"],
                               cfg_path=str(shipped_cfg_path(name))))
    return infos

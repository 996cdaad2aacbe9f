"""The PyTorch network a Darknet cfg describes, computing what darknet computes.

State-dict keys (stable; the weights converter reads and writes exactly these):

    layers.<i>.conv.weight                 (filters, in/groups, size, size)
    layers.<i>.conv.bias                   (filters,)  only without batch_normalize
    layers.<i>.bn.weight / .bias           (filters,)  darknet "scales" / "biases"
    layers.<i>.bn.running_mean / running_var / num_batches_tracked

``<i>`` is the cfg layer index (0-based, ``[net]`` excluded). Non-convolutional
layers have no parameters but keep their slot in ``layers``, so indices match the cfg.

Numerics follow darknet: leaky slope 0.1; batch norm ``(x - mean) / sqrt(var + 1e-5)``
(darknet's GPU kernel; its CPU path uses ``sqrt(var) + 1e-6``, a difference below
1e-5 relative for the variances trained nets have); convolution padding ``size // 2``
when ``pad=1``; ``[maxpool]`` pads ``size - 1`` in total (``(size-1)//2`` left/top,
the rest right/bottom) and ignores padded cells, i.e. pads with -inf, so
``size=2 stride=1`` keeps the spatial size (yolov3-tiny layer 11); nearest-neighbour
upsampling; ``[route]`` concatenates (optionally the ``group_id``-th of ``groups``
channel slices of each input); ``[shortcut]`` adds the ``from`` layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from vocli.darknet.cfg import DarknetCfg, LayerSpec, load_cfg, yolo_anchors_and_mask
from vocli.darknet.summary import ModelInfo, backbone_layer_count, model_summary, models  # noqa: F401 (re-exported)


@dataclass
class YoloHead:
    """One detection scale. anchors: (A, 2) w, h in input pixels; stride: input pixels per cell."""

    anchors: torch.Tensor
    stride: int
    num_classes: int
    anchor_indices: list[int]
    layer_index: int = -1
    ignore_thresh: float = 0.7
    truth_thresh: float = 1.0
    scale_x_y: float = 1.0
    all_anchors: Optional[torch.Tensor] = field(default=None, repr=False)   # (num, 2), every head's

    @property
    def num_anchors(self) -> int:
        return int(self.anchors.shape[0])


def _activation(name: str) -> nn.Module:
    return {
        "leaky": nn.LeakyReLU(0.1),
        "linear": nn.Identity(),
        "relu": nn.ReLU(),
        "logistic": nn.Sigmoid(),
        "mish": nn.Mish(),
        "swish": nn.SiLU(),
    }[name]


class ConvLayer(nn.Module):
    """``[convolutional]``: conv (bias only without BN) -> BN -> activation."""

    def __init__(self, spec: LayerSpec):
        super().__init__()
        self.conv = nn.Conv2d(spec.in_channels, spec.filters, spec.size, spec.conv_stride, spec.padding,
                              groups=spec.groups, bias=not spec.batch_normalize)
        # darknet updates running stats as 0.99 r + 0.01 x; 0.03 (PyTorch momentum) settles
        # faster in short fine-tunes and does not change inference.
        self.bn = nn.BatchNorm2d(spec.filters, eps=1e-5, momentum=0.03) if spec.batch_normalize else None
        self.act = _activation(spec.activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        return self.act(x)


class MaxPoolLayer(nn.Module):
    """``[maxpool]`` with darknet's padding: ``padding`` cells in total, padded cells never win."""

    def __init__(self, spec: LayerSpec):
        super().__init__()
        self.size, self.stride = spec.size, spec.conv_stride
        before = spec.padding // 2
        self.pad = (before, spec.padding - before, before, spec.padding - before)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if any(self.pad):
            x = F.pad(x, self.pad, value=float("-inf"))
        return F.max_pool2d(x, self.size, self.stride)


class Upsample(nn.Module):
    def __init__(self, factor: int):
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=self.factor, mode="nearest")


class Placeholder(nn.Module):
    """Keeps a parameter-free layer's slot (route, shortcut, yolo) so indices match the cfg."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def extra_repr(self) -> str:
        return self.kind


class Darknet(nn.Module):
    """A YOLOv3-family detector built from a cfg.

    forward(x: (B, 3, H, W) float RGB in [0, 1]) -> list of raw head outputs, one per
    ``[yolo]`` layer in cfg order, each (B, A, H/stride, W/stride, 5 + C):
    tx, ty, tw, th, objectness logit, class logits (no activation applied).
    """

    def __init__(self, cfg: DarknetCfg | str):
        super().__init__()
        self.cfg = load_cfg(cfg)
        self.specs = self.cfg.layer_specs()
        self.num_classes = self.cfg.num_classes if self.cfg.yolo_layers else 0
        self.backbone_layers = backbone_layer_count(self.cfg)
        self.input_size = self.cfg.input_size
        modules: list[nn.Module] = []
        self.heads: list[YoloHead] = []
        for spec, section in zip(self.specs, self.cfg.layers):
            if spec.kind == "convolutional":
                modules.append(ConvLayer(spec))
            elif spec.kind == "maxpool":
                modules.append(MaxPoolLayer(spec))
            elif spec.kind == "upsample":
                modules.append(Upsample(spec.conv_stride))
            else:
                modules.append(Placeholder(spec.kind))
            if spec.kind == "yolo":
                anchors, mask = yolo_anchors_and_mask(section)
                all_anchors = torch.tensor(anchors, dtype=torch.float32)
                self.heads.append(YoloHead(
                    anchors=all_anchors[mask].clone(), stride=spec.stride, num_classes=section.get_int("classes", 20),
                    anchor_indices=list(mask), layer_index=spec.index,
                    ignore_thresh=section.get_float("ignore_thresh", 0.5),
                    truth_thresh=section.get_float("truth_thresh", 1.0),
                    scale_x_y=section.get_float("scale_x_y", 1.0), all_anchors=all_anchors))
        self.layers = nn.ModuleList(modules)
        # Only outputs that a later route/shortcut reads are kept during forward.
        self._saved = {i for s in self.specs if s.kind in ("route", "shortcut") for i in s.inputs}

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        saved: dict[int, torch.Tensor] = {}
        outputs: list[torch.Tensor] = []
        for spec, layer in zip(self.specs, self.layers):
            if spec.kind == "route":
                parts = [saved[i] for i in spec.inputs]
                if spec.groups > 1:
                    parts = [p.chunk(spec.groups, dim=1)[spec.group_id] for p in parts]
                x = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
            elif spec.kind == "shortcut":
                x = x + saved[spec.inputs[1]]
                if spec.activation != "linear":
                    x = _activation(spec.activation)(x)
            elif spec.kind == "yolo":
                b, _, h, w = x.shape
                a = len(self.heads[len(outputs)].anchor_indices)
                # darknet stores each anchor's 5 + C entries as consecutive channel planes.
                outputs.append(x.view(b, a, -1, h, w).permute(0, 1, 3, 4, 2).contiguous())
            else:
                x = layer(x)
            if spec.index in self._saved:
                saved[spec.index] = x
        return outputs

    def backbone_parameters(self):
        """Parameters of layers ``0 .. backbone_layers - 1`` (what ``--freeze backbone`` freezes)."""
        for layer in self.layers[: self.backbone_layers]:
            yield from layer.parameters()

    def count_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

"""The one Darknet ``.cfg`` parser: sections, typed options, and the shape of every layer.

A cfg is a list of ``[section]`` blocks of ``key=value`` lines. The first block is
``[net]`` (input size, training settings); every later block is one layer, numbered
from 0 in file order. Routes and shortcuts refer to layers by that number, either
absolute or relative (negative) to their own index, exactly as darknet does.

``layer_specs()`` walks the layers once and works out each layer's output channels,
spatial size and stride. The model builder (``vocli.darknet.model``) and the weights
converter (``converters.darknet_weights``) both use it, so they always agree on the
order and size of every tensor.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Optional, Sequence

from vocli.errors import DarknetFormatError

LAYER_TYPES = ("convolutional", "shortcut", "route", "upsample", "maxpool", "yolo")
ACTIVATIONS = ("leaky", "linear", "relu", "logistic", "mish", "swish")
# Preferred order when several shipped cfgs fit a file (COCO first, then VOC).
SHIPPED_ORDER = ("yolov3", "yolov3-tiny", "yolov3-spp", "yolov3-voc", "yolov3-tiny-voc", "yolov3-spp-voc")

_HEADER = re.compile(r"^\[\s*([A-Za-z_]+)\s*\]$")

# Bounds on what a cfg may ask for, so a hostile or mistyped one is refused with its line
# instead of allocating terabytes. Far above any real Darknet cfg: yolov3-spp holds 63 M
# weights, its largest layer output (608 x 608 input) is 12 M values, its widest layer
# 1,024 filters and its largest kernel 13 (a maxpool).
MAX_FILTERS = 16_384
MAX_KERNEL = 64
MAX_WEIGHTS = 1 << 28           # floats in the whole network: 1 GiB as float32
MAX_LAYER_OUTPUT = 1 << 28      # values in one layer's output for one image: 1 GiB as float32
MAX_INPUT_SIDE = 16_384


@dataclass
class Section:
    """One ``[kind]`` block. ``index`` is the layer number (-1 for ``[net]``)."""

    kind: str
    index: int
    line: int                                   # 1-based line of the ``[kind]`` header
    options: dict[str, str] = field(default_factory=dict)
    option_lines: dict[str, int] = field(default_factory=dict)
    source: str = "<cfg>"

    def _error(self, key: str, problem: str) -> DarknetFormatError:
        line = self.option_lines.get(key, self.line)
        return DarknetFormatError(f"{self.source}:{line}: [{self.kind}] {key}: {problem}")

    def has(self, key: str) -> bool:
        return key in self.options

    def _get(self, key: str, default, convert, expected: str):
        if key not in self.options:
            if default is None:
                raise self._error(key, "missing (required)")
            return default
        try:
            return convert(self.options[key])
        except (ValueError, OverflowError):  # OverflowError: int(float("inf"))
            raise self._error(key, f"expected {expected}, got {self.options[key]!r}") from None

    def get_str(self, key: str, default: Optional[str] = None) -> str:
        return self._get(key, default, str, "text")

    def get_int(self, key: str, default: Optional[int] = None) -> int:
        return self._get(key, default, int, "an integer")

    def get_float(self, key: str, default: Optional[float] = None) -> float:
        return self._get(key, default, float, "a number")

    def get_ints(self, key: str, default: Optional[Sequence[int]] = None) -> list[int]:
        """Comma-separated integers (``layers=-1, 61``, ``mask=0,1,2``)."""
        return self._get(key, None if default is None else list(default),
                         lambda v: [int(float(x)) for x in v.split(",") if x.strip()], "comma-separated integers")

    def get_floats(self, key: str) -> list[float]:
        """Comma-separated finite numbers (``anchors=10,13, 16,30``); required."""
        def convert(text: str) -> list[float]:
            values = [float(x) for x in text.split(",") if x.strip()]
            if not all(math.isfinite(v) for v in values):
                raise ValueError(text)
            return values

        return self._get(key, None, convert, "comma-separated numbers")

    def get_bounded(self, key: str, default: int, low: int, high: int) -> int:
        """An integer option that must lie in ``[low, high]``."""
        value = self.get_int(key, default)
        if not low <= value <= high:
            raise self._error(key, f"{value} is out of range; must be {low} to {high:,}")
        return value


@dataclass(frozen=True)
class LayerSpec:
    """What one layer computes and produces, for an input of the cfg's size.

    ``inputs``: absolute indices of the layers it reads (-1 = the image).
    ``out_channels``, ``out_h``, ``out_w``: output shape; ``stride``: input pixels per output cell.
    Convolution fields are 0/False for other layer kinds.
    """

    index: int
    kind: str
    inputs: tuple[int, ...]
    in_channels: int
    out_channels: int
    out_h: int
    out_w: int
    stride: int
    filters: int = 0
    size: int = 0
    conv_stride: int = 0
    padding: int = 0
    groups: int = 1
    group_id: int = 0
    batch_normalize: bool = False
    activation: str = "linear"

    @property
    def weight_count(self) -> int:
        """Floats this layer holds in a .weights file (BN: bias, scale, mean, var; else bias)."""
        if self.kind != "convolutional":
            return 0
        kernel = self.filters * (self.in_channels // self.groups) * self.size * self.size
        return kernel + (4 if self.batch_normalize else 1) * self.filters

    @property
    def param_count(self) -> int:
        """Trainable parameters (running mean/var excluded)."""
        if self.kind != "convolutional":
            return 0
        return self.weight_count - (2 * self.filters if self.batch_normalize else 0)

    @property
    def flops(self) -> int:
        """Darknet's count: 2 x multiply-adds of the convolution (BN, bias, activation ignored)."""
        if self.kind != "convolutional":
            return 0
        kernel = self.filters * (self.in_channels // self.groups) * self.size * self.size
        return 2 * kernel * self.out_h * self.out_w


@dataclass
class DarknetCfg:
    """A parsed cfg. ``sections[0]`` is ``[net]``; ``layers`` are the rest, in order."""

    text: str
    sections: list[Section]
    source: str = "<cfg>"
    name: Optional[str] = None      # shipped name, or the file stem

    @property
    def net(self) -> Section:
        return self.sections[0]

    @property
    def layers(self) -> list[Section]:
        return self.sections[1:]

    @property
    def yolo_layers(self) -> list[Section]:
        return [s for s in self.layers if s.kind == "yolo"]

    @property
    def input_size(self) -> tuple[int, int]:
        """(height, width) from ``[net]``."""
        return (self.net.get_bounded("height", 416, 1, MAX_INPUT_SIDE),
                self.net.get_bounded("width", 416, 1, MAX_INPUT_SIDE))

    @property
    def num_classes(self) -> int:
        """Classes of the ``[yolo]`` layers (they must agree)."""
        counts = {s.get_bounded("classes", 20, 1, MAX_FILTERS) for s in self.yolo_layers}
        if not counts:
            raise DarknetFormatError(f"{self.source}: no [yolo] layer, so no class count")
        if len(counts) > 1:
            raise DarknetFormatError(f"{self.source}: [yolo] layers disagree on classes: {sorted(counts)}")
        return counts.pop()

    def layer_specs(self, height: Optional[int] = None, width: Optional[int] = None) -> list[LayerSpec]:
        """Shapes of every layer for an input of ``height`` x ``width`` (default: the cfg's)."""
        default_h, default_w = self.input_size
        return _layer_specs(self, height or default_h, width or default_w)

    def weight_count(self, cutoff: Optional[int] = None) -> int:
        """Floats after the header of a .weights file for the first ``cutoff`` layers (all if None)."""
        specs = self.layer_specs()
        return sum(s.weight_count for s in specs[: cutoff if cutoff is not None else len(specs)])

    # -------------------------------------------------------------- rewriting
    def with_classes(self, num_classes: int) -> "DarknetCfg":
        """Same network for ``num_classes``: rewrites ``classes=`` and the ``filters=`` of each
        convolution feeding a ``[yolo]`` layer (``len(mask) * (5 + classes)``)."""
        if num_classes < 1:
            raise DarknetFormatError(f"{self.source}: classes must be >= 1, got {num_classes}")
        edits: dict[tuple[int, str], str] = {}
        for yolo in self.yolo_layers:
            conv = self.layers[yolo.index - 1] if yolo.index > 0 else None
            if conv is None or conv.kind != "convolutional":
                raise DarknetFormatError(
                    f"{self.source}:{yolo.line}: [yolo] must follow a [convolutional] layer to change classes")
            edits[(yolo.index, "classes")] = str(num_classes)
            edits[(conv.index, "filters")] = str(len(_yolo_mask(yolo)) * (5 + num_classes))
        return self._rewrite(edits)

    def with_anchors(self, anchors: Sequence[tuple[int, int]]) -> "DarknetCfg":
        """Same network with new anchors (w, h in input pixels); the count must stay the same."""
        for yolo in self.yolo_layers:
            old = len(_yolo_anchors(yolo))
            if len(anchors) != old:
                raise DarknetFormatError(
                    f"{self.source}:{yolo.line}: [yolo] has {old} anchors, got {len(anchors)}",
                    hint=f"compute {old} anchors for this cfg")
        text = ",  ".join(f"{int(round(w))},{int(round(h))}" for w, h in anchors)
        edits = {}
        for yolo in self.yolo_layers:
            edits[(yolo.index, "anchors")] = text
            edits[(yolo.index, "num")] = str(len(anchors))
        return self._rewrite(edits)

    def _rewrite(self, edits: dict[tuple[int, str], str]) -> "DarknetCfg":
        """Replace option values in the text (inserting missing keys after the header)."""
        lines = self.text.splitlines()
        inserts: dict[int, list[str]] = {}
        for (index, key), value in edits.items():
            section = self.sections[index + 1]
            if key in section.option_lines:
                lines[section.option_lines[key] - 1] = f"{key}={value}"
            else:
                inserts.setdefault(section.line, []).append(f"{key}={value}")
        for line_no in sorted(inserts, reverse=True):
            lines[line_no:line_no] = inserts[line_no]
        return parse_cfg("\n".join(lines) + "\n", source=self.source, name=self.name)


def _yolo_anchors(section: Section) -> list[tuple[float, float]]:
    values = section.get_floats("anchors")
    if not values or len(values) % 2:
        raise section._error("anchors", f"odd number of values ({len(values)}); need w,h pairs")
    if min(values) <= 0:
        raise section._error("anchors", f"sizes must be positive, got {min(values):g}")
    return list(zip(values[0::2], values[1::2]))


def _yolo_mask(section: Section) -> list[int]:
    anchors = _yolo_anchors(section)
    mask = section.get_ints("mask", list(range(len(anchors))))
    bad = [m for m in mask if not 0 <= m < len(anchors)]
    if bad:
        raise section._error("mask", f"anchor index {bad[0]} out of range (cfg has {len(anchors)} anchors)")
    return mask


def yolo_anchors_and_mask(section: Section) -> tuple[list[tuple[float, float]], list[int]]:
    """All anchors (w, h pixels) of a ``[yolo]`` section and the indices this head uses."""
    return _yolo_anchors(section), _yolo_mask(section)


def parse_cfg(text: str, source: str = "<cfg>", name: Optional[str] = None) -> DarknetCfg:
    """Parse cfg text. Errors name ``source``, the line and the key."""
    sections: list[Section] = []
    for line_no, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith(";"):
            continue
        header = _HEADER.match(line)
        if header:
            kind = header.group(1).lower()
            if kind == "net" or kind == "network":
                if sections:
                    raise DarknetFormatError(f"{source}:{line_no}: [net] must be the first section")
                kind = "net"
            elif kind in ("conv", "convolutional"):
                kind = "convolutional"
            elif kind not in LAYER_TYPES:
                raise DarknetFormatError(
                    f"{source}:{line_no}: unsupported section [{kind}]",
                    hint=f"vocli supports [net] and {', '.join('[' + t + ']' for t in LAYER_TYPES)}")
            if not sections and kind != "net":
                raise DarknetFormatError(f"{source}:{line_no}: the first section must be [net], got [{kind}]")
            sections.append(Section(kind, len(sections) - 1, line_no, source=source))
            continue
        if not sections:
            raise DarknetFormatError(f"{source}:{line_no}: option {line!r} before any [section]")
        if "=" not in line:
            raise DarknetFormatError(f"{source}:{line_no}: expected key=value, got {line!r}")
        key, value = (part.strip() for part in line.split("=", 1))
        section = sections[-1]
        if key in section.options:
            raise DarknetFormatError(f"{source}:{line_no}: [{section.kind}] {key}: given twice "
                                     f"(first on line {section.option_lines[key]})")
        section.options[key] = value
        section.option_lines[key] = line_no
    if not sections:
        raise DarknetFormatError(f"{source}: no sections; not a Darknet cfg")
    if len(sections) == 1:
        raise DarknetFormatError(f"{source}: [net] but no layers")
    cfg = DarknetCfg(text=text, sections=sections, source=source, name=name)
    specs = cfg.layer_specs()  # validate references and shapes now, with line numbers
    weights = sum(s.weight_count for s in specs)
    if weights > MAX_WEIGHTS:
        raise DarknetFormatError(f"{source}: the network would hold {weights:,} weights "
                                 f"({weights * 4 / 2**30:,.1f} GiB), over the limit of {MAX_WEIGHTS:,}",
                                 hint="check filters= and size= of the largest layers")
    return cfg


def _cfg_dir():
    return resources.files("vocli.darknet") / "cfg"


def shipped_cfg_names() -> list[str]:
    """Names of the cfgs shipped in the package, in preference order."""
    present = {p.name[:-4] for p in _cfg_dir().iterdir() if p.name.endswith(".cfg")}
    return [n for n in SHIPPED_ORDER if n in present] + sorted(present - set(SHIPPED_ORDER))


def shipped_cfg_path(name: str) -> Path:
    """Where the shipped cfg ``name`` is installed (read it, or copy it with ``export_cfg``)."""
    path = Path(str(_cfg_dir() / f"{name}.cfg"))
    if name not in shipped_cfg_names():
        raise DarknetFormatError(f"{name!r} is not a shipped cfg", hint=f"shipped cfgs: {', '.join(shipped_cfg_names())}")
    return path


def export_cfg(name_or_path, dest, overwrite: bool = False) -> Path:
    """Copy a shipped cfg (by name) or a cfg file to ``dest``, byte for byte, to start your own from.

    An existing ``dest`` is kept unless ``overwrite``. The source is parsed first: only a cfg
    vocli can build is copied.
    """
    from vocli.paths import atomic_write_bytes

    dest = Path(dest).expanduser()
    if dest.exists() and not overwrite:
        raise DarknetFormatError(f"{dest} exists", hint="choose another file name, or pass --overwrite to replace it")
    atomic_write_bytes(dest, load_cfg(name_or_path).text.encode("utf-8"))
    return dest


def load_cfg(name_or_path) -> DarknetCfg:
    """A shipped cfg by name (``yolov3``, ``yolov3-tiny-voc`` ...) or a cfg file path."""
    if isinstance(name_or_path, DarknetCfg):
        return name_or_path
    text_name = str(name_or_path)
    shipped = _cfg_dir() / f"{text_name}.cfg"
    if "/" not in text_name and "\\" not in text_name and not text_name.endswith(".cfg") and shipped.is_file():
        return parse_cfg(shipped.read_text(encoding="utf-8"), source=f"{text_name}.cfg", name=text_name)
    path = Path(name_or_path).expanduser()
    if not path.is_file():
        raise DarknetFormatError(f"{path}: no such cfg file or shipped cfg name",
                                 hint=f"shipped cfgs: {', '.join(shipped_cfg_names())}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DarknetFormatError(f"{path}: not a text file; not a Darknet cfg") from None
    return parse_cfg(text, source=str(path), name=path.stem)


# ------------------------------------------------------------------ shapes


def _resolve(section: Section, key: str, refs: list[int]) -> list[int]:
    absolute = []
    for ref in refs:
        target = section.index + ref if ref < 0 else ref
        if not 0 <= target < section.index:
            raise section._error(key, f"layer {ref} -> {target} is not an earlier layer "
                                      f"(this is layer {section.index})")
        absolute.append(target)
    return absolute


def _layer_specs(cfg: DarknetCfg, height: int, width: int) -> list[LayerSpec]:
    channels = cfg.net.get_bounded("channels", 3, 1, MAX_FILTERS)
    h, w, stride = height, width, 1
    specs: list[LayerSpec] = []
    for sec in cfg.layers:
        prev = specs[-1] if specs else None
        c_in = prev.out_channels if prev else channels
        h_in, w_in, s_in = (prev.out_h, prev.out_w, prev.stride) if prev else (h, w, stride)
        inputs: tuple[int, ...] = (sec.index - 1,)
        extra: dict = {}
        if sec.kind == "convolutional":
            filters = sec.get_bounded("filters", 1, 1, MAX_FILTERS)
            size = sec.get_bounded("size", 1, 1, MAX_KERNEL)
            conv_stride = sec.get_bounded("stride", 1, 1, MAX_KERNEL)
            padding = size // 2 if sec.get_int("pad", 0) else sec.get_bounded("padding", 0, 0, MAX_KERNEL)
            groups = sec.get_bounded("groups", 1, 1, MAX_FILTERS)
            activation = sec.get_str("activation", "logistic")
            if activation not in ACTIVATIONS:
                raise sec._error("activation", f"unsupported {activation!r}; use one of {', '.join(ACTIVATIONS)}")
            if c_in % groups or filters % groups:
                raise sec._error("groups", f"{groups} groups do not divide {c_in} inputs / {filters} filters")
            out_c = filters
            out_h = (h_in + 2 * padding - size) // conv_stride + 1
            out_w = (w_in + 2 * padding - size) // conv_stride + 1
            s_out = s_in * conv_stride
            extra = dict(filters=filters, size=size, conv_stride=conv_stride, padding=padding, groups=groups,
                         batch_normalize=bool(sec.get_int("batch_normalize", 0)), activation=activation)
        elif sec.kind == "maxpool":
            size = sec.get_bounded("size", 1, 1, MAX_KERNEL)
            conv_stride = sec.get_bounded("stride", size, 1, MAX_KERNEL)
            padding = sec.get_bounded("padding", size - 1, 0, MAX_KERNEL)  # darknet: total, split left/right
            out_c = c_in
            out_h = (h_in + padding - size) // conv_stride + 1
            out_w = (w_in + padding - size) // conv_stride + 1
            s_out = s_in * conv_stride
            extra = dict(size=size, conv_stride=conv_stride, padding=padding)
        elif sec.kind == "upsample":
            factor = sec.get_bounded("stride", 2, 1, MAX_KERNEL)  # only upsampling
            out_c, out_h, out_w = c_in, h_in * factor, w_in * factor
            s_out = max(1, s_in // factor)
            extra = dict(conv_stride=factor)
        elif sec.kind == "route":
            inputs = tuple(_resolve(sec, "layers", sec.get_ints("layers")))
            if not inputs:
                raise sec._error("layers", "no layer given")
            groups, group_id = sec.get_int("groups", 1), sec.get_int("group_id", 0)
            sources = [specs[i] for i in inputs]
            sizes = {(s.out_h, s.out_w) for s in sources}
            if len(sizes) > 1:
                raise sec._error("layers", "routed layers differ in size: " + ", ".join(
                    f"layer {s.index} is {s.out_h}x{s.out_w}" for s in sources))
            if not 0 <= group_id < groups or any(s.out_channels % groups for s in sources):
                raise sec._error("groups", f"groups={groups}, group_id={group_id} do not split the inputs")
            out_c = sum(s.out_channels // groups for s in sources)
            out_h, out_w, s_out = sources[0].out_h, sources[0].out_w, sources[0].stride
            extra = dict(groups=groups, group_id=group_id)
        elif sec.kind == "shortcut":
            (source,) = _resolve(sec, "from", sec.get_ints("from"))[:1] or [None]
            inputs = (sec.index - 1, source)
            src = specs[source]
            if (src.out_channels, src.out_h, src.out_w) != (c_in, h_in, w_in):
                raise sec._error("from", f"layer {source} is {src.out_channels}x{src.out_h}x{src.out_w}, "
                                         f"the previous layer {c_in}x{h_in}x{w_in}; shapes must match")
            activation = sec.get_str("activation", "linear")
            if activation not in ACTIVATIONS:
                raise sec._error("activation", f"unsupported {activation!r}")
            out_c, out_h, out_w, s_out = c_in, h_in, w_in, s_in
            extra = dict(activation=activation)
        else:  # yolo
            anchors, mask = yolo_anchors_and_mask(sec)
            classes = sec.get_bounded("classes", 20, 1, MAX_FILTERS)
            expected = len(mask) * (5 + classes)
            if c_in != expected:
                raise sec._error("classes", f"the layer before has {c_in} filters, but {len(mask)} anchors x "
                                            f"(5 + {classes} classes) needs {expected}")
            out_c, out_h, out_w, s_out = c_in, h_in, w_in, s_in
        if out_h < 1 or out_w < 1:
            raise DarknetFormatError(f"{cfg.source}:{sec.line}: [{sec.kind}] layer {sec.index} output would be "
                                     f"{out_h}x{out_w} for a {height}x{width} input; use a larger input")
        if out_c * out_h * out_w > MAX_LAYER_OUTPUT:
            raise DarknetFormatError(f"{cfg.source}:{sec.line}: [{sec.kind}] layer {sec.index} output would be "
                                     f"{out_c}x{out_h}x{out_w} = {out_c * out_h * out_w:,} values for a "
                                     f"{height}x{width} input, over the limit of {MAX_LAYER_OUTPUT:,}",
                                     hint="use a smaller input or fewer filters")
        specs.append(LayerSpec(index=sec.index, kind=sec.kind, inputs=inputs, in_channels=c_in,
                               out_channels=out_c, out_h=out_h, out_w=out_w, stride=s_out, **extra))
    return specs


"""Darknet ``.weights`` <-> PyTorch ``.pt`` / HDF5 ``.h5``, lossless both ways.

File layout (little-endian): ``major, minor, revision`` as int32, then ``seen`` (images
trained on) as int64 when ``major*10 + minor >= 2`` and both are below 1000, else int32
(a 20- or 16-byte header). Then, for every ``[convolutional]`` layer in cfg order,
float32 arrays: with batch norm ``bn bias, bn scale, running mean, running variance``,
without it ``conv bias``; then the conv weights (filters, in/groups, size, size).
Nothing else: the cfg alone says how the floats split, so the file size must match it.

A converted ``.pt`` is a plain dict, loadable with ``torch.load(weights_only=True)``:
``{"format": "vocli-darknet-1", "state_dict": {key: tensor}, "cfg": text, "cfg_name",
"header": [major, minor, revision], "seen", "cutoff", "trailing": uint8 tensor | None}``
with the state-dict keys of ``vocli.darknet.model`` (``layers.<i>.conv.weight`` ...).
"""

from __future__ import annotations

import functools
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from vocli.darknet.cfg import DarknetCfg, LayerSpec, load_cfg, shipped_cfg_names
from vocli.errors import DarknetFormatError
from vocli.outputs import check_output_file
from vocli.paths import atomic_h5, atomic_path, find_weights_file

FORMAT = "vocli-darknet-1"
FLOAT = np.dtype("<f4")
_CONV_N = re.compile(r"\.conv\.(\d+)$")

Progress = Optional[Callable[[int], None]]


@dataclass
class DarknetWeights:
    """tensors: state-dict key -> float32 tensor, in file order."""

    header: tuple[int, int, int]
    seen: int
    tensors: dict
    cfg: DarknetCfg
    cutoff: Optional[int] = None
    trailing: Optional[bytes] = None


@dataclass
class ConvertReport:
    src: Path
    out: Path
    format: str                 # "pt" or "h5"
    cfg: str                    # shipped name or cfg path
    cfg_auto: bool              # picked from the file size
    num_classes: int
    header: tuple[int, int, int]
    seen: int
    tensors: int
    floats: int
    cutoff: Optional[int]
    trailing_bytes: int
    bytes_in: int
    bytes_out: int


@dataclass
class ExportReport:
    src: Path
    out: Path
    cfg: str
    header: tuple[int, int, int]
    seen: int
    floats: int
    bytes_out: int


@dataclass
class LoadReport:
    loaded: list
    skipped: list               # (key, reason)
    missing: list


# --------------------------------------------------------------------- header


def header_size(major: int, minor: int) -> int:
    """20 bytes (int64 ``seen``) for version >= 0.2, else 16 (int32 ``seen``)."""
    return 20 if major * 10 + minor >= 2 and major < 1000 and minor < 1000 else 16


def pack_header(header, seen: int) -> bytes:
    major, minor, revision = (int(v) for v in header)
    seen_fmt = "q" if header_size(major, minor) == 20 else "i"
    return struct.pack(f"<3i{seen_fmt}", major, minor, revision, int(seen))


def _sniff(head: bytes) -> Optional[str]:
    """Name what a non-weights file looks like, from its first bytes."""
    start = head.lstrip().lower()
    if start.startswith((b"<!doctype html", b"<html", b"<head", b"<?xml", b"<!--")) or b"<html" in start[:512]:
        return "looks like an HTML page, not Darknet weights"
    if start.startswith((b"{", b"[")) and head.isascii():
        return "looks like a JSON document, not Darknet weights"
    if head.startswith(b"\x1f\x8b"):
        return "is a gzip archive, not Darknet weights"
    if head.startswith(b"PK\x03\x04"):
        return "is a zip archive (a PyTorch .pt?), not Darknet weights"
    if head.startswith(b"\x89HDF"):
        return "is an HDF5 file, not Darknet weights"
    if len(head) >= 16 and all(32 <= b < 127 or b in (9, 10, 13) for b in head[:64]):
        return "looks like a text file, not Darknet weights"
    return None


def read_header(path) -> tuple[tuple[int, int, int], int, int]:
    """-> ((major, minor, revision), seen, header bytes). Garbage is named, not misread."""
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(512)
    what = _sniff(head)
    if what:
        raise DarknetFormatError(f"{path}: {what}", hint="re-download it")
    if len(head) < 16:
        raise DarknetFormatError(f"{path}: {len(head)} bytes, shorter than a Darknet header (16-20 bytes)",
                                 hint="re-download it")
    major, minor, revision = struct.unpack_from("<3i", head)
    if not all(0 <= v < 1 << 20 for v in (major, minor, revision)):
        raise DarknetFormatError(f"{path}: header version {major}.{minor}.{revision} is not a Darknet header",
                                 hint="re-download it")
    size = header_size(major, minor)
    if len(head) < size:
        raise DarknetFormatError(f"{path}: {len(head)} bytes, shorter than its {size}-byte header",
                                 hint="re-download it")
    (seen,) = struct.unpack_from("<q" if size == 20 else "<i", head, 12)
    return (major, minor, revision), seen, size


# --------------------------------------------------------------------- layout


def tensor_layout(spec: LayerSpec) -> list[tuple[str, tuple[int, ...]]]:
    """(state-dict key, shape) of one layer's arrays, in file order."""
    if spec.kind != "convolutional":
        return []
    p, f = f"layers.{spec.index}.", spec.filters
    kernel = (f, spec.in_channels // spec.groups, spec.size, spec.size)
    if spec.batch_normalize:
        vectors = ["bn.bias", "bn.weight", "bn.running_mean", "bn.running_var"]
    else:
        vectors = ["conv.bias"]
    return [(p + name, (f,)) for name in vectors] + [(p + "conv.weight", kernel)]


def _specs(cfg: DarknetCfg, cutoff: Optional[int]) -> list[LayerSpec]:
    specs = cfg.layer_specs()
    if cutoff is not None and not 0 < cutoff <= len(specs):
        raise DarknetFormatError(f"cutoff {cutoff} is outside 1..{len(specs)} (layers of {cfg.source})")
    return specs[:cutoff] if cutoff is not None else specs


def cutoff_from_name(path) -> Optional[int]:
    """``darknet53.conv.74`` -> 74 (darknet's convention for partial weights)."""
    match = _CONV_N.search(Path(path).name)
    return int(match.group(1)) if match else None


@functools.lru_cache(maxsize=None)
def _shipped_counts(name: str) -> tuple[int, ...]:
    """Cumulative float counts after each layer of a shipped cfg."""
    return tuple(np.cumsum([s.weight_count for s in load_cfg(name).layer_specs()]).tolist())


def _shipped_floats(name: str, cutoff: Optional[int]) -> Optional[int]:
    counts = _shipped_counts(name)
    if cutoff is not None and not 0 < cutoff <= len(counts):
        return None
    return counts[(cutoff or len(counts)) - 1]


def match_shipped_cfgs(floats: int, cutoff: Optional[int] = None) -> list[str]:
    """Shipped cfg names whose first ``cutoff`` layers hold exactly ``floats`` floats."""
    return [n for n in shipped_cfg_names() if _shipped_floats(n, cutoff) == floats]


def _expected_sizes(hsize: int, cutoff: Optional[int]) -> str:
    parts = []
    for name in shipped_cfg_names():
        floats = _shipped_floats(name, cutoff)
        if floats is not None:
            parts.append(f"{name}: {hsize + 4 * floats:,} bytes")
    return "; ".join(parts)


def _check_size(path: Path, cfg: DarknetCfg, specs, hsize: int, allow_trailing: bool, cutoff) -> int:
    """Raise unless the file holds the cfg's floats; return the number of trailing bytes."""
    payload = path.stat().st_size - hsize
    needed = sum(s.weight_count for s in specs)
    available = payload // 4
    what = f"{cfg.source}" + (f" (first {cutoff} layers)" if cutoff is not None else "")
    others = [n for n in match_shipped_cfgs(available, cutoff) if payload % 4 == 0 and n != cfg.name]
    hint = (f"the file size fits shipped cfg {others[0]} ({load_cfg(others[0]).num_classes} classes): "
            f"pass --cfg {others[0]}") if others else None
    if available < needed:
        end = 0
        for spec in specs:
            end += spec.weight_count
            if end > available:
                break
        raise DarknetFormatError(
            f"{path}: data runs out in layer {spec.index} ([convolutional], {spec.filters} filters, "
            f"{spec.size}x{spec.size}): {needed - available:,} floats missing; the file has {available:,} floats "
            f"after its {hsize}-byte header, {what} needs {needed:,}",
            hint=hint or "the download is incomplete or the cfg is wrong: re-download, or pass the cfg it was trained with")
    extra = payload - 4 * needed
    if extra and not allow_trailing:
        raise DarknetFormatError(
            f"{path}: {extra:,} bytes ({_floats_in(extra)}) left after the last layer of {what}, "
            f"which needs {needed:,} floats",
            hint=hint or "wrong cfg? pass the right --cfg, or --allow-trailing to keep the extra bytes")
    return extra


def _floats_in(nbytes: int) -> str:
    """``"138,600 floats"``, or ``"2 floats and 3 bytes"`` when ``nbytes`` is not whole floats."""
    floats, rest = divmod(nbytes, 4)
    return f"{floats:,} float{'' if floats == 1 else 's'}" + (f" and {rest} byte{'' if rest == 1 else 's'}" if rest else "")


# --------------------------------------------------------------------- read / write


def read_darknet_weights(path, cfg, cutoff: Optional[int] = None, allow_trailing: bool = False,
                         progress: Progress = None) -> DarknetWeights:
    """Read a .weights file into tensors (state-dict keys), after checking its size against ``cfg``.

    Reads each array with ``np.fromfile`` straight into its final buffer: peak memory is
    about the file size.
    """
    import torch

    path = Path(path)
    cfg = load_cfg(cfg)
    header, seen, hsize = read_header(path)
    specs = _specs(cfg, cutoff)
    trailing_bytes = _check_size(path, cfg, specs, hsize, allow_trailing, cutoff)
    tensors = {}
    with open(path, "rb") as f:
        f.seek(hsize)
        for spec in specs:
            for key, shape in tensor_layout(spec):
                count = int(np.prod(shape))
                array = np.fromfile(f, dtype=FLOAT, count=count)
                if array.size != count:  # the file changed under us
                    raise DarknetFormatError(f"{path}: ended while reading {key}", hint="re-download it")
                tensors[key] = torch.from_numpy(array.astype(np.float32, copy=False)).view(shape)
            if progress and spec.weight_count:
                progress(4 * spec.weight_count)
        trailing = f.read() if trailing_bytes else None
    return DarknetWeights(header=header, seen=seen, tensors=tensors, cfg=cfg, cutoff=cutoff, trailing=trailing)


def write_darknet_weights(path, cfg, state_dict, header=(0, 2, 0), seen: int = 0, cutoff: Optional[int] = None,
                          trailing: Optional[bytes] = None, progress: Progress = None) -> int:
    """Write ``state_dict`` as a .weights file for ``cfg`` (atomically); return bytes written."""
    cfg = load_cfg(cfg)
    specs = _specs(cfg, cutoff)
    layout = [item for spec in specs for item in tensor_layout(spec)]
    for key, shape in layout:  # validate everything before creating the file
        if key not in state_dict:
            raise DarknetFormatError(f"state dict has no {key}, which {cfg.source} needs",
                                     hint="pass the cfg the model was built from (--cfg)")
        if tuple(state_dict[key].shape) != shape:
            raise DarknetFormatError(f"{key} is {tuple(state_dict[key].shape)}, {cfg.source} needs {shape}",
                                     hint="pass the cfg the model was built from (--cfg)")
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(pack_header(header, seen))
        for spec in specs:
            for key, _ in tensor_layout(spec):
                f.write(state_dict[key].detach().cpu().contiguous().numpy().astype(FLOAT, copy=False).tobytes())
            if progress and spec.weight_count:
                progress(4 * spec.weight_count)
        if trailing:
            f.write(trailing)
    return Path(path).stat().st_size


def _cfg_label(cfg: DarknetCfg) -> str:
    return cfg.name or cfg.source


def _pick_cfg(src: Path, cfg, cutoff: Optional[int], hsize: int) -> tuple[DarknetCfg, bool]:
    if cfg is not None:
        return load_cfg(cfg), False
    payload = src.stat().st_size - hsize
    matches = match_shipped_cfgs(payload // 4, cutoff) if payload % 4 == 0 else []
    if not matches:
        layers = f"first {cutoff} layers of " if cutoff is not None else ""
        raise DarknetFormatError(
            f"{src}: {payload:,} bytes after the {hsize}-byte header fit no shipped cfg ({layers}"
            f"{_expected_sizes(hsize, cutoff)})",
            hint="pass --cfg with the cfg this file was trained with, or re-download it if it is truncated")
    return load_cfg(matches[0]), True


def cfg_for_weights(src, cfg=None, cutoff: Optional[int] = None) -> tuple[DarknetCfg, bool]:
    """The cfg of a darknet ``.weights`` file: ``cfg`` (a shipped name or a path) when given, else the
    shipped cfg whose float count equals the file's (its first ``cutoff`` layers; default: N of a
    ``.conv.N`` name). Returns (cfg, picked by size). The one resolver ``convert-weights``,
    ``detect`` and ``evaluate`` use."""
    src = find_weights_file(src)
    if cutoff is None:
        cutoff = cutoff_from_name(src)
    _, _, hsize = read_header(src)
    return _pick_cfg(src, cfg, cutoff, hsize)


def _default_out(src: Path) -> Path:
    stem = src.name[: -len(".weights")] if src.name.endswith(".weights") else src.name
    return src.with_name(stem + ".pt")


def convert_weights(src, cfg=None, out=None, cutoff: Optional[int] = None, allow_trailing: bool = False,
                    overwrite: bool = False, progress: Progress = None) -> ConvertReport:
    """Darknet .weights -> ``out`` (.pt or .h5; default: beside ``src`` as .pt).

    ``cfg``: shipped name or path; omitted, the shipped cfg whose float count equals the
    file's is used. ``cutoff`` (or a ``.conv.N`` file name): only the first N layers.
    Every check runs before anything is written. ``out`` is never ``src``; an existing ``out``
    is replaced only with ``overwrite`` (``vocli.outputs.check_output_file``).
    """
    src = find_weights_file(src)
    if not src.is_file():
        raise DarknetFormatError(f"{src}: no such file", hint="check the path, or `vocli fetch` it")
    out = check_output_file(out if out is not None else _default_out(src), [src], overwrite=overwrite)
    kind = {".pt": "pt", ".pth": "pt", ".h5": "h5", ".hdf5": "h5"}.get(out.suffix.lower())
    if kind is None:
        raise DarknetFormatError(f"{out}: unknown output type {out.suffix!r}; use .pt or .h5")
    if cutoff is None:
        cutoff = cutoff_from_name(src)
    header, seen, hsize = read_header(src)
    cfg_obj, auto = _pick_cfg(src, cfg, cutoff, hsize)
    weights = read_darknet_weights(src, cfg_obj, cutoff=cutoff, allow_trailing=allow_trailing, progress=progress)
    (save_pt if kind == "pt" else save_h5)(out, weights)
    return ConvertReport(
        src=src, out=out, format=kind, cfg=_cfg_label(cfg_obj), cfg_auto=auto,
        num_classes=cfg_obj.num_classes if cfg_obj.yolo_layers else 0, header=header, seen=seen,
        tensors=len(weights.tensors), floats=sum(int(t.numel()) for t in weights.tensors.values()),
        cutoff=cutoff, trailing_bytes=len(weights.trailing or b""), bytes_in=src.stat().st_size,
        bytes_out=out.stat().st_size)


# --------------------------------------------------------------------- .pt / .h5


def save_pt(path, weights: DarknetWeights) -> None:
    import torch

    payload = {
        "format": FORMAT, "state_dict": weights.tensors, "cfg": weights.cfg.text, "cfg_name": weights.cfg.name,
        "header": list(weights.header), "seen": int(weights.seen), "cutoff": weights.cutoff,
        "trailing": torch.frombuffer(bytearray(weights.trailing), dtype=torch.uint8) if weights.trailing else None,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def save_h5(path, weights: DarknetWeights) -> None:
    """One dataset per tensor under ``state_dict/``; metadata as root attributes."""
    with atomic_h5(path) as f:  # built in memory: HDF5 itself never meets a full disk
        f.attrs.update({"format": FORMAT, "cfg": weights.cfg.text, "cfg_name": weights.cfg.name or "",
                        "header": np.asarray(weights.header, dtype=np.int64), "seen": int(weights.seen),
                        "cutoff": -1 if weights.cutoff is None else weights.cutoff})
        group = f.create_group("state_dict")
        for key, tensor in weights.tensors.items():
            group.create_dataset(key, data=tensor.numpy())
        if weights.trailing:
            f.create_dataset("trailing", data=np.frombuffer(weights.trailing, dtype=np.uint8))


@dataclass
class _Loaded:
    """A state dict plus whatever metadata its file carried."""

    state_dict: dict
    cfg_text: Optional[str] = None
    cfg_name: Optional[str] = None
    header: tuple = (0, 2, 0)
    seen: int = 0
    cutoff: Optional[int] = None
    trailing: Optional[bytes] = None
    names: Optional[tuple[str, ...]] = None  # class names (train checkpoints)
    img_size: Optional[int] = None  # the input size a `vocli train` checkpoint was trained at


def _trained_size(obj: dict) -> Optional[int]:
    """``img_size`` of a checkpoint (best.pt), else of its training ``config`` (last.pt); None when absent."""
    config = obj.get("config") if isinstance(obj.get("config"), dict) else {}
    for value in (obj.get("img_size"), config.get("img_size")):
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def _class_names(value) -> Optional[tuple[str, ...]]:
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    return None


def _strip_prefix(state: dict) -> dict:
    """Drop a ``module.`` (DataParallel) or ``model.`` prefix shared by every key."""
    for prefix in ("module.", "model."):
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def _from_dict(obj, source: str) -> _Loaded:
    import torch

    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        trailing = obj.get("trailing")
        return _Loaded(obj["state_dict"], obj.get("cfg"), obj.get("cfg_name"), tuple(obj.get("header", (0, 2, 0))),
                       int(obj.get("seen", 0)), obj.get("cutoff"),
                       bytes(trailing.numpy().tobytes()) if trailing is not None else None,
                       img_size=_trained_size(obj))
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):  # a `vocli train` checkpoint
        # `vocli train` writes the model's own cfg text (re-classed, with fitted anchors) at the
        # top level as ``cfg_text`` and the cfg it started from in ``config["cfg"]``.
        config = obj.get("config") if isinstance(obj.get("config"), dict) else {}
        cfg_ref = config.get("cfg")
        texts = [obj.get("cfg_text"), config.get("cfg_text"), cfg_ref]
        cfg_text = next((t for t in texts if isinstance(t, str) and "[net]" in t), None)
        cfg_name = cfg_ref if isinstance(cfg_ref, str) and "[net]" not in cfg_ref else None
        header = obj.get("header") or (0, 2, 0)
        return _Loaded(_strip_prefix(obj["model"]), cfg_text, cfg_name, tuple(header), int(obj.get("seen", 0) or 0),
                       names=_class_names(obj.get("classes", config.get("classes"))), img_size=_trained_size(obj))
    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return _Loaded(_strip_prefix(obj))
    raise DarknetFormatError(f"{source}: not a vocli weights file, train checkpoint or state dict",
                             hint="convert Darknet weights with `vocli convert-weights` first")


def load_payload(path) -> _Loaded:
    """Read a converted .pt/.h5, a `vocli train` checkpoint or a bare state dict."""
    import torch

    path = Path(path).expanduser()
    if not path.is_file():
        raise DarknetFormatError(f"{path}: no such file")
    if path.suffix.lower() in (".h5", ".hdf5"):
        import h5py

        from vocli.hdf5_errors import hdf5_errors

        with hdf5_errors(path, "vocli Darknet HDF5 file", error=DarknetFormatError), h5py.File(path, "r") as f:
            if f.attrs.get("format") != FORMAT:
                raise DarknetFormatError(f"{path}: not a vocli Darknet HDF5 file (no format={FORMAT} attribute)")
            state = {k: torch.from_numpy(np.asarray(f["state_dict"][k][()])) for k in f["state_dict"]}
            cutoff = int(f.attrs["cutoff"])
            trailing = f["trailing"][()].tobytes() if "trailing" in f else None
            return _Loaded(state, str(f.attrs["cfg"]), str(f.attrs["cfg_name"]) or None,
                           tuple(int(v) for v in f.attrs["header"]), int(f.attrs["seen"]),
                           None if cutoff < 0 else cutoff, trailing)
    from vocli.yolo.checkpoint import load_torch_file

    return _from_dict(load_torch_file(path, "weights file"), str(path))


def _resolve_cfg(loaded: _Loaded, cfg, source) -> DarknetCfg:
    if cfg is not None:
        return load_cfg(cfg)
    if loaded.cfg_text:
        from vocli.darknet.cfg import parse_cfg

        return parse_cfg(loaded.cfg_text, source=f"{source} (embedded cfg)", name=loaded.cfg_name)
    if loaded.cfg_name:
        return load_cfg(loaded.cfg_name)
    raise DarknetFormatError(f"{source}: carries no cfg", hint="pass --cfg NAME|PATH")


def export_weights(src, out, cfg=None, overwrite: bool = False, progress: Progress = None) -> ExportReport:
    """.pt / .h5 / train checkpoint -> Darknet .weights (the header and ``seen`` it carried).

    ``out`` is never ``src``; an existing ``out`` is replaced only with ``overwrite``.
    """
    src = Path(src).expanduser()
    out = check_output_file(out, [src], overwrite=overwrite)
    loaded = load_payload(src)
    cfg_obj = _resolve_cfg(loaded, cfg, src)
    size = write_darknet_weights(out, cfg_obj, loaded.state_dict, loaded.header, loaded.seen,
                                 cutoff=loaded.cutoff, trailing=loaded.trailing, progress=progress)
    floats = sum(s.weight_count for s in _specs(cfg_obj, loaded.cutoff))
    return ExportReport(src=src, out=out, cfg=_cfg_label(cfg_obj), header=tuple(loaded.header),
                        seen=loaded.seen, floats=floats, bytes_out=size)


# --------------------------------------------------------------------- into a model


def _darknet_file_for(model, path: Path) -> DarknetWeights:
    """Read a .weights file for ``model``: its own cfg if the size fits, else a shipped cfg that fits."""
    header, _, hsize = read_header(path)
    payload = path.stat().st_size - hsize
    cutoff = cutoff_from_name(path)
    own = model.cfg
    if payload == 4 * own.weight_count(cutoff):
        return read_darknet_weights(path, own, cutoff=cutoff)
    for name in match_shipped_cfgs(payload // 4, cutoff) if payload % 4 == 0 else []:
        return read_darknet_weights(path, name, cutoff=cutoff)
    if cutoff is None:  # a partial file for this architecture (e.g. a renamed darknet53.conv.74)
        counts = np.cumsum([s.weight_count for s in own.layer_specs()])
        hits = np.nonzero(counts == payload // 4)[0]
        if payload % 4 == 0 and hits.size:
            return read_darknet_weights(path, own, cutoff=int(hits[0]) + 1)
    raise DarknetFormatError(
        f"{path}: {payload:,} bytes after the header fit neither the model's cfg "
        f"({4 * own.weight_count(cutoff):,} bytes) nor a shipped cfg ({_expected_sizes(hsize, cutoff)})",
        hint="convert it with `vocli convert-weights --cfg ...` first")


def load_weights(model, path_or_state, strict_shapes: bool = False) -> LoadReport:
    """Copy matching tensors into ``model`` (a ``Darknet``); skip the rest, saying why.

    Accepts a .weights file (also ``.conv.N`` partial ones), a converted .pt/.h5, a
    `vocli train` checkpoint, or a state dict / such a dict in memory. Tensors whose shape
    differs (an 80-class head into a 20-class model) are skipped, or raise with
    ``strict_shapes``. ``missing``: model tensors the source did not provide.
    """
    import torch

    if isinstance(path_or_state, dict):
        state = _from_dict(path_or_state, "<state dict>").state_dict
    else:
        path = find_weights_file(path_or_state)
        if not path.is_file():
            raise DarknetFormatError(f"{path}: no such weights file", hint="check the path, or `vocli fetch` it")
        if path.suffix.lower() in (".pt", ".pth", ".h5", ".hdf5", ".ckpt"):
            state = load_payload(path).state_dict
        else:
            state = _darknet_file_for(model, path).tensors
    own = model.state_dict()
    loaded, skipped, chosen = [], [], {}
    for key, tensor in state.items():
        if key not in own:
            skipped.append((key, "not in model"))
        elif tuple(tensor.shape) != tuple(own[key].shape):
            reason = f"shape {tuple(tensor.shape)} != model {tuple(own[key].shape)}"
            if strict_shapes:
                raise DarknetFormatError(f"{key}: {reason}")
            skipped.append((key, reason))
        else:
            chosen[key] = tensor
            loaded.append(key)
    with torch.no_grad():
        model.load_state_dict(chosen, strict=False)
    missing = [k for k in own if k not in chosen and not k.endswith("num_batches_tracked")]
    return LoadReport(loaded=loaded, skipped=skipped, missing=missing)

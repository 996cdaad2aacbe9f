"""Training checkpoints: plain dicts of tensors and Python values, loadable with ``weights_only=True``.

Keys: ``model`` (the weights to use: EMA when enabled), ``raw_model`` (the trained weights,
when EMA is on), ``ema_updates``, ``optimizer``, ``scheduler``, ``scaler``, ``epoch``
(completed epochs), ``best_map``, ``metrics`` (per-epoch rows), ``rng`` (python, numpy,
torch, cuda states), ``config`` (the resolved training config), ``cfg_text``, ``classes``.
"""

from __future__ import annotations

import os
import pickle
import random
import zipfile
import zlib
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch

from vocli.errors import CheckpointError, VocliError
from vocli.paths import atomic_path


def rng_state() -> dict[str, Any]:
    """Every global RNG state, as tensors and plain types."""
    version, mt, gauss = random.getstate()
    np_state = np.random.get_state(legacy=False)
    state = {
        "python": {"version": int(version), "state": [int(v) for v in mt],
                   "gauss": None if gauss is None else float(gauss)},
        "numpy": {"bit_generator": np_state["bit_generator"],
                  "key": [int(v) for v in np_state["state"]["key"]], "pos": int(np_state["state"]["pos"]),
                  "has_gauss": int(np_state["has_gauss"]), "gauss": float(np_state["gauss"])},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what ``rng_state`` returned."""
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    n = state["numpy"]
    np.random.set_state({"bit_generator": n["bit_generator"],
                         "state": {"key": np.array(n["key"], dtype=np.uint32), "pos": n["pos"]},
                         "has_gauss": n["has_gauss"], "gauss": n["gauss"]})
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"][: torch.cuda.device_count()])


def plain(value: Any) -> Any:
    """Config values -> types ``weights_only`` loading accepts (paths become strings)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, os.PathLike):
        return str(value)
    return value


def save_checkpoint(path: str | os.PathLike, checkpoint: dict[str, Any]) -> Path:
    """Write ``checkpoint`` atomically (temp file beside ``path``, then rename)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(checkpoint, tmp)
    return path


def verify_zip(path: str | os.PathLike) -> None:
    """Check every member of a zip-format ``.pt`` against its CRC-32 before any tensor is trusted.

    ``torch.load`` never checks them: a checkpoint with a few KB of its tensor data damaged
    loads silently and gives wrong detections or a NaN loss. Legacy (non-zip) torch files
    carry no checksums and pass unchecked. Raises ``CheckpointError`` naming the file and member.
    """
    path = Path(path)
    try:
        if not zipfile.is_zipfile(path):
            return
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, zlib.error, ValueError) as err:
        raise CheckpointError(f"{path}: damaged checkpoint ({type(err).__name__}: {err})",
                              hint="the file is corrupt or incomplete; use another copy") from None
    if bad is not None:
        raise CheckpointError(f"{path}: damaged checkpoint: {bad} fails its CRC-32 check",
                              hint="the file is corrupt; use another copy (e.g. last.pt, or convert again)")


def load_torch_file(path: str | os.PathLike, what: str = "PyTorch file") -> Any:
    """The one place vocli reads a ``.pt``: CRCs checked (``verify_zip``), then ``torch.load(weights_only=True)``.

    Any failure is a ``CheckpointError`` in one line naming the file; it never suggests
    ``weights_only=False`` (vocli never unpickles code).
    """
    path = Path(path)
    verify_zip(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(f"{path}: holds objects other than tensors and plain values; refused "
                              f"(vocli loads {what}s with weights_only=True and never runs pickled code)",
                              hint="use a file written by vocli, or a plain state dict") from None
    except Exception as err:  # noqa: BLE001 - torch raises many types for bad files
        raise CheckpointError(f"{path}: not a readable {what} ({type(err).__name__})") from None


def _layer_of(key: str) -> Optional[int]:
    parts = key.split(".")
    return int(parts[1]) if len(parts) > 2 and parts[0] == "layers" and parts[1].isdigit() else None


def check_enough_loaded(model_keys: Sequence[str], loaded: Sequence[str], skipped: Sequence[tuple[str, str]],
                        source) -> Optional[str]:
    """Refuse starting weights from which fewer than half of the model's tensors load, unless they are a
    partial backbone: every tensor of the model's first K layers and nothing else. Returns None, or
    ``"partial backbone: layers 0-<K-1>"`` for a backbone; raises ``CheckpointError`` otherwise.

    ``num_batches_tracked`` counters are not counted (darknet files have none).
    """
    wanted = [k for k in model_keys if not k.endswith("num_batches_tracked")]
    got = {k for k in loaded if not k.endswith("num_batches_tracked")}
    if 2 * len(got) >= len(wanted):
        return None
    layers = {_layer_of(k) for k in got}
    if got and None not in layers:
        first_k = max(layers) + 1
        prefix = {k for k in wanted if (_layer_of(k) is not None and _layer_of(k) < first_k)}
        if layers == set(range(first_k)) and got == prefix:
            return f"partial backbone: layers 0-{first_k - 1}"
    example = f" (first: {skipped[0][0]}: {skipped[0][1]})" if skipped else ""
    raise CheckpointError(f"{source}: only {len(got)} of the model's {len(wanted)} tensors load from it, and they are "
                          f"not a backbone (the whole first layers){example}",
                          hint="pass weights made for this cfg, a backbone such as darknet53.conv.74, "
                               "or --weights none to train from scratch")


# What evaluate, detect and export-weights read from best.pt; the resume state (optimizer,
# raw weights, RNG, scheduler, ...) stays in last.pt only.
INFERENCE_KEYS = ("model", "cfg_text", "classes", "config", "epoch", "best_map", "best_epoch", "metrics")


def inference_checkpoint(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """``checkpoint`` without its resume state: the weights to use (EMA when on), cfg, class names,
    training input size (``img_size``), config and metrics. A third of an SGD checkpoint's size."""
    slim = {k: checkpoint[k] for k in INFERENCE_KEYS if k in checkpoint}
    slim["img_size"] = int(checkpoint["config"]["img_size"])
    return slim


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a ``vocli train`` checkpoint (``weights_only=True``, CRCs checked) and check it is one."""
    path = Path(path)
    if not path.is_file():
        raise VocliError(f"{path}: checkpoint not found", hint="pass runs/train/<name>/last.pt")
    ckpt = load_torch_file(path, "checkpoint")
    missing = [k for k in ("model", "optimizer", "epoch", "config") if not isinstance(ckpt, dict) or k not in ckpt]
    if missing:
        raise VocliError(f"{path}: not a vocli train checkpoint (missing {', '.join(missing)})",
                         hint="--resume needs a last.pt written by vocli train")
    return ckpt

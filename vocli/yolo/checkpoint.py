"""Training checkpoints: plain dicts of tensors and Python values, loadable with ``weights_only=True``.

Keys: ``model`` (the weights to use: EMA when enabled), ``raw_model`` (the trained weights,
when EMA is on), ``ema_updates``, ``optimizer``, ``scheduler``, ``scaler``, ``epoch``
(completed epochs), ``best_map``, ``metrics`` (per-epoch rows), ``rng`` (python, numpy,
torch, cuda states), ``config`` (the resolved training config), ``cfg_text``, ``classes``.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vocli.errors import VocliError
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
    """Read a ``vocli train`` checkpoint (``weights_only=True``) and check it is one."""
    path = Path(path)
    if not path.is_file():
        raise VocliError(f"{path}: checkpoint not found", hint="pass runs/train/<name>/last.pt")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure is an unusable file
        raise VocliError(f"{path}: not a readable checkpoint ({type(err).__name__}: {err})") from None
    missing = [k for k in ("model", "optimizer", "epoch", "config") if not isinstance(ckpt, dict) or k not in ckpt]
    if missing:
        raise VocliError(f"{path}: not a vocli train checkpoint (missing {', '.join(missing)})",
                         hint="--resume needs a last.pt written by vocli train")
    return ckpt

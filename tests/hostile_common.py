"""Shared checks of the hostile-input tests: run the CLI, read its one-line error, hash trees, small inputs."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
from PIL import Image

from helpers import TINY_CFG as TRAIN_CFG  # 4 classes, two heads
from helpers import TWO_CLASS_CFG as TINY_CFG  # 2 classes, one head
from vocli.cli.app import main


def tree_state(root: Path) -> dict[str, str]:
    """Every entry under ``root`` (itself included): relative path -> sha256 of a file, 'dir', or 'link:<target>'."""
    root = Path(root)
    state: dict[str, str] = {}
    if not root.exists():
        return state
    for folder, dirs, files in os.walk(root):
        base = Path(folder)
        for name in dirs + files:
            path = base / name
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                state[rel] = f"link:{os.readlink(path)}"
            elif path.is_dir():
                state[rel] = "dir"
            else:
                state[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return state


def run(capsys, *args) -> tuple[int, str]:
    """(exit code, stderr) of ``vocli ARGS`` run in this process."""
    capsys.readouterr()
    rc = main([str(a) for a in args])
    return rc, capsys.readouterr().err


def error_line(err: str) -> str:
    """The one ``error:`` line of a failed command; fails unless the error is exactly one line."""
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, err
    assert "Traceback" not in err, err
    return errors[0]




def write_tiny_pt(folder: Path, cfg: str = TINY_CFG, name: str = "tiny") -> tuple[Path, Path]:
    """A converted .pt (seeded random weights) of a 2-class model in ``folder``, and its .names."""
    import torch

    from converters.darknet_weights import FORMAT
    from vocli.darknet.cfg import parse_cfg
    from vocli.darknet.model import Darknet

    torch.manual_seed(0)
    model = Darknet(parse_cfg(cfg))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.pt"
    torch.save({"format": FORMAT, "state_dict": model.state_dict(), "cfg": cfg, "cfg_name": None,
                "header": [0, 2, 0], "seen": 0}, path)
    names = folder / f"{name}.names"
    names.write_text("alpha\nbeta\n")
    return path, names


def training_set(root, bad_name: str, bad_bytes: bytes):
    """Four 64 x 64 images with one box each, one of them replaced by ``bad_bytes``, a 4-class cfg
    (``tiny.cfg``) and the .data file, which is returned."""
    (root / "img").mkdir(parents=True)
    paths = []
    for i in range(4):
        path = root / "img" / (bad_name if i == 2 else f"{i}.png")
        if i == 2:
            path.write_bytes(bad_bytes)
        else:
            Image.fromarray(np.full((64, 64, 3), 40 * i, np.uint8)).save(path)
        path.with_suffix(".txt").write_text("0 0.5 0.5 0.25 0.25\n")
        paths.append(path)
    (root / "train.txt").write_text("".join(f"{p}\n" for p in paths))
    (root / "x.names").write_text("a\nb\nc\nd\n")
    (root / "tiny.cfg").write_text(TRAIN_CFG)
    data = root / "x.data"
    data.write_text(f"classes = 4\ntrain = {root / 'train.txt'}\nvalid = {root / 'train.txt'}\n"
                    f"names = {root / 'x.names'}\n")
    return data

"""Helpers of the hostile-input tests: input-tree states, one-line error checks, a training set.

``tree_state`` and ``error_line`` are the same as in tests/hostile_common.py (helper 18a's branch):
once both are merged, import them from there and drop them here."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
from PIL import Image

from helpers import TINY_CFG


def tree_state(root: Path) -> dict[str, str]:
    """Every entry under ``root`` (itself excluded): relative path -> sha256 of a file, 'dir', or 'link:<target>'.

    Comparing two states shows any file written, changed, added or removed.
    """
    root = Path(root)
    state: dict[str, str] = {}
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


def error_line(err: str) -> str:
    """The one ``error:`` line of a failed command's stderr; fails unless there is exactly one and no traceback."""
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err
    assert "Traceback" not in err, err
    return errors[0]


def training_set(root, bad_name: str, bad_bytes: bytes):
    """Four 64 x 64 images with one box each, one of them replaced by ``bad_bytes``; returns the .data file."""
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
    (root / "tiny.cfg").write_text(TINY_CFG)
    data = root / "x.data"
    data.write_text(f"classes = 4\ntrain = {root / 'train.txt'}\nvalid = {root / 'train.txt'}\n"
                    f"names = {root / 'x.names'}\n")
    return data

"""Shared checks of the hostile-input tests: run the CLI, read its one-line error, hash trees."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

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


REPO = Path(__file__).resolve().parents[1]


def run_child(code: str, *args: str, timeout: float = 300, **popen) -> subprocess.CompletedProcess:
    """Run ``python -c code args`` from the repository root; text output captured."""
    return subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, **popen)


#: Child-process preamble: Ctrl-C raises KeyboardInterrupt whatever the parent left (a shell
#: running pytest in the background starts children with SIGINT ignored).
CTRL_C_DEFAULT = "import signal; signal.signal(signal.SIGINT, signal.default_int_handler)\n"


TINY_CFG = """[net]
width=64
height=64
channels=3

[convolutional]
batch_normalize=1
filters=8
size=3
stride=2
pad=1
activation=leaky

[convolutional]
size=1
stride=1
pad=1
filters=21
activation=linear

[yolo]
mask=0,1,2
anchors=8,8, 16,16, 24,24
classes=2
num=3
"""


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

"""Shared checks of the hostile-input tests: run the CLI, read its one-line error, hash trees."""

from __future__ import annotations

import hashlib
import os
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

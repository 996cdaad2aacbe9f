"""Helpers of the hostile-input tests: input-tree states, one-line error checks, child processes.

``tree_state`` and ``error_line`` are the same as in tests/hostile_common.py (helper 18a's branch):
once both are merged, import them from there and drop them here."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


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


def run_child(code: str, *args: str, timeout: float = 300, **popen) -> subprocess.CompletedProcess:
    """Run ``python -c code args`` from the repository root; text output captured."""
    return subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, **popen)


#: Child-process preamble: Ctrl-C raises KeyboardInterrupt whatever the parent left (a shell
#: running pytest in the background starts children with SIGINT ignored).
CTRL_C_DEFAULT = "import signal; signal.signal(signal.SIGINT, signal.default_int_handler)\n"


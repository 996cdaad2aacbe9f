"""Helpers of the hostile-input tests: fingerprints of input trees, one-line error checks, child processes."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Sequence

REPO = Path(__file__).resolve().parents[1]


def tree_digest(root: Path, skip: Sequence[Path] = ()) -> dict[str, str]:
    """Every file and folder under ``root`` (except under ``skip``) -> sha256 of its bytes ("dir" for folders).

    Comparing two digests shows any file written, changed, added or removed.
    """
    root = Path(root)
    skipped = [Path(s).resolve() for s in skip]
    digest: dict[str, str] = {}
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        dirs[:] = sorted(d for d in dirs if (here / d).resolve() not in skipped)
        for d in dirs:
            digest[str((here / d).relative_to(root))] = "dir"
        for name in sorted(files):
            path = here / name
            digest[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digest


def error_line(stderr: str) -> str:
    """The one ``error: ...`` line of a failed command's stderr; fails unless there is exactly one
    and no traceback."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, stderr
    return lines[0]


def run_child(code: str, *args: str, timeout: float = 300, **popen) -> subprocess.CompletedProcess:
    """Run ``python -c code args`` from the repository root; text output captured."""
    return subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, **popen)


#: Child-process preamble: Ctrl-C raises KeyboardInterrupt whatever the parent left (a shell
#: running pytest in the background starts children with SIGINT ignored).
CTRL_C_DEFAULT = "import signal; signal.signal(signal.SIGINT, signal.default_int_handler)\n"


def restore_default_signals() -> None:
    """``preexec_fn`` for children: SIGINT and SIGTERM at their defaults, whatever pytest inherited."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)

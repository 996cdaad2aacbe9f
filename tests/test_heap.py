"""The CLI keeps freed heap for re-use (vocli.cli.app.keep_freed_heap): k-means stops faulting memory in."""

from __future__ import annotations

import subprocess
import sys

import pytest

from vocli.cli import app as cli_app

KMEANS_FAULTS = """
import resource, sys
import numpy as np
from vocli.anchors import kmeans_iou
if sys.argv[1] == "keep":
    from vocli.cli.app import keep_freed_heap
    assert keep_freed_heap()
wh = np.random.default_rng(0).uniform(0.02, 1.0, (20000, 2))
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
kmeans_iou(wh, 9)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _kmeans_page_faults(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", KMEANS_FAULTS, mode], capture_output=True, text=True, check=True)
    return int(done.stdout)


def test_freed_heap_is_reused_not_faulted_in_again():
    if not cli_app.keep_freed_heap():
        pytest.skip("no glibc mallopt here")
    # Page faults are counted by the kernel, not timed: the same on a busy machine. Measured:
    # about 102,000 without and 2,100 with the pad.
    default, kept = _kmeans_page_faults("default"), _kmeans_page_faults("keep")
    assert kept * 10 < default


def test_every_cli_run_keeps_freed_heap(monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(cli_app, "keep_freed_heap", lambda *a: calls.append(a) or True)
    assert cli_app.main(["--version"]) == 0
    assert calls == [()]

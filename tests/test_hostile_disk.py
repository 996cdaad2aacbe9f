"""Disk full, size limits and read-only places (issue 18, items 9 and 14), without root.

A child process runs vocli under ``RLIMIT_FSIZE`` with SIGXFSZ ignored, so its writes past the
limit fail with EFBIG as they would on a full disk. Each case checks the exit code (1, never a
crash: ``convert ssd`` used to end in a segmentation fault, exit 139), the one error line naming
the file, that no temp file is left, and that the input tree is unchanged.
"""

from __future__ import annotations

import errno
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
import pytest
from hostile_common import TINY_CFG, tree_state

CHILD = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
from vocli.cli.app import main
sys.exit(main(sys.argv[2:]))
"""


def run_limited(limit: int, *args) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", COLUMNS="200")
    return subprocess.run([sys.executable, "-c", CHILD, str(limit), *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=300)


def one_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    return lines[0]


def temps(root) -> list[str]:
    return sorted(str(p) for p in root.rglob("*") if p.name.endswith((".tmp", ".part")))


def test_convert_ssd_on_a_full_disk_is_one_line_not_a_crash(tiny_voc):
    before = tree_state(tiny_voc / "VOCdevkit")
    done = run_limited(20_000, "convert", "ssd", "--root", tiny_voc, "--sets", "2007/train", "--workers", "1")
    assert done.returncode == 1, done.stderr
    line = one_error(done.stderr)
    # the priors table alone is 8,732 x 4 float32 = 139,712 bytes: the file cannot fit under 20,000
    assert f"{tiny_voc / 'ssd300' / '2007_train.h5'}: cannot write: file too large (size limit reached)" in line
    assert "bytes free there" in line
    assert temps(tiny_voc) == [] and tree_state(tiny_voc / "VOCdevkit") == before


def test_convert_yolo_on_a_full_disk_names_the_file_and_leaves_no_staging(tiny_voc):
    before = tree_state(tiny_voc / "VOCdevkit")
    done = run_limited(10, "convert", "yolo", "--root", tiny_voc, "--sets", "2007/train", "--workers", "1")
    assert done.returncode == 1, done.stderr
    line = one_error(done.stderr)
    assert "cannot write: file too large (size limit reached)" in line and str(tiny_voc / "VOCdevkit") in line
    assert temps(tiny_voc) == [] and tree_state(tiny_voc / "VOCdevkit") == before


def tiny_weights_file(path) -> None:
    """A Darknet .weights for TINY_CFG: 20-byte header (0.2.0, seen 0), then 437 floats."""
    floats = 8 * 3 * 3 * 3 + 4 * 8 + 21 + 21 * 8
    path.write_bytes(struct.pack("<iiiq", 0, 2, 0, 0) + np.arange(floats, dtype="<f4").tobytes())


@pytest.mark.parametrize("suffix", [".pt", ".h5"])
def test_convert_weights_on_a_full_disk_names_the_output(tmp_path, suffix):
    cfg = tmp_path / "tiny.cfg"
    cfg.write_text(TINY_CFG)
    src = tmp_path / "tiny.weights"
    tiny_weights_file(src)
    out = tmp_path / "out" / f"tiny{suffix}"
    (tmp_path / "out").mkdir()
    done = run_limited(1_000, "convert-weights", src, "--cfg", cfg, "-o", out)
    assert done.returncode == 1, done.stderr
    line = one_error(done.stderr)
    assert f"{out}: cannot write:" in line and "[enforce fail" not in line
    assert list((tmp_path / "out").iterdir()) == []


def test_read_only_place_is_one_line(tmp_path, monkeypatch):
    from vocli.errors import WriteError
    from vocli.paths import atomic_write_text

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    with pytest.raises(WriteError, match=rf"^{tmp_path / 'x.txt'}: cannot write: read-only file system"):
        atomic_write_text(tmp_path / "x.txt", "hello")


def test_free_space_is_checked_before_writing(tmp_path, monkeypatch):
    import shutil

    from vocli.errors import WriteError
    from vocli.paths import atomic_write_bytes

    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=1000))
    with pytest.raises(WriteError, match=r"x.bin: cannot write: needs 4,096 bytes, 1,000 free there \(3,096 more"):
        atomic_write_bytes(tmp_path / "x.bin", bytes(4096))
    assert list(tmp_path.iterdir()) == []


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_temp_files_of_dead_runs_are_removed_at_the_next_run(tiny_voc):
    from vocli.cli.app import main

    voc = tiny_voc / "VOCdevkit" / "VOC2007"
    gone, alive = dead_pid(), os.getpid()
    labels = voc / "labels"
    labels.mkdir()
    (labels / "000001.txt").write_text("0 0.5 0.5 0.1 0.1\n")  # not empty: convert updates it in place
    stale = [labels / f".000001.txt.{gone}.tmp", voc / f".labels.{gone}.ab12cd34.tmp",
             tiny_voc / "ssd300" / f".2007_train.h5.{gone}.x1y2z3w4.h5.tmp"]
    (tiny_voc / "ssd300").mkdir()
    stale[1].mkdir()
    (stale[1] / "000002.txt").write_text("half")
    for path in (stale[0], stale[2]):
        path.write_text("half written")
    kept = [labels / f".000002.txt.{alive}.tmp", labels / "notes.tmp", labels / ".000001.txt.ab12cd34.tmp"]
    for path in kept:
        path.write_text("not a dead run's")
    assert main(["convert", "yolo", "--root", str(tiny_voc), "--sets", "2007/train", "--workers", "1"]) == 0
    assert main(["convert", "ssd", "--root", str(tiny_voc), "--sets", "2007/train", "--workers", "1"]) == 0
    assert [p for p in stale if p.exists()] == []
    assert [p for p in kept if not p.exists()] == []


SAVE_CHILD = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
import torch
from vocli.errors import WriteError
from vocli.yolo.checkpoint import save_checkpoint
try:
    save_checkpoint(sys.argv[1], {"model": {"w": torch.zeros(10_000)}, "epoch": 1})
except WriteError as err:
    print(err)
"""


def test_a_training_checkpoint_on_a_full_disk_names_it(tmp_path):
    # train saves last.pt / best.pt through save_checkpoint: 40,000 bytes of tensor cannot fit under 4,096
    out = tmp_path / "run" / "last.pt"
    done = subprocess.run([sys.executable, "-c", SAVE_CHILD, str(out)], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{out}: cannot write: ") and "bytes free there" in done.stdout
    assert list((tmp_path / "run").iterdir()) == []


def test_a_read_only_output_folder_is_one_line(tmp_path, monkeypatch):
    from pathlib import Path

    from vocli.errors import WriteError
    from vocli.paths import make_folder

    def read_only(self, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(self))

    monkeypatch.setattr(Path, "mkdir", read_only)
    with pytest.raises(WriteError, match=rf"^{tmp_path / 'det'}: cannot write: read-only file system \(write it"):
        make_folder(tmp_path / "det")

"""Shared fixtures: the optional real VOC sample, and a tiny VOC tree built per test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers import write_voc_xml


def _sample_root() -> Path:
    """VOCLI_TEST_VOC when set (a folder holding VOCdevkit/), else ../shared/data/voc-sample."""
    named = os.environ.get("VOCLI_TEST_VOC")
    if named:
        return Path(named).expanduser().resolve()
    return Path(__file__).resolve().parents[2] / "shared" / "data" / "voc-sample"


SAMPLE_ROOT = _sample_root()


@pytest.fixture
def voc_sample() -> Path:
    """Folder holding the real VOCdevkit sample; skips when ../shared is absent (users' clones)."""
    if not (SAMPLE_ROOT / "VOCdevkit").is_dir():
        pytest.skip(f"real VOC sample not available at {SAMPLE_ROOT} (set VOCLI_TEST_VOC to a folder holding VOCdevkit/)")
    return SAMPLE_ROOT


@pytest.fixture
def default_sigint():
    """Ctrl-C raises KeyboardInterrupt in this process for the test, however pytest was started
    (a background job starts with SIGINT ignored, and Python then installs no handler)."""
    import signal

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture
def tiny_voc(tmp_path) -> Path:
    """A two-image VOC2007-layout tree with train/val/trainval/test lists; returns the root."""
    voc = tmp_path / "VOCdevkit" / "VOC2007"
    write_voc_xml(voc / "Annotations" / "000001.xml", "000001.jpg", 100, 80,
                  [("dog", 10, 20, 50, 60, 0), ("person", 1, 1, 100, 80, 1)])
    write_voc_xml(voc / "Annotations" / "000002.xml", "000002.jpg", 64, 64, [("cat", 5, 5, 20, 30, 0)])
    main = voc / "ImageSets" / "Main"
    main.mkdir(parents=True)
    (main / "train.txt").write_text("000001\n")
    (main / "val.txt").write_text("000002\n")
    (main / "trainval.txt").write_text("000001\n000002\n")
    (main / "test.txt").write_text("000002\n")
    return tmp_path

"""Helpers shared by the tests (imported as ``from helpers import ...``; conftest.py's folder is on sys.path).

One copy each of what several test files need: VOC XML writing and plain reading, md5, the
tiny Darknet cfg and image set used by the training tests.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


TESTS_DIR = Path(__file__).resolve().parent

#: Put first in every child's code: a shell that starts pytest in the background (``pytest &``)
#: starts it, and so its children, with SIGINT ignored, where Python installs no
#: KeyboardInterrupt handler. Signal tests must not depend on how pytest was started.
DEFAULT_SIGINT = "import signal; signal.signal(signal.SIGINT, signal.default_int_handler)\n"


def python_child(code: str, *args: str, **popen) -> subprocess.Popen:
    """Start ``python -c code args`` with Ctrl-C raising KeyboardInterrupt and tests/ importable.

    Signals in tests go to such a child, never to pytest itself (a broken handler would
    take the whole run down).
    """
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(TESTS_DIR), os.environ.get("PYTHONPATH")])))
    return subprocess.Popen([sys.executable, "-c", DEFAULT_SIGINT + code, *args], env=env, text=True, **popen)


def run_python(code: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``python_child`` to its end; stdout and stderr captured."""
    child = python_child(code, *args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = child.communicate(timeout=timeout)
    return subprocess.CompletedProcess(child.args, child.returncode, out, err)


def read_voc_plain(path) -> dict:
    """An independent VOC reader for expected values: plain ElementTree, every field as the text written.

    -> {"filename", "width", "height", "objects": [{"name", "difficult", "truncated", "box"}]}; a
    missing tag reads as None, box is [xmin, ymin, xmax, ymax] strings.
    """
    root = ET.parse(path).getroot()
    return {"filename": root.findtext("filename"), "width": int(root.findtext("size/width")),
            "height": int(root.findtext("size/height")),
            "objects": [{"name": o.findtext("name"), "difficult": o.findtext("difficult"),
                         "truncated": o.findtext("truncated"),
                         "box": [o.find("bndbox").findtext(t) for t in ("xmin", "ymin", "xmax", "ymax")]}
                        for o in root.iter("object")]}


def write_voc_xml(path: Path, filename: str, width: int, height: int, objects, depth: int = 3) -> Path:
    """Write a minimal VOC annotation. objects: iterable of (name, xmin, ymin, xmax, ymax, difficult)."""
    parts = [f"<annotation><folder>VOCtest</folder><filename>{filename}</filename>",
             f"<size><width>{width}</width><height>{height}</height><depth>{depth}</depth></size>",
             "<segmented>0</segmented>"]
    for name, x1, y1, x2, y2, difficult in objects:
        parts.append(
            f"<object><name>{name}</name><pose>Unspecified</pose><truncated>0</truncated>"
            f"<difficult>{int(difficult)}</difficult><bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin>"
            f"<xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>")
    parts.append("</annotation>")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(parts), encoding="utf-8")
    return path


# Five convolutions, two [yolo] heads (strides 16 and 8), 4 classes: (3 * (5 + 4)) = 27 filters.
TINY_CFG = """
[net]
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
batch_normalize=1
filters=16
size=3
stride=2
pad=1
activation=leaky

[convolutional]
batch_normalize=1
filters=16
size=3
stride=2
pad=1
activation=leaky

[convolutional]
batch_normalize=1
filters=32
size=3
stride=2
pad=1
activation=leaky

[convolutional]
size=1
stride=1
pad=1
filters=27
activation=linear

[yolo]
mask=3,4,5
anchors=6,8, 12,10, 14,22, 24,20, 30,40, 56,50
classes=4
num=6
ignore_thresh=.7

[route]
layers=-3

[convolutional]
size=1
stride=1
pad=1
filters=27
activation=linear

[yolo]
mask=0,1,2
anchors=6,8, 12,10, 14,22, 24,20, 30,40, 56,50
classes=4
num=6
ignore_thresh=.7
"""

CLASSES = ("circle", "square", "triangle", "star")


def write_tiny_cfg(path: Path, batch_normalize: bool = True) -> Path:
    """TINY_CFG at ``path``; without batch norm every image's output depends on that image alone."""
    path.write_text(TINY_CFG if batch_normalize else TINY_CFG.replace("batch_normalize=1", "batch_normalize=0"))
    return path


def make_darknet_set(root: Path, n: int = 12, size: int = 64, box: Optional[int] = None, train: int = 8) -> Path:
    """Images with one coloured rectangle each, darknet labels, lists, names and a .data file.

    ``box``: every rectangle ``box`` pixels square (else 12..29 pixels a side); the first
    ``train`` images are listed for training, the rest for validation.
    """
    rng = np.random.default_rng(0)
    img_dir, lab_dir = root / "JPEGImages", root / "labels"
    img_dir.mkdir(parents=True)
    lab_dir.mkdir()
    paths = []
    for i in range(n):
        img = np.full((size, size, 3), 40, dtype=np.uint8)
        cls = i % 4
        w, h = rng.integers(12, 30, 2) if box is None else (box, box)
        x, y = rng.integers(0, size - w), rng.integers(0, size - h)
        img[y:y + h, x:x + w] = (60 * cls + 60, 200 - 40 * cls, 90)
        p = img_dir / f"{i:04d}.png"
        Image.fromarray(img).save(p)
        (lab_dir / f"{i:04d}.txt").write_text(
            f"{cls} {(x + w / 2) / size} {(y + h / 2) / size} {w / size} {h / size}\n")
        paths.append(p)
    (root / "train.txt").write_text("".join(f"{p}\n" for p in paths[:train]))
    (root / "valid.txt").write_text("".join(f"{p}\n" for p in paths[train:]))
    (root / "shapes.names").write_text("\n".join(CLASSES) + "\n")
    data = root / "tiny.data"
    data.write_text(f"classes = 4\ntrain = {root / 'train.txt'}\nvalid = {root / 'valid.txt'}\n"
                    f"names = {root / 'shapes.names'}\nbackup = backup/\n")
    return data




#: A two-class model of two convolutions and one [yolo] head at 64 px: the smallest that detects.
TWO_CLASS_CFG = """[net]
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

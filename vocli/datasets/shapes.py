"""A synthetic detection dataset in the exact PASCAL VOC layout: filled shapes on textured ground.

``generate_shapes(root)`` writes ``root/VOCdevkit/VOCshapes`` with
``Annotations/*.xml`` (VOC's schema and formatting, 1-based inclusive pixel
boxes), ``JPEGImages/*.jpg`` and ``ImageSets/Main/{train,val,trainval,test}.txt``.
Everything follows from ``seed``: image ``i`` draws from its own generator
``default_rng([seed, i])`` (so image ``i`` does not depend on ``images``), and
the XML is byte-identical across runs (the JPEG bytes too, for the same
libjpeg). Shape vertices are snapped to 1/64 pixel, so last-bit differences
between machines' math libraries do not move box corners.

The task is made to be learnable by a small detector at 160 px: classes differ
by outline only (colours are drawn independently of the class), most boxes
span 17-45 % of the image side, 1-6 objects per image, moderate texture. A few
objects are tiny (marked difficult), some overlap (never hiding more than
40 % of another), some are cut by the border (marked truncated).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
from PIL import Image, ImageDraw

from vocli.datasets.voc import CLASS_LIST_FILE
from vocli.errors import VocliError

SHAPES_CLASSES: tuple[str, ...] = ("circle", "square", "triangle", "star")
FOLDER = "VOCshapes"
#: Objects whose longer box side is below this share of the image side are marked difficult.
DIFFICULT_FRACTION = 0.08
#: Split shares of all images (train + val = trainval; test is the rest).
TRAIN_SHARE, VAL_SHARE = 0.5, 0.1
JPEG_QUALITY = 90

_MIN_VISIBLE = 0.6  # an object keeps at least this share of its pixels (overlap and border)
_TINY_P = 0.08  # share of tiny (difficult) objects
_EDGE_P = 0.15  # share of objects placed anywhere, so they may be cut by the border


@dataclass
class ShapesResult:
    """What ``generate_shapes`` wrote. ``root`` is the ``VOCshapes`` folder."""

    root: Path
    devkit: Path
    images: int
    objects: int
    size: int
    seed: int
    classes: tuple[str, ...]
    splits: dict[str, int] = field(default_factory=dict)  # split -> number of images
    objects_per_class: dict[str, int] = field(default_factory=dict)
    difficult: int = 0
    truncated: int = 0

    @property
    def sets(self) -> list[str]:
        """Set names for ``--sets``: ``shapes/train`` ..."""
        return [f"shapes/{s}" for s in self.splits]


@dataclass(frozen=True)
class _Object:
    name: str
    xmin: int  # 1-based inclusive pixels, as written in the XML
    ymin: int
    xmax: int
    ymax: int
    truncated: bool
    difficult: bool


def _outline(kind: str, w: float, h: float, angle: float) -> np.ndarray:
    """(V, 2) polygon of a shape of box size ``w`` x ``h`` centred at 0, rotated by ``angle`` radians."""
    if kind == "circle":
        t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        pts = np.stack([np.cos(t), np.sin(t)], 1) * 0.5
    elif kind == "square":
        pts = np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]])
    elif kind == "triangle":
        pts = np.array([[0.0, -0.5], [0.5, 0.5], [-0.5, 0.5]])
    elif kind == "star":
        t = -np.pi / 2 + np.arange(10) * np.pi / 5
        radius = np.where(np.arange(10) % 2 == 0, 0.5, 0.2)
        pts = np.stack([np.cos(t) * radius, np.sin(t) * radius + 0.05], 1)
    else:
        raise ValueError(f"unknown shape {kind!r}; known: {', '.join(SHAPES_CLASSES)}")
    pts = pts * np.array([w, h])
    c, s = np.cos(angle), np.sin(angle)
    return pts @ np.array([[c, s], [-s, c]])


def _polygon_area(pts: np.ndarray) -> float:
    x, y = pts[:, 0], pts[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """(size, size, 3) float32 in [0, 255]: muted colour blobs, a gradient and faint streaks."""
    base = rng.uniform(70, 190, 3)
    grid = base + rng.normal(0, 20, (int(rng.integers(3, 8)), int(rng.integers(3, 8)), 3))
    coarse = Image.fromarray(np.clip(grid, 0, 255).astype(np.uint8), "RGB")
    bg = np.asarray(coarse.resize((size, size), Image.BICUBIC), dtype=np.float32)
    ramp = np.linspace(-1, 1, size, dtype=np.float32)
    gx, gy = rng.normal(0, 18, 2)
    texture = ramp[None, :] * np.float32(gx) + ramp[:, None] * np.float32(gy)
    # Fine oriented streaks (wood/fabric-like): sin(fx*x + fy*y + phase) as a sum of outer products.
    idx = np.arange(size, dtype=np.float32)
    for _ in range(int(rng.integers(1, 4))):
        fx, fy = rng.normal(0, 0.25, 2)
        phase = rng.uniform(0, 2 * np.pi)
        amp = np.float32(rng.uniform(2, 6))
        ax, ay = idx * np.float32(fx) + np.float32(phase), idx * np.float32(fy)
        texture += amp * (np.outer(np.cos(ay), np.sin(ax)) + np.outer(np.sin(ay), np.cos(ax)))
    return bg + texture[..., None]


def _fill_colour(rng: np.random.Generator, under: np.ndarray) -> np.ndarray:
    """A saturated colour at least 90 (RGB distance) from ``under`` (3,), the mean background it covers."""
    best, best_d = None, -1.0
    for _ in range(12):
        hue, sat, val = rng.uniform(0, 1), rng.uniform(0.45, 1.0), rng.uniform(0.3, 1.0)
        rgb = _hsv_to_rgb(hue, sat, val) * 255
        d = float(np.linalg.norm(rgb - under))
        if d > best_d:
            best, best_d = rgb, d
        if d >= 90:
            break
    return best


def _hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    return np.array([(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i])


def render_image(seed: int, index: int, size: int) -> tuple[Image.Image, list[_Object]]:
    """Image ``index`` of the dataset for ``seed``: RGB image and its objects (boxes in VOC pixels)."""
    rng = np.random.default_rng([seed, index])
    canvas = _background(rng, size)
    owner = np.full((size, size), -1, dtype=np.int32)  # which object each pixel shows
    visible: list[int] = []  # visible pixel count per object
    full: list[int] = []  # pixel count when drawn (before later overlaps)
    placed: list[tuple[str, tuple[int, int, int, int], bool]] = []
    wanted = int(rng.integers(1, 7))
    attempts = 0
    while len(placed) < wanted and attempts < 40 * wanted:
        attempts += 1
        kind = SHAPES_CLASSES[int(rng.integers(len(SHAPES_CLASSES)))]
        tiny = rng.random() < _TINY_P
        side = size * (rng.uniform(0.04, 0.07) if tiny else np.exp(rng.uniform(np.log(0.17), np.log(0.45))))
        aspect = np.exp(rng.uniform(np.log(0.67), np.log(1.5)))
        w, h = side * np.sqrt(aspect), side / np.sqrt(aspect)
        angle = rng.uniform(-0.35, 0.35) if kind != "circle" else 0.0
        pts = _outline(kind, w, h, angle)
        ext = pts.max(0) - pts.min(0)
        if rng.random() < _EDGE_P and attempts < 30 * wanted:
            centre = rng.uniform(0, size, 2)
        else:
            lo = ext / 2 + 1
            centre = rng.uniform(lo, np.maximum(size - lo, lo + 1e-3))
        # Snap to 1/64 px so last-bit differences between math libraries cannot move a pixel.
        pts = np.round((pts + centre) * 64) / 64
        # Draw into a crop around the shape only; (top, left) places it in the image.
        left, top = (max(int(np.floor(v)) - 1, 0) for v in pts.min(0))
        right, bottom = (min(int(np.ceil(v)) + 2, size) for v in pts.max(0))
        if right - left < 2 or bottom - top < 2:
            continue
        mask_img = Image.new("L", (right - left, bottom - top), 0)
        ImageDraw.Draw(mask_img).polygon([tuple(p) for p in (pts - (left, top)).tolist()], fill=255)
        mask = np.asarray(mask_img) > 0
        drawn = int(mask.sum())
        if drawn < 9 or drawn < _MIN_VISIBLE * _polygon_area(pts):
            continue  # mostly outside the image
        crop_owner = owner[top:bottom, left:right]
        lost = np.bincount(crop_owner[mask & (crop_owner >= 0)], minlength=len(visible))
        if any(visible[k] - lost[k] < _MIN_VISIBLE * full[k] for k in range(len(visible))):
            continue  # would hide too much of an earlier object
        for k in range(len(visible)):
            visible[k] -= int(lost[k])
        crop_owner[mask] = len(visible)
        visible.append(drawn)
        full.append(drawn)
        ys, xs = np.nonzero(mask)
        ys, xs = ys + top, xs + left
        fill = _fill_colour(rng, canvas[ys, xs].mean(0))
        # Gentle linear shading across the shape so fills are not flat.
        direction = rng.uniform(0, 2 * np.pi)
        t = ((xs - centre[0]) * np.cos(direction) + (ys - centre[1]) * np.sin(direction)) / side
        shade = 1 + rng.uniform(0.0, 0.35) * t
        canvas[ys, xs] = np.clip(fill[None, :] * shade[:, None], 0, 255)
        truncated = bool(pts.min() < -0.5 or pts.max() > size + 0.5)
        # 1-based inclusive VOC box of the drawn pixels.
        box = (int(xs.min()) + 1, int(ys.min()) + 1, int(xs.max()) + 1, int(ys.max()) + 1)
        placed.append((kind, box, truncated))

    # Sensor grain: uniform in [-10, 10] (std ~6), shared by the three channels.
    canvas += rng.integers(-10, 11, (size, size, 1), dtype=np.int8)
    np.clip(canvas, 0, 254.5, out=canvas)
    canvas += 0.5  # round half up on the cast below
    image = Image.fromarray(canvas.astype(np.uint8), "RGB")
    objects = []
    for kind, (x1, y1, x2, y2), truncated in placed:
        longest = max(x2 - x1 + 1, y2 - y1 + 1)
        objects.append(_Object(kind, x1, y1, x2, y2, truncated, longest < DIFFICULT_FRACTION * size))
    return image, objects


def annotation_xml(image_id: str, size: int, objects: list[_Object], seed: int) -> str:
    """VOC XML text for one image, formatted exactly like the VOC2007 files (tabs, field order)."""
    lines = [
        "<annotation>",
        f"\t<folder>{FOLDER}</folder>",
        f"\t<filename>{image_id}.jpg</filename>",
        "\t<source>",
        "\t\t<database>The VOCshapes Database</database>",
        f"\t\t<annotation>vocli shapes (seed {seed})</annotation>",
        "\t\t<image>synthetic</image>",
        "\t</source>",
        "\t<size>",
        f"\t\t<width>{size}</width>",
        f"\t\t<height>{size}</height>",
        "\t\t<depth>3</depth>",
        "\t</size>",
        "\t<segmented>0</segmented>",
    ]
    for o in objects:
        lines += [
            "\t<object>",
            f"\t\t<name>{o.name}</name>",
            "\t\t<pose>Unspecified</pose>",
            f"\t\t<truncated>{int(o.truncated)}</truncated>",
            f"\t\t<difficult>{int(o.difficult)}</difficult>",
            "\t\t<bndbox>",
            f"\t\t\t<xmin>{o.xmin}</xmin>",
            f"\t\t\t<ymin>{o.ymin}</ymin>",
            f"\t\t\t<xmax>{o.xmax}</xmax>",
            f"\t\t\t<ymax>{o.ymax}</ymax>",
            "\t\t</bndbox>",
            "\t</object>",
        ]
    lines.append("</annotation>")
    return "\n".join(lines) + "\n"


def split_ids(ids: list[str], seed: int) -> dict[str, list[str]]:
    """Seeded split: train 50 %, val 10 %, test 40 %; trainval = train + val; each list sorted."""
    order = np.random.default_rng([seed, 2**31 - 1]).permutation(len(ids))
    n_train = int(round(len(ids) * TRAIN_SHARE))
    n_val = int(round(len(ids) * VAL_SHARE))
    pick = lambda part: sorted(ids[i] for i in part)  # noqa: E731
    train, val, test = order[:n_train], order[n_train:n_train + n_val], order[n_train + n_val:]
    return {"train": pick(train), "val": pick(val), "trainval": pick(np.concatenate([train, val])),
            "test": pick(test)}


def generate_shapes(root: str | os.PathLike, images: int = 1000, size: int = 256, seed: int = 0,
                    progress: Optional[Callable[[int], None]] = None) -> ShapesResult:
    """Write the dataset to ``root/VOCdevkit/VOCshapes`` (replacing an old one) and describe it.

    The tree is built in a temporary folder beside the target and renamed into
    place at the end, so an interrupted run leaves no half-written dataset.
    ``progress(1)`` is called after each image.
    """
    if images < 1:
        raise VocliError(f"--images must be at least 1, got {images}")
    if size < 32:
        raise VocliError(f"--size must be at least 32 pixels, got {size}", hint="the default is 256")
    devkit = Path(root).expanduser() / "VOCdevkit"
    devkit.mkdir(parents=True, exist_ok=True)
    target = devkit / FOLDER
    tmp = Path(tempfile.mkdtemp(prefix=f".{FOLDER}.", suffix=".tmp", dir=devkit))
    try:
        ann_dir, img_dir, main_dir = tmp / "Annotations", tmp / "JPEGImages", tmp / "ImageSets" / "Main"
        for d in (ann_dir, img_dir, main_dir):
            d.mkdir(parents=True)
        ids = [f"{i + 1:06d}" for i in range(images)]
        per_class = {c: 0 for c in SHAPES_CLASSES}
        n_objects = n_difficult = n_truncated = 0
        for index, image_id in enumerate(ids):
            image, objects = render_image(seed, index, size)
            image.save(img_dir / f"{image_id}.jpg", format="JPEG", quality=JPEG_QUALITY, subsampling=0)
            (ann_dir / f"{image_id}.xml").write_text(annotation_xml(image_id, size, objects, seed), encoding="utf-8")
            for o in objects:
                per_class[o.name] += 1
                n_difficult += o.difficult
                n_truncated += o.truncated
            n_objects += len(objects)
            if progress is not None:
                progress(1)
        splits = split_ids(ids, seed)
        for name, members in splits.items():
            (main_dir / f"{name}.txt").write_text("".join(f"{m}\n" for m in members), encoding="utf-8")
        # The class list travels with the data, so converters need no --classes for it.
        (tmp / CLASS_LIST_FILE).write_text("".join(f"{c}\n" for c in SHAPES_CLASSES), encoding="utf-8")
        _swap_into_place(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ShapesResult(root=target, devkit=devkit, images=images, objects=n_objects, size=size, seed=seed,
                        classes=SHAPES_CLASSES, splits={k: len(v) for k, v in splits.items()},
                        objects_per_class=per_class, difficult=n_difficult, truncated=n_truncated)


def _swap_into_place(new: Path, target: Path) -> None:
    """Rename ``new`` onto ``target``; an existing ``target`` is moved aside first, then deleted."""
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
        os.replace(target, old / target.name)
    os.replace(new, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)

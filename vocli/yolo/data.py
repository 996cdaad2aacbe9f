"""Training data for YOLO: image lists with darknet labels, augmentation, and batch collation.

Labels are darknet-style rows ``class cx cy w h`` normalised to the image (0..1).
A sample comes out as a (3, S, S) uint8 image and (n, 5) float32 targets in the same
normalised format, relative to the network input after augmentation. ``collate``
joins samples into a (B, 3, S, S) uint8 batch and (M, 6) targets
``[batch_index, class, cx, cy, w, h]``.

Randomness is drawn from ``numpy.random.default_rng([seed, epoch, index])`` per sample,
so a sample's augmentation does not depend on worker count, worker order or where a
run was resumed.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

import numpy as np
import torch

from vocli.errors import DatasetNotFoundError, ImageReadError, VocliError
from vocli.images import letterbox, load_image

FILL = 114  # grey used for letterbox padding and affine borders


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation strengths. Set ``enabled=False`` (or pass ``None``) for plain letterboxing."""

    enabled: bool = True
    flip: float = 0.5          # probability of a horizontal flip
    hsv_h: float = 0.015       # hue gain range (fraction of the hue circle)
    hsv_s: float = 0.7         # saturation gain range (+-)
    hsv_v: float = 0.4         # value gain range (+-)
    scale: float = 0.5         # random zoom in [1 - scale, 1 + scale]
    translate: float = 0.1     # random shift, fraction of the input size
    min_size: float = 2.0      # boxes narrower or shorter than this (pixels) are dropped
    min_area_ratio: float = 0.1  # boxes keeping less than this share of their area are dropped


@dataclass
class LabelledImages:
    """Image paths and their labels: ``labels[i]`` is (n_i, 5) float32 ``class cx cy w h`` normalised."""

    paths: list[Path]
    labels: list[np.ndarray]
    invalid: list = field(default_factory=list)  # InvalidFile of each annotation left out

    def __len__(self) -> int:
        return len(self.paths)


# --------------------------------------------------------------------------- reading labels


def read_image_list(list_path: str | os.PathLike) -> list[Path]:
    """Image paths from a darknet list file (one per line; relative paths are relative to the list)."""
    list_path = Path(list_path)
    try:
        lines = list_path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DatasetNotFoundError(f"{list_path}: image list not found",
                                   hint="run `vocli convert yolo` or fix the path in the .data file") from None
    paths = []
    for line in lines:
        line = line.strip()
        if line:
            p = Path(line)
            paths.append(p if p.is_absolute() else (list_path.parent / p))
    if not paths:
        raise DatasetNotFoundError(f"{list_path}: image list is empty")
    return paths


def read_label_file(path: Path, num_classes: int) -> np.ndarray:
    """A darknet label file -> (n, 5) float32; a missing file means no objects."""
    if not path.is_file():
        return np.zeros((0, 5), dtype=np.float32)
    rows = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        try:
            values = [float(v) for v in parts[:5]]
        except ValueError:
            values = []
        if len(values) != 5 or not all(math.isfinite(v) for v in values):
            raise VocliError(f"{path}:{lineno}: expected 'class cx cy w h', got {line.strip()!r}",
                             hint="regenerate labels with `vocli convert yolo`")
        cls = values[0]
        if cls != int(cls) or not 0 <= cls < num_classes:
            raise VocliError(f"{path}:{lineno}: class {parts[0]} is outside 0..{num_classes - 1}",
                             hint="check classes= in the .data file")
        rows.append(values)
    arr = np.array(rows, dtype=np.float32).reshape(-1, 5)
    arr[:, 1:] = np.clip(arr[:, 1:], 0.0, 1.0)
    return arr


def darknet_images(list_path: str | os.PathLike, num_classes: int) -> LabelledImages:
    """Images of a darknet list file with labels from the sibling ``labels/`` folders."""
    from converters.voc_to_yolo import label_path_for

    paths = read_image_list(list_path)
    return LabelledImages(paths, [read_label_file(label_path_for(p), num_classes) for p in paths])


def voc_images(root: str | os.PathLike, sets: str | Sequence[str], classes: Sequence[str],
               include_difficult: bool = False, workers: Optional[int] = 1) -> LabelledImages:
    """Images of VOC sets with labels computed from their XML (difficult objects left out by default).

    VOC corners are 1-based inclusive, so pixel ``xmin`` starts at continuous ``xmin - 1``
    and ``xmax`` ends at ``xmax``; the normalised box spans ``[(xmin - 1) / W, xmax / W]``
    (``converters.voc_to_yolo.yolo_boxes`` with ``exact_pixels=True``). The XML files are read by
    ``voc_bulk.read_annotations`` (in one process by default: training runs it with torch loaded,
    and the batch reader takes VOC07+12 trainval in well under a second anyway); an image whose
    annotation is invalid is left out and its file listed in ``invalid`` (``InvalidFile``), as
    ``convert`` does.
    """
    from converters._common import invalid_annotation
    from converters.voc_to_yolo import yolo_boxes
    from vocli.datasets.voc import resolve_sets
    from vocli.datasets.voc_bulk import read_annotations

    listed = [(vs, image_id) for vs in resolve_sets(root, sets) for image_id in vs.ids()]
    table = read_annotations([vs.annotation_files([i])[0] for vs, i in listed], classes=classes, workers=workers)
    keep = np.ones(len(table.boxes), dtype=bool) if include_difficult else ~table.difficult
    image = table.object_file()
    cxcywh = yolo_boxes(table.boxes[keep], table.width[image[keep]], table.height[image[keep]], exact_pixels=True)
    rows = np.concatenate([table.class_ids[keep, None].astype(np.float64), cxcywh], axis=1).astype(np.float32)
    per_image = np.bincount(image[keep], minlength=len(listed))
    ends = np.cumsum(per_image).tolist()
    paths, labels = [], []
    for i, ((vs, _), end, n) in enumerate(zip(listed, ends, per_image.tolist())):
        if i in table.errors:
            continue
        paths.append(vs.dir / "JPEGImages" / table.filenames[i])
        labels.append(rows[end - n:end].reshape(-1, 5))
    return LabelledImages(paths, labels, [invalid_annotation(err) for err in table.invalid])


# --------------------------------------------------------------------------- augmentation


def hsv_jitter(image: np.ndarray, rng: np.random.Generator, h: float, s: float, v: float) -> np.ndarray:
    """Random hue/saturation/value gains on (H, W, 3) uint8 RGB, via HSV lookup tables."""
    from PIL import Image

    gains = rng.uniform(-1, 1, 3) * np.array([h, s, v]) + 1
    x = np.arange(256, dtype=np.float32)
    lut_h = ((x * gains[0]) % 256).astype(np.uint8)  # PIL's hue is 0..255 around the circle
    lut_s = np.clip(x * gains[1], 0, 255).astype(np.uint8)
    lut_v = np.clip(x * gains[2], 0, 255).astype(np.uint8)
    hsv = np.asarray(Image.fromarray(image).convert("HSV")).copy()
    hsv[..., 0] = lut_h[hsv[..., 0]]
    hsv[..., 1] = lut_s[hsv[..., 1]]
    hsv[..., 2] = lut_v[hsv[..., 2]]
    return np.asarray(Image.fromarray(hsv, "HSV").convert("RGB"))


def affine_letterbox(image: np.ndarray, size: int, zoom: float, shift_x: float, shift_y: float) -> tuple[np.ndarray, np.ndarray]:
    """Letterbox into ``size x size``, zoomed about the centre and shifted, in one resampling.

    Returns the (size, size, 3) uint8 image and the 2x3 matrix mapping original pixels
    to output pixels (``out = M @ [x, y, 1]``).
    """
    from PIL import Image

    h, w = image.shape[:2]
    r = min(size / w, size / h) * zoom
    tx = size / 2 - r * w / 2 + shift_x
    ty = size / 2 - r * h / 2 + shift_y
    forward = np.array([[r, 0, tx], [0, r, ty]], dtype=np.float64)
    # PIL wants the inverse map: output pixel -> input pixel.
    inverse = (1 / r, 0, -tx / r, 0, 1 / r, -ty / r)
    out = Image.fromarray(image).transform((size, size), Image.AFFINE, inverse, resample=Image.BILINEAR,
                                           fillcolor=(FILL, FILL, FILL))
    return np.asarray(out), forward


def transform_boxes(labels: np.ndarray, orig_w: int, orig_h: int, matrix: np.ndarray, size: int,
                    min_size: float, min_area_ratio: float) -> np.ndarray:
    """Map (n, 5) normalised labels through ``matrix``; clip to the input, drop degenerate boxes.

    Dropped: width or height under ``min_size`` pixels after clipping, or a clipped area under
    ``min_area_ratio`` of the transformed area. Returns (m, 5) labels normalised to ``size``.
    """
    if len(labels) == 0:
        return labels.reshape(0, 5)
    cx, cy = labels[:, 1] * orig_w, labels[:, 2] * orig_h
    bw, bh = labels[:, 3] * orig_w, labels[:, 4] * orig_h
    x1 = (cx - bw / 2) * matrix[0, 0] + matrix[0, 2]
    x2 = (cx + bw / 2) * matrix[0, 0] + matrix[0, 2]
    y1 = (cy - bh / 2) * matrix[1, 1] + matrix[1, 2]
    y2 = (cy + bh / 2) * matrix[1, 1] + matrix[1, 2]
    area = (x2 - x1) * (y2 - y1)
    x1c, x2c = np.clip(x1, 0, size), np.clip(x2, 0, size)
    y1c, y2c = np.clip(y1, 0, size), np.clip(y2, 0, size)
    wc, hc = x2c - x1c, y2c - y1c
    keep = (wc >= min_size) & (hc >= min_size) & (wc * hc >= min_area_ratio * np.maximum(area, 1e-9))
    out = np.stack([labels[:, 0], (x1c + x2c) / 2 / size, (y1c + y2c) / 2 / size, wc / size, hc / size], axis=1)
    return out[keep].astype(np.float32)


# --------------------------------------------------------------------------- dataset


class YoloDataset(torch.utils.data.Dataset):
    """Letterboxed, optionally augmented samples: ``(image (3, S, S) uint8, targets (n, 5) float32)``.

    Images are first shrunk so their long side is at most ``img_size`` (cheap later
    resampling); ``cache=True`` keeps those in RAM, filled in the constructor so
    forked workers share them.
    """

    def __init__(self, data: LabelledImages, img_size: int, augment: Optional[AugmentConfig] = None,
                 seed: int = 0, cache: bool = False, progress: Optional[Callable[[int], None]] = None):
        self.data = data
        self.img_size = int(img_size)
        self.augment = augment if augment is not None and augment.enabled else None
        self.seed = int(seed)
        self.epoch = 0
        self.cache: Optional[list[np.ndarray]] = None
        if cache:
            self.cache = []
            for i in range(len(data)):
                self.cache.append(self._load(i))
                if progress:
                    progress(1)

    def __len__(self) -> int:
        return len(self.data)

    def set_epoch(self, epoch: int) -> None:
        """Choose the augmentation stream; call before creating each epoch's iterator."""
        self.epoch = int(epoch)

    def _load(self, index: int) -> np.ndarray:
        from PIL import Image

        image = load_image(self.data.paths[index])
        h, w = image.shape[:2]
        r = self.img_size / max(h, w)
        if r < 1:
            image = np.asarray(Image.fromarray(image).resize((max(1, round(w * r)), max(1, round(h * r))),
                                                             Image.BILINEAR))
        return image

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.cache[index] if self.cache is not None else self._load(index)
        labels = self.data.labels[index]
        h, w = image.shape[:2]
        size = self.img_size
        aug = self.augment
        if aug is None:
            out, info = letterbox(image, size, FILL)
            matrix = np.array([[info.scale, 0, info.pad_x], [0, info.scale, info.pad_y]])
            targets = transform_boxes(labels, w, h, matrix, size, 0.0, 0.0)
        else:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            zoom = rng.uniform(1 - aug.scale, 1 + aug.scale)
            shift = rng.uniform(-aug.translate, aug.translate, 2) * size
            out, matrix = affine_letterbox(image, size, zoom, shift[0], shift[1])
            targets = transform_boxes(labels, w, h, matrix, size, aug.min_size, aug.min_area_ratio)
            if rng.random() < aug.flip:
                out = out[:, ::-1]
                targets[:, 1] = 1 - targets[:, 1]
            if aug.hsv_h or aug.hsv_s or aug.hsv_v:
                out = hsv_jitter(np.ascontiguousarray(out), rng, aug.hsv_h, aug.hsv_s, aug.hsv_v)
        out = np.ascontiguousarray(out)
        if not out.flags.writeable:  # PIL-backed arrays are read-only
            out = out.copy()
        tensor = torch.from_numpy(out).permute(2, 0, 1).contiguous()
        return tensor, torch.from_numpy(targets)


@dataclass(frozen=True)
class UnreadableSample:
    """In place of a sample whose image could not be read. A DataLoader worker sends this
    instead of raising: a worker's exception reaches the main process as a many-line
    RuntimeError; ``make_loader``'s loader raises the ``ImageReadError`` there instead."""

    path: str
    reason: str


class _Guarded(torch.utils.data.Dataset):
    """``dataset`` with ``ImageReadError`` turned into an ``UnreadableSample``."""

    def __init__(self, dataset: torch.utils.data.Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        try:
            return self.dataset[index]
        except ImageReadError as err:
            return UnreadableSample(err.path, err.reason)


class _Loader(torch.utils.data.DataLoader):
    """A DataLoader whose iteration raises ``ImageReadError`` (one line naming the file) for an
    ``UnreadableSample`` batch, in the main process, whatever the number of workers."""

    def __iter__(self) -> Iterator:
        for batch in super().__iter__():
            if isinstance(batch, UnreadableSample):
                raise ImageReadError(batch.path, f"training image: {batch.reason}",
                                     hint="fix it or remove it from the training list")
            yield batch


def collate(batch: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Samples -> images (B, 3, S, S) uint8 and targets (M, 6) ``[batch_index, class, cx, cy, w, h]``.

    A batch holding an ``UnreadableSample`` comes out as that sample.
    """
    for sample in batch:
        if isinstance(sample, UnreadableSample):
            return sample
    images = torch.stack([b[0] for b in batch])
    rows = []
    for i, (_, t) in enumerate(batch):
        rows.append(torch.cat([torch.full((len(t), 1), float(i)), t.float().reshape(-1, 5)], dim=1))
    targets = torch.cat(rows) if rows else torch.zeros((0, 6))
    return images, targets


def worker_init(worker_id: int) -> None:
    """Seed python, numpy and torch in a DataLoader worker from the loader's generator."""
    import random

    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


def multi_scale_size(img_size: int, seed: int, epoch: int, iteration: int) -> int:
    """A random multiple of 32 in ``[0.67, 1.5] * img_size``, fixed by (seed, epoch, iteration)."""
    lo = max(32, int(math.ceil(img_size * 0.67 / 32)) * 32)
    hi = max(lo, int(img_size * 1.5) // 32 * 32)
    rng = np.random.default_rng([seed, epoch, iteration, 7])
    return int(rng.integers(lo // 32, hi // 32 + 1)) * 32


class EpochSampler(torch.utils.data.DistributedSampler):
    """A ``DistributedSampler`` whose next epoch can start part way through, to resume an interrupted epoch."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._skip = 0

    def start_at(self, samples: int) -> None:
        """Leave out the first ``samples`` of this rank's order, in the next epoch only."""
        self._skip = int(samples)

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        skip, self._skip = self._skip, 0
        return iter(indices[skip:])

    def __len__(self) -> int:
        full = super().__len__()
        return full - min(self._skip, full)


def make_loader(dataset: YoloDataset, batch_size: int, workers: int, seed: int, shuffle: bool = True,
                rank: int = 0, world_size: int = 1) -> torch.utils.data.DataLoader:
    """A DataLoader over ``dataset`` with a ``DistributedSampler`` (also for one process: it
    makes the shuffle a pure function of ``(seed, epoch)``; call ``loader.sampler.set_epoch``,
    and ``loader.sampler.start_at`` to resume part way through an epoch). An unreadable image
    stops the iteration with one ``ImageReadError`` naming it, with or without workers."""
    sampler = EpochSampler(dataset, num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed, drop_last=False)
    generator = torch.Generator()
    generator.manual_seed(seed)
    return _Loader(
        _Guarded(dataset), batch_size=batch_size, sampler=sampler, num_workers=workers, collate_fn=collate,
        worker_init_fn=worker_init, generator=generator, pin_memory=False, drop_last=False,
        persistent_workers=False,
    )

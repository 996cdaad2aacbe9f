"""SSD default boxes, ground-truth matching, offset encoding, and HDF5 target files.

Everything follows the SSD paper's VOC setup as the widely used ssd.pytorch
code implements it (numbers, not code, carried over):

* Priors (``prior_boxes``): for each feature map of size f with step s, cell
  (i, j) in row-major order has centre ((j + 0.5) / (size / s), (i + 0.5) / (size / s))
  and boxes, in this order: min/size square; sqrt(min * max)/size square; then per
  aspect ratio r: (m sqrt r, m / sqrt r) and (m / sqrt r, m sqrt r) with m = min/size.
  All four (cx, cy, w, h) values are clamped to [0, 1]. SSD300: 8,732 priors;
  SSD512: 24,564.
* Ground truth (VOC 1-based corners) -> ((xmin - 1) / W, (ymin - 1) / H,
  (xmax - 1) / W, (ymax - 1) / H), difficult objects dropped unless asked.
* Matching (``match``): IoU of every ground truth with every prior (as xyxy);
  each ground truth claims its best prior (overlap forced to 2, the later ground
  truth wins a shared prior); every other prior takes its best ground truth when
  IoU >= threshold, else background. ``conf`` is class index + 1, 0 = background.
* Encoding with variances (v0, v1) = (0.1, 0.2):
  ((g_c - p_c) / (v0 p_wh), log(g_wh / p_wh) / v1).

The HDF5 file (``write_targets``/``open_targets``) stores ``loc`` only where
``conf > 0``; background rows are zeros (the SSD loss never reads them), which
makes the file compress to a few kilobytes per image.
"""

from __future__ import annotations

import functools
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from converters._common import (InvalidFile, ListsInvalid, Progress, chunked, image_file_name, invalid_annotation,
                                resolve_workers, run_chunks)
from vocli.boxes import box_iou_columns, cxcywh_to_xyxy
from vocli.datasets.voc import (VOC_CLASSES, dataset_classes, devkit_dir, read_classes, resolve_sets,
                                split_entries)
from vocli.errors import DatasetNotFoundError, VocliError
from vocli.paths import atomic_h5, data_root, remove_stale_temps

VARIANCES = (0.1, 0.2)
#: Ground truths matched against all priors at once: bounds ``match``'s memory to
#: MATCH_BLOCK x priors IoUs (8 MB for SSD300, 25 MB for SSD512).
MATCH_BLOCK = 256
# Matching costs objects x priors IoUs: the readers' cap (vocli.datasets.voc.MAX_OBJECTS, 10,000
# objects, about 2 s for SSD300) makes a larger annotation an invalid file, named and skipped.
#: Smallest normalised width/height used in log(): a one-pixel VOC box has zero
#: width after the (x - 1) / W normalisation, and log(0) would be -inf.
MIN_SIZE = 1e-6


@dataclass(frozen=True)
class SSDConfig:
    """Default-box layout of one SSD input size."""

    size: int
    feature_maps: tuple[int, ...]
    steps: tuple[int, ...]
    min_sizes: tuple[float, ...]
    max_sizes: tuple[float, ...]
    aspect_ratios: tuple[tuple[int, ...], ...]
    variances: tuple[float, float] = VARIANCES
    clip: bool = True

    @property
    def num_priors(self) -> int:
        return sum(f * f * (2 + 2 * len(r)) for f, r in zip(self.feature_maps, self.aspect_ratios))


SSD300 = SSDConfig(
    size=300, feature_maps=(38, 19, 10, 5, 3, 1), steps=(8, 16, 32, 64, 100, 300),
    min_sizes=(30, 60, 111, 162, 213, 264), max_sizes=(60, 111, 162, 213, 264, 315),
    aspect_ratios=((2,), (2, 3), (2, 3), (2, 3), (2,), (2,)),
)
# SSD512 has six boxes per cell on its first five maps (4-6-6-6-6-4-4); with
# [2] on the fifth map the count would be 24,532, not the paper's 24,564.
SSD512 = SSDConfig(
    size=512, feature_maps=(64, 32, 16, 8, 4, 2, 1), steps=(8, 16, 32, 64, 128, 256, 512),
    min_sizes=(35.84, 76.8, 153.6, 230.4, 307.2, 384.0, 460.8),
    max_sizes=(76.8, 153.6, 230.4, 307.2, 384.0, 460.8, 537.6),
    aspect_ratios=((2,), (2, 3), (2, 3), (2, 3), (2, 3), (2,), (2,)),
)
CONFIGS = {300: SSD300, 512: SSD512}


def ssd_config(size: int) -> SSDConfig:
    if size not in CONFIGS:
        raise VocliError(f"no SSD layout for size {size}", hint="use --size 300 or --size 512")
    return CONFIGS[size]


def prior_boxes(config: SSDConfig = SSD300) -> np.ndarray:
    """(P, 4) float32 cx, cy, w, h, normalised to [0, 1], in the reference order."""
    layers = []
    for f, step, smin, smax, ratios in zip(config.feature_maps, config.steps, config.min_sizes,
                                           config.max_sizes, config.aspect_ratios):
        f_k = config.size / step
        i, j = np.meshgrid(np.arange(f), np.arange(f), indexing="ij")  # row-major cells
        cx, cy = (j.ravel() + 0.5) / f_k, (i.ravel() + 0.5) / f_k
        s = smin / config.size
        big = math.sqrt(s * (smax / config.size))
        shapes = [(s, s), (big, big)]
        for r in ratios:
            shapes += [(s * math.sqrt(r), s / math.sqrt(r)), (s / math.sqrt(r), s * math.sqrt(r))]
        wh = np.array(shapes, dtype=np.float64)  # (A, 2)
        centres = np.stack([cx, cy], axis=1)  # (f*f, 2)
        boxes = np.concatenate([np.broadcast_to(centres[:, None, :], (f * f, len(shapes), 2)),
                                np.broadcast_to(wh[None], (f * f, len(shapes), 2))], axis=2)
        layers.append(boxes.reshape(-1, 4))
    priors = np.concatenate(layers).astype(np.float32)
    return np.clip(priors, 0.0, 1.0) if config.clip else priors


def normalise_voc_boxes(boxes: np.ndarray, width: float, height: float) -> np.ndarray:
    """VOC corners (N, 4), 1-based pixels -> (N, 4) float32 xyxy as ssd.pytorch's VOC transform: (x - 1) / W."""
    scale = np.array([width, height, width, height], dtype=np.float64)
    return ((np.asarray(boxes, dtype=np.float64).reshape(-1, 4) - 1) / scale).astype(np.float32)


def encode(matched: np.ndarray, priors: np.ndarray, variances: Sequence[float] = VARIANCES) -> np.ndarray:
    """Offsets of matched boxes from their priors. matched: (P, 4) xyxy, priors: (P, 4) cxcywh -> (P, 4)."""
    centre = ((matched[:, :2] + matched[:, 2:]) / 2 - priors[:, :2]) / (variances[0] * priors[:, 2:])
    size = np.maximum(matched[:, 2:] - matched[:, :2], MIN_SIZE) / priors[:, 2:]
    return np.concatenate([centre, np.log(size) / variances[1]], axis=1).astype(np.float32)


def decode(loc, priors, variances: Sequence[float] = VARIANCES):
    """Inverse of ``encode``. loc: (..., P, 4), priors: (P, 4) cxcywh -> (..., P, 4) xyxy (numpy or torch)."""
    exp, cat = (np.exp, np.concatenate) if isinstance(loc, np.ndarray) else (torch.exp, torch.cat)
    centre = priors[..., :2] + loc[..., :2] * variances[0] * priors[..., 2:]
    size = priors[..., 2:] * exp(loc[..., 2:] * variances[1])
    return cxcywh_to_xyxy(cat([centre, size], -1))


def match(truths: np.ndarray, labels: np.ndarray, priors: np.ndarray, threshold: float = 0.5,
          variances: Sequence[float] = VARIANCES,
          prior_corners: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
    """Assign ground truths to priors (rule in the module docstring).

    truths: (G, 4) float32 xyxy normalised; labels: (G,) 0-based class ids;
    priors: (P, 4) cxcywh; prior_corners: the same priors as xyxy, when already
    computed -> (loc (P, 4) float32, zero where background; conf (P,) int64,
    0 background, else class id + 1).
    """
    num_priors = priors.shape[0]
    loc = np.zeros((num_priors, 4), dtype=np.float32)
    conf = np.zeros(num_priors, dtype=np.int64)
    if len(truths) == 0:
        return loc, conf
    if prior_corners is None:
        prior_corners = cxcywh_to_xyxy(priors.astype(np.float32))
    truths32 = truths.astype(np.float32)
    best_prior = np.empty(len(truths), dtype=np.int64)
    best_truth = np.zeros(num_priors, dtype=np.int64)
    best_overlap = None
    # Ground truths in blocks: memory O(block x P) however many objects an image has (the
    # whole (G, P) matrix was 10 GB for 300,000 objects), with the same numbers in the same order.
    for start in range(0, len(truths32), MATCH_BLOCK):
        overlaps = box_iou_columns(truths32[start:start + MATCH_BLOCK], prior_corners)  # (g, P), as box_iou
        best_prior[start:start + len(overlaps)] = overlaps.argmax(axis=1)  # first maximum, like torch.max
        # Best ground truth per prior, first maximum on ties. A loop over the few ground
        # truths, each step vectorised over all priors, is ~3x faster than argmax(axis=0).
        first = 0
        if best_overlap is None:
            best_overlap, first = overlaps[0].copy(), 1
        for g in range(first, len(overlaps)):
            best_truth[overlaps[g] > best_overlap] = start + g
            np.maximum(best_overlap, overlaps[g], out=best_overlap)
    best_overlap[best_prior] = 2.0
    # Later ground truths overwrite earlier ones on a shared best prior.
    reversed_first = np.unique(best_prior[::-1], return_index=True)
    best_truth[reversed_first[0]] = len(best_prior) - 1 - reversed_first[1]
    positive = best_overlap >= threshold
    conf[positive] = np.asarray(labels, dtype=np.int64)[best_truth[positive]] + 1
    loc[positive] = encode(truths[best_truth[positive]], priors[positive], variances)
    return loc, conf


def config_attributes(config: SSDConfig, threshold: float, include_difficult: bool,
                      classes: Sequence[str]) -> dict:
    """What goes into the HDF5 attributes (JSON-able scalars and strings)."""
    return {
        "format": "vocli-ssd-targets", "format_version": 1, "size": config.size,
        "feature_maps": list(config.feature_maps), "steps": list(config.steps),
        "min_sizes": list(config.min_sizes), "max_sizes": list(config.max_sizes),
        "aspect_ratios": json.dumps([list(r) for r in config.aspect_ratios]),
        "variances": list(config.variances), "clip": config.clip, "threshold": threshold,
        "include_difficult": include_difficult, "classes": json.dumps(list(classes)),
        "num_classes": len(classes), "gt_normalisation": "((xmin-1)/W, (ymin-1)/H, (xmax-1)/W, (ymax-1)/H)",
        "label_offset": 1, "loc_background": "zero",
    }


# --------------------------------------------------------------------------- building target files


@functools.lru_cache(maxsize=4)
def _priors(size: int) -> tuple[np.ndarray, np.ndarray]:
    """(priors (P, 4) cxcywh, the same as xyxy), computed once per process, read-only."""
    priors = prior_boxes(ssd_config(size))
    corners = cxcywh_to_xyxy(priors)
    priors.setflags(write=False)
    corners.setflags(write=False)
    return priors, corners


@dataclass
class SSDFileSummary:
    """One written HDF5 file: its set, images, kept objects, mean positive priors per image, size."""

    set: str
    path: Path
    images: int
    objects: int
    positives_per_image: float
    bytes: int

    @property
    def bytes_per_image(self) -> float:
        return self.bytes / max(self.images, 1)


@dataclass
class SSDConvertResult(ListsInvalid):
    out: Path
    size: int
    num_priors: int
    files: list[SSDFileSummary]
    invalid: list[InvalidFile]
    seconds: float = 0.0

@dataclass(frozen=True)
class _Job:
    voc_dir: str
    ids: tuple[str, ...]
    classes: tuple[str, ...]
    include_difficult: bool
    size: int
    threshold: float


@dataclass
class _Chunk:
    ids: list[str]
    image_names: list[str]
    counts: np.ndarray  # (n,) objects kept per image
    gt_boxes: np.ndarray  # (M, 4) float32 xyxy normalised
    gt_labels: np.ndarray  # (M,) int64, 1..C
    gt_difficult: np.ndarray  # (M,) bool
    conf: np.ndarray  # (n, P) int16
    positive: np.ndarray  # (K, 2) int64 (image row, prior) of every positive
    positive_loc: np.ndarray  # (K, 4) float32
    invalid: list[InvalidFile]


def _read_in_process(paths: list[str], classes):
    """The chunk's annotations by the bulk reading, in this (worker) process."""
    from vocli.datasets.voc_bulk import read_annotations

    return read_annotations(paths, classes=classes, workers=1)


def _match_chunk(job: _Job) -> _Chunk:
    priors, corners = _priors(job.size)
    ids, names, counts, boxes, labels, difficult, confs, positive, positive_loc, invalid = (
        [], [], [], [], [], [], [], [], [], [])
    annotations = os.path.join(job.voc_dir, "Annotations")
    table = _read_in_process([os.path.join(annotations, f"{i}.xml") for i in job.ids], job.classes)
    invalid.extend(invalid_annotation(err) for err in table.invalid)
    for row, image_id in enumerate(job.ids):
        if row in table.errors:
            continue
        ann = table.annotation(row)
        class_ids = ann.labels(job.classes, job.include_difficult)
        truths = normalise_voc_boxes(ann.boxes(job.include_difficult), ann.width, ann.height)
        loc, conf = match(truths, class_ids, priors, job.threshold, prior_corners=corners)
        rows = np.flatnonzero(conf)
        positive.append(np.stack([np.full(len(rows), len(ids)), rows], axis=1))
        positive_loc.append(loc[rows])
        ids.append(image_id)
        names.append(image_file_name(ann.filename, image_id))
        counts.append(len(truths))
        boxes.append(truths)
        labels.append(class_ids + 1)
        difficult.append(ann.difficult(job.include_difficult))
        confs.append(conf.astype(np.int16))
    return _Chunk(
        ids=ids, image_names=names, counts=np.array(counts, dtype=np.int64),
        gt_boxes=np.concatenate(boxes).astype(np.float32) if boxes else np.zeros((0, 4), np.float32),
        gt_labels=np.concatenate(labels).astype(np.int64) if labels else np.zeros(0, np.int64),
        gt_difficult=np.concatenate(difficult).astype(bool) if difficult else np.zeros(0, bool),
        conf=np.stack(confs) if confs else np.zeros((0, len(priors)), np.int16),
        positive=np.concatenate(positive).astype(np.int64) if positive else np.zeros((0, 2), np.int64),
        positive_loc=np.concatenate(positive_loc) if positive_loc else np.zeros((0, 4), np.float32),
        invalid=invalid,
    )


def _compression(name: str) -> dict:
    # Level 1, no shuffle: the mostly-zero rows compress to ~1.3 KB per SSD300 image
    # either way, and this is the fastest setting measured.
    if name == "gzip":
        return {"compression": "gzip", "compression_opts": 1}
    if name == "lzf":
        return {"compression": "lzf"}
    if name == "none":
        return {}
    raise VocliError(f"unknown compression {name!r}", hint="use gzip, lzf or none")


def _write_set(path: Path, set_name: str, voc_dir: Path, jobs: list[_Job], sizes: list[int], workers: int,
               attributes: dict, compression: str, progress: Progress, invalid: list) -> SSDFileSummary:
    """Match and write one set. Ctrl-C and SIGTERM take effect at once while a chunk is matched in
    this process, else only at ``signals.check()``: after each write, every 0.1 s while waiting for
    workers and at the end; never inside h5py, where the KeyboardInterrupt could be lost in a
    weakref callback ("Exception ignored in")."""
    import h5py

    from vocli.interrupts import DeferredSignals

    priors = _priors(attributes["size"])[0]  # also when the list is empty (no jobs)
    num = sum(sizes)
    per_image = _compression(compression)
    strings = h5py.string_dtype("utf-8")
    ids, names, counts, boxes, labels, difficult, positives = [], [], [], [], [], [], 0
    signals = DeferredSignals()
    # Built in memory (a full disk is one clear error); a signal during the final write stops it before the rename.
    with signals, atomic_h5(path, before_rename=signals.check) as h5:
        loc_ds = h5.create_dataset("loc", (num, len(priors), 4), np.float32, maxshape=(None, len(priors), 4),
                                   chunks=(1, len(priors), 4), **per_image)
        conf_ds = h5.create_dataset("conf", (num, len(priors)), np.int16, maxshape=(None, len(priors)),
                                    chunks=(1, len(priors)), **per_image)
        row = 0
        for chunk in run_chunks(_match_chunk, jobs, workers, sizes, progress, interrupts=signals):
            n = len(chunk.ids)
            invalid.extend(chunk.invalid)
            if n:
                dense = np.zeros((n, len(priors), 4), dtype=np.float32)
                dense[chunk.positive[:, 0], chunk.positive[:, 1]] = chunk.positive_loc
                loc_ds[row:row + n] = dense
                conf_ds[row:row + n] = chunk.conf
                signals.check()
            row += n
            positives += len(chunk.positive)
            ids += chunk.ids
            names += chunk.image_names
            counts.append(chunk.counts)
            boxes.append(chunk.gt_boxes)
            labels.append(chunk.gt_labels)
            difficult.append(chunk.gt_difficult)
        loc_ds.resize(row, axis=0)
        conf_ds.resize(row, axis=0)
        counts_all = np.concatenate(counts) if counts else np.zeros(0, np.int64)
        h5.create_dataset("image_ids", data=np.array(ids, dtype=object), dtype=strings)
        images_dir = (voc_dir / "JPEGImages").resolve()
        h5.create_dataset("image_paths", data=np.array([str(images_dir / n) for n in names], dtype=object),
                          dtype=strings)
        h5.create_dataset("gt_offsets", data=np.concatenate([[0], np.cumsum(counts_all)]).astype(np.int64))
        h5.create_dataset("gt_boxes", data=np.concatenate(boxes).reshape(-1, 4) if boxes else np.zeros((0, 4)),
                          dtype=np.float32)
        h5.create_dataset("gt_labels", data=np.concatenate(labels) if labels else np.zeros(0), dtype=np.int64)
        h5.create_dataset("gt_difficult", data=np.concatenate(difficult) if difficult else np.zeros(0, bool), dtype=bool)
        h5.create_dataset("priors", data=priors)
        h5.attrs.update({**attributes, "set": set_name})
        signals.check()
    return SSDFileSummary(set=set_name, path=path, images=row, objects=int(counts_all.sum()),
                          positives_per_image=positives / max(row, 1), bytes=path.stat().st_size)


def build_ssd_targets(
    root: str | os.PathLike | None = None,
    sets: str | Sequence[str] | None = None,
    out: str | os.PathLike | None = None,
    size: int = 300,
    threshold: float = 0.5,
    classes: Sequence[str] | str | os.PathLike | None = None,
    include_difficult: bool = False,
    compression: str = "gzip",
    workers: Optional[int] = None,
    progress: Progress = None,
) -> SSDConvertResult:
    """Match every image of each set to the SSD priors; one ``<out>/<year>_<split>.h5`` per set
    (``vocli convert ssd``; default ``out``: ``ssd<size>/`` beside VOCdevkit).

    Invalid annotations are listed in ``result.invalid`` and left out of the files.
    """
    started = time.perf_counter()
    config = ssd_config(size)
    if not 0.0 < threshold <= 1.0:
        raise VocliError(f"--threshold must be in (0, 1], got {threshold}")
    _compression(compression)
    root = Path(root).expanduser() if root is not None else data_root()
    voc_sets = resolve_sets(root, sets)
    if isinstance(classes, (str, os.PathLike)):
        class_names = read_classes(classes)
    else:
        class_names = tuple(classes) if classes is not None else (dataset_classes(voc_sets) or (VOC_CLASSES,))[0]
    out_dir = (Path(out).expanduser() if out is not None else devkit_dir(root).parent / f"ssd{size}").resolve()
    workers = resolve_workers(workers)
    attributes = config_attributes(config, threshold, include_difficult, class_names)
    total = sum(len(vs.ids()) for vs in voc_sets)
    done_before = 0

    def set_progress(done: int, _total: int) -> None:
        if progress:
            progress(done_before + done, total)

    remove_stale_temps(out_dir)  # .<set>.h5.<pid>....tmp of a run that was killed
    files, invalid = [], []
    for vs in voc_sets:
        ids, bad = split_entries(vs.split_file)
        invalid += [InvalidFile(str(vs.split_file), f"entry {entry!r} {reason}") for entry, reason in bad]
        chunks = chunked(ids, workers, smallest=8, largest=64)
        jobs = [_Job(str(vs.dir), tuple(c), class_names, include_difficult, size, threshold) for c in chunks]
        path = out_dir / f"{vs.year}_{vs.split}.h5"
        files.append(_write_set(path, vs.name, vs.dir, jobs, [len(c) for c in chunks], workers,
                                attributes, compression, set_progress, invalid))
        done_before += len(ids)
    return SSDConvertResult(out=out_dir, size=size, num_priors=config.num_priors, files=files,
                            invalid=invalid, seconds=time.perf_counter() - started)


# --------------------------------------------------------------------------- reading target files


class SSDTargets:
    """Read access to one target file; ``targets[i]`` -> dict of torch tensors for image i.

    Keys: ``image_id``, ``image_path`` (str); ``boxes`` (G, 4) float32 xyxy
    normalised; ``labels`` (G,) int64 1..C; ``difficult`` (G,) bool; ``loc``
    (P, 4) float32; ``conf`` (P,) int64. The file is opened lazily and again in
    each process, so the object can go to DataLoader workers.
    """

    REQUIRED = ("image_ids", "image_paths", "gt_offsets", "gt_boxes", "gt_labels", "gt_difficult",
                "priors", "loc", "conf")

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._h5 = None
        self._pid = None
        with self._errors():
            h5 = self._file()
            missing = [name for name in self.REQUIRED if name not in h5]
            if missing:
                raise VocliError(f"{self.path}: not an SSD target file (missing {', '.join(missing)})",
                                 hint="write it with `vocli convert ssd`")
            self.attrs = {k: (v.item() if hasattr(v, "item") and np.ndim(v) == 0 else v) for k, v in h5.attrs.items()}
            self._offsets = h5["gt_offsets"][:]

    def _errors(self):
        """h5py failures inside the block -> one VocliError line naming the file."""
        from vocli.hdf5_errors import hdf5_errors

        return hdf5_errors(self.path, "SSD target file", hint="write it again with `vocli convert ssd`")

    def _file(self):
        import h5py

        if self._h5 is None or self._pid != os.getpid():
            try:
                self._h5 = h5py.File(self.path, "r")
            except FileNotFoundError:
                raise DatasetNotFoundError(f"{self.path}: SSD target file not found",
                                           hint="run `vocli convert ssd`") from None
            self._pid = os.getpid()
        return self._h5

    def __len__(self) -> int:
        return len(self._offsets) - 1

    @property
    def priors(self) -> torch.Tensor:
        """(P, 4) float32 cx, cy, w, h."""
        with self._errors():
            return torch.from_numpy(self._file()["priors"][:])

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(json.loads(self.attrs["classes"]))

    def __getitem__(self, index: int) -> dict:
        if not -len(self) <= index < len(self):
            raise IndexError(f"image {index} out of range for {len(self)} images")
        i = index % len(self)
        with self._errors():
            h5 = self._file()
            a, b = int(self._offsets[i]), int(self._offsets[i + 1])
            return {
                "image_id": h5["image_ids"][i].decode("utf-8"),
                "image_path": h5["image_paths"][i].decode("utf-8"),
                "boxes": torch.from_numpy(h5["gt_boxes"][a:b]),
                "labels": torch.from_numpy(h5["gt_labels"][a:b]),
                "difficult": torch.from_numpy(h5["gt_difficult"][a:b]),
                "loc": torch.from_numpy(h5["loc"][i]),
                "conf": torch.from_numpy(h5["conf"][i].astype(np.int64)),
            }

    def close(self) -> None:
        if self._h5 is not None:
            self._h5.close()
            self._h5 = None

    def __enter__(self) -> "SSDTargets":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __getstate__(self):  # h5py handles do not pickle; reopen on the other side
        return {"path": self.path, "attrs": self.attrs, "_offsets": self._offsets, "_h5": None, "_pid": None}


def open_targets(path: str | os.PathLike) -> SSDTargets:
    """Open an SSD target file written by ``build_ssd_targets``."""
    return SSDTargets(path)

"""YOLO labels + images to VOC XML, so labels made elsewhere can enter the VOC pipeline.

The inverse of ``converters.voc_to_yolo`` for either convention, rounded to
whole 1-based pixels (VOC's integers) and clipped into the image:

``darknet`` (default)::  xmin = cx*W + 1 - w*W/2,   xmax = cx*W + 1 + w*W/2
``exact``::              xmin = cx*W - w*W/2 + 1,   xmax = cx*W + w*W/2

Both are exact inverses before rounding, so VOC -> YOLO -> VOC gives back the
original integer corners (and any box within half a pixel). Image sizes come
from the image headers (Pillow; pixels are not decoded).
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence
from xml.sax.saxutils import escape

import numpy as np

from converters._common import (InvalidFile, ListsInvalid, Progress, chunked, resolve_workers, run_chunks,
                                write_if_changed)
from converters.voc_to_yolo import label_path_for
from vocli.datasets.voc import VOC_CLASSES, image_size_from_file, read_classes
from vocli.errors import DatasetNotFoundError, VocliError
from vocli.images import IMAGE_SUFFIXES
from vocli.paths import atomic_write_text


def voc_corners(yolo: np.ndarray, widths: np.ndarray, heights: np.ndarray,
                exact_pixels: bool = False) -> np.ndarray:
    """Normalised cx, cy, w, h (N, 4) and image sizes (N,) -> (N, 4) int64 VOC corners.

    Corners are 1-based inclusive pixels, rounded half up, clipped to
    ``1 <= xmin <= xmax <= W`` (likewise y).
    """
    yolo = np.asarray(yolo, dtype=np.float64).reshape(-1, 4)
    w = np.asarray(widths, dtype=np.float64)
    h = np.asarray(heights, dtype=np.float64)
    cx, cy, bw, bh = yolo[:, 0] * w, yolo[:, 1] * h, yolo[:, 2] * w, yolo[:, 3] * h
    # darknet: centre = (xmin + xmax)/2 - 1, width = xmax - xmin.
    # exact:   centre = (xmin - 1 + xmax)/2, width = xmax - xmin + 1.
    shift_min, shift_max = (1.0, 1.0) if not exact_pixels else (1.0, 0.0)
    corners = np.stack([cx - bw / 2 + shift_min, cy - bh / 2 + shift_min,
                        cx + bw / 2 + shift_max, cy + bh / 2 + shift_max], axis=1)
    corners = np.floor(corners + 0.5)
    lo = np.ones_like(w)
    xmin = np.clip(corners[:, 0], lo, w)
    ymin = np.clip(corners[:, 1], lo, h)
    xmax = np.clip(corners[:, 2], xmin, w)
    ymax = np.clip(corners[:, 3], ymin, h)
    return np.stack([xmin, ymin, xmax, ymax], axis=1).astype(np.int64)


def parse_label_text(text: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """``class cx cy w h`` lines -> (class ids (N,) int64, boxes (N, 4) float64).

    Raises ``ValueError`` naming the line for a wrong field count, a non-number,
    a class id outside ``0..num_classes-1`` or a value outside [0, 1].
    """
    ids, boxes = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 5:
            raise ValueError(f"line {number}: expected 5 fields `class cx cy w h`, got {len(fields)}")
        try:
            cls = int(fields[0])
            values = [float(v) for v in fields[1:]]
        except ValueError:
            raise ValueError(f"line {number}: not numbers: {line.strip()!r}") from None
        if not 0 <= cls < num_classes:
            raise ValueError(f"line {number}: class id {cls} is outside 0..{num_classes - 1}")
        if not all(0.0 <= v <= 1.0 for v in values):  # also rejects nan
            raise ValueError(f"line {number}: values must lie in [0, 1]: {line.strip()!r}")
        ids.append(cls)
        boxes.append(values)
    return np.array(ids, dtype=np.int64), np.array(boxes, dtype=np.float64).reshape(-1, 4)


def annotation_xml(folder: str, filename: str, width: int, height: int, depth: int,
                   names: Sequence[str], corners: np.ndarray, difficult: Optional[Sequence[bool]] = None,
                   database: str = "vocli convert voc") -> str:
    """A VOC annotation document; corners (N, 4) 1-based inclusive pixels; difficult (N,) flags (default 0)."""
    flags = [0] * len(names) if difficult is None else [int(bool(d)) for d in difficult]
    objects = "".join(
        f"\t<object>\n\t\t<name>{escape(n)}</name>\n\t\t<pose>Unspecified</pose>\n"
        f"\t\t<truncated>0</truncated>\n\t\t<difficult>{d}</difficult>\n\t\t<bndbox>\n"
        f"\t\t\t<xmin>{x1}</xmin>\n\t\t\t<ymin>{y1}</ymin>\n\t\t\t<xmax>{x2}</xmax>\n"
        f"\t\t\t<ymax>{y2}</ymax>\n\t\t</bndbox>\n\t</object>\n"
        for n, (x1, y1, x2, y2), d in zip(names, np.asarray(corners).reshape(-1, 4).tolist(), flags)
    )
    return (f"<annotation>\n\t<folder>{escape(folder)}</folder>\n\t<filename>{escape(filename)}</filename>\n"
            f"\t<source>\n\t\t<database>{escape(database)}</database>\n\t</source>\n"
            f"\t<size>\n\t\t<width>{width}</width>\n\t\t<height>{height}</height>\n"
            f"\t\t<depth>{depth}</depth>\n\t</size>\n\t<segmented>0</segmented>\n{objects}</annotation>\n")


@dataclass
class VocConvertResult(ListsInvalid):
    out: Path  # the VOC<name> folder written
    split_file: Path
    images: int
    objects: int
    annotations_written: int
    annotations_unchanged: int
    invalid: list[InvalidFile]
    convention: str
    seconds: float = 0.0

@dataclass(frozen=True)
class _Job:
    out: str
    images: tuple[tuple[str, str], ...]  # (image path, label path)
    classes: tuple[str, ...]
    exact_pixels: bool
    copy_images: bool
    overwrite: bool


@dataclass
class _Done:
    ids: list[str]
    objects: int
    written: int
    unchanged: int
    invalid: list[InvalidFile]


def place_image(image: Path, target: Path, copy: bool) -> None:
    """Symlink (or copy) ``image`` to ``target``; an existing ``target`` must already be that image."""
    if target.exists() or target.is_symlink():
        if target.resolve() == image.resolve():
            return
        raise VocliError(f"{target} exists and is not {image}", hint="choose another --out")
    if copy:
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        shutil.copyfile(image, tmp)
        os.replace(tmp, target)
    else:
        os.symlink(image.resolve(), target)


def _convert_chunk(job: _Job) -> _Done:
    out = Path(job.out)
    rows, invalid = [], []
    for image_str, label_str in job.images:
        image, label = Path(image_str), Path(label_str)
        try:
            width, height, depth = image_size_from_file(image)
        except Exception as err:  # noqa: BLE001 - any decoder error is a bad image
            invalid.append(InvalidFile(str(image), f"unreadable image ({err})"))
            continue
        try:
            text = label.read_text(encoding="utf-8")
        except FileNotFoundError:
            text = ""  # YOLO's way of saying "no objects"
        except (OSError, UnicodeDecodeError) as err:
            invalid.append(InvalidFile(str(label), f"cannot read ({err})"))
            continue
        try:
            ids, boxes = parse_label_text(text, len(job.classes))
        except ValueError as err:
            invalid.append(InvalidFile(str(label), str(err)))
            continue
        rows.append((image, ids, boxes, width, height, depth))

    counts = [len(r[1]) for r in rows]
    yolo = np.concatenate([r[2] for r in rows]) if rows else np.zeros((0, 4))
    widths = np.repeat([r[3] for r in rows], counts) if rows else np.zeros(0)
    heights = np.repeat([r[4] for r in rows], counts) if rows else np.zeros(0)
    corners = voc_corners(yolo, widths, heights, job.exact_pixels)

    done, objects, written, unchanged, start = [], 0, 0, 0, 0
    for (image, ids, _, width, height, depth), n in zip(rows, counts):
        xml = annotation_xml(out.name, image.name, width, height, depth,
                             [job.classes[i] for i in ids], corners[start:start + n]).encode("utf-8")
        start += n
        target = out / "Annotations" / f"{image.stem}.xml"
        if not job.overwrite and target.exists() and target.read_bytes() != xml:
            # Never silently replace a hand-made annotation (difficult flags and poses would be lost).
            invalid.append(InvalidFile(str(target), "exists with other content; pass --overwrite to replace it"))
            continue
        place_image(image, out / "JPEGImages" / image.name, job.copy_images)
        if write_if_changed(target, xml):
            written += 1
        else:
            unchanged += 1
        done.append(image.stem)
        objects += n
    return _Done(done, objects, written, unchanged, invalid)


def _list_images(source: Path) -> list[Path]:
    """The images of a folder (by suffix) or a list file; none at all is an error (nothing to convert)."""
    if source.is_dir():
        paths = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not paths:
            raise DatasetNotFoundError(f"{source}: no image files in this folder ({', '.join(IMAGE_SUFFIXES)})",
                                       hint="point at the folder holding the images, or at a list file of them")
        return paths
    if source.is_file():
        lines = [line.strip() for line in source.read_text(encoding="utf-8").splitlines() if line.strip()]
        if not lines:
            raise DatasetNotFoundError(f"{source}: the image list is empty", hint="one image path a line")
        return [Path(line) if Path(line).is_absolute() else source.parent / line for line in lines]
    raise DatasetNotFoundError(f"{source}: no such image folder or list file")


def convert_voc(
    images: str | os.PathLike,
    out: str | os.PathLike | None = None,
    classes: Sequence[str] | str | os.PathLike | None = None,
    split: str = "train",
    labels: str | os.PathLike | None = None,
    exact_pixels: bool = False,
    copy_images: bool = False,
    overwrite: bool = False,
    workers: Optional[int] = None,
    progress: Progress = None,
) -> VocConvertResult:
    """Write VOC XML for YOLO-labelled images (``vocli convert voc``).

    ``images``: a folder of images or a list file of image paths. Labels are
    ``<labels>/<stem>.txt`` when ``labels`` is given, else found by swapping
    ``JPEGImages``/``images`` for ``labels`` (``label_path_for``); a missing label
    file means no objects. ``out``: the ``VOC<name>`` folder to write
    ``Annotations/``, ``ImageSets/Main/<split>.txt`` and ``JPEGImages/`` (images
    are symlinked there, or copied with ``copy_images``); default: the folder
    holding ``images`` when that is a ``JPEGImages`` folder. Existing
    annotations and split lists with other content are kept (and reported)
    unless ``overwrite``.
    """
    started = time.perf_counter()
    source = Path(images).expanduser()
    paths = _list_images(source)
    if out is None:
        if source.is_dir() and source.name == "JPEGImages":
            out = source.parent
        else:
            raise VocliError(f"{source}: cannot tell where to write the VOC tree",
                             hint="pass --out VOCdevkit/VOC<name>")
    out = Path(out).expanduser().resolve()
    if isinstance(classes, (str, os.PathLike)):
        class_names = read_classes(classes)
    else:
        class_names = tuple(classes) if classes is not None else VOC_CLASSES
    stems = [p.stem for p in paths]
    if len(set(stems)) != len(stems):
        dup = next(s for s in stems if stems.count(s) > 1)
        raise VocliError(f"two images share the id {dup!r}", hint="VOC ids are file names without extension")
    pairs = [(str(p), str(Path(labels) / f"{p.stem}.txt" if labels is not None else label_path_for(p)))
             for p in paths]
    for folder in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (out / folder).mkdir(parents=True, exist_ok=True)

    workers = resolve_workers(workers)
    chunks = chunked(pairs, workers)
    split_file = out / "ImageSets" / "Main" / f"{split}.txt"
    if not overwrite and split_file.exists() and split_file.read_text(encoding="utf-8").split() != stems:
        raise VocliError(f"{split_file} exists with other ids", hint="pass --split NAME, or --overwrite to replace it")
    jobs = [_Job(str(out), tuple(c), class_names, exact_pixels, copy_images, overwrite) for c in chunks]
    ids, invalid, objects, written, unchanged = [], [], 0, 0, 0
    for done in run_chunks(_convert_chunk, jobs, workers, [len(c) for c in chunks], progress):
        ids += done.ids
        invalid += done.invalid
        objects += done.objects
        written += done.written
        unchanged += done.unchanged
    if overwrite or not split_file.exists():  # an existing list was checked to hold these very ids
        atomic_write_text(split_file, "".join(f"{i}\n" for i in ids))
    return VocConvertResult(out=out, split_file=split_file, images=len(ids), objects=objects,
                            annotations_written=written, annotations_unchanged=unchanged, invalid=invalid,
                            convention="exact" if exact_pixels else "darknet",
                            seconds=time.perf_counter() - started)

"""``vocli detect``: run a model over images and write what it found, in formats people and tools read.

Outputs under ``out`` (each written atomically):

- ``<stem>.<jpg|png>``: the image with boxes, class names and scores drawn (unless ``draw=False``);
- ``labels/<stem>.txt`` (``save_txt``): YOLO lines ``class cx cy w h``, normalised;
- ``Annotations/<stem>.xml`` (``save_xml``): VOC XML, whole 1-based pixels clipped into the image,
  which ``vocli.datasets.voc.parse_annotation`` and ``vocli convert`` read back;
- ``detections.jsonl`` (``save_json``): one vocli JSON line per image (VOC 1-based pixels),
  the format ``vocli evaluate --detections`` reads; with ``json_format="coco"``, ``detections.json``,
  a COCO results list (``image_id, category_id, bbox, score``, see ``coco_results``).

Boxes go from original 0-based continuous pixels to normalised YOLO and VOC corners
with the darknet convention of ``converters.voc_to_yolo`` (VOC corner = pixel + 1).
"""

from __future__ import annotations

import glob
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import numpy as np

from vocli.detection_files import detection_json_line, to_voc_pixels
from vocli.errors import VocliError
from vocli.images import IMAGE_SUFFIXES
from vocli.paths import atomic_path, atomic_write_text, make_folder
from vocli.predict import (DEFAULT_IMG_SIZE, ImagePrediction, SkippedImage, device_name, load_model,
                           predict_images)

LIST_SUFFIXES = (".txt", ".list")


@dataclass
class DetectResult:
    """What ``detect`` did. ``counts``: detections per class name; ``skipped``: (path, reason)."""

    out: Path
    images: int
    num_detections: int
    counts: dict[str, int]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    written: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    images_per_second: float = 0.0
    json_path: Optional[Path] = None
    img_size: int = 0  # the network input size used


def resolve_sources(sources: Sequence[Union[str, os.PathLike]]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Images named by files, folders (their image files, not recursive), globs and list files.

    Returns (image paths in order without repeats, skipped (path, reason)). Files in a folder
    whose suffix is not an image suffix are skipped with a reason; dot-files silently.
    """
    images: list[Path] = []
    skipped: list[tuple[str, str]] = []
    for source in sources:
        text = str(source)
        path = Path(text).expanduser()
        if path.is_dir():
            for child in sorted(path.iterdir()):
                if child.name.startswith(".") or child.is_dir():
                    continue
                if child.suffix.lower() in IMAGE_SUFFIXES:
                    images.append(child)
                else:
                    skipped.append((str(child), "not an image file (suffix)"))
        elif path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    item = Path(line.strip()).expanduser()
                    images.append(item if item.is_absolute() else path.parent / item)
        elif path.is_file():
            images.append(path)
        elif any(ch in text for ch in "*?["):
            matches = sorted(Path(m) for m in glob.glob(os.path.expanduser(text), recursive=True))
            files = [m for m in matches if m.is_file() and m.suffix.lower() in IMAGE_SUFFIXES]
            if not files:
                skipped.append((text, "glob matched no image files"))
            images.extend(files)
        else:
            skipped.append((text, "not found"))
    seen: set[Path] = set()
    unique = [p for p in images if not (p in seen or seen.add(p))]
    return unique, skipped


def normalised_boxes(pred: ImagePrediction) -> np.ndarray:
    """(n, 4) cx, cy, w, h of ``pred``'s boxes over the image size (darknet label convention)."""
    b = pred.boxes.reshape(-1, 4)
    w, h = float(pred.width), float(pred.height)
    return np.stack([(b[:, 0] + b[:, 2]) / 2 / w, (b[:, 1] + b[:, 3]) / 2 / h,
                     (b[:, 2] - b[:, 0]) / w, (b[:, 3] - b[:, 1]) / h], axis=1)


def yolo_lines(pred: ImagePrediction) -> str:
    """``class cx cy w h`` lines, normalised, six decimals."""
    return "".join(f"{int(c)} {x:.6f} {y:.6f} {bw:.6f} {bh:.6f}\n"
                   for c, (x, y, bw, bh) in zip(pred.class_ids, normalised_boxes(pred).tolist()))


def voc_xml(pred: ImagePrediction, names: Sequence[str], folder: str = "vocli-detect") -> str:
    """A VOC annotation of the detections: whole 1-based corners clipped into the image."""
    from converters.yolo_to_voc import annotation_xml, voc_corners

    n = len(pred.boxes)
    corners = voc_corners(normalised_boxes(pred), np.full(n, pred.width), np.full(n, pred.height))
    return annotation_xml(folder, pred.path.name, pred.width, pred.height, 3,
                          [names[int(c)] for c in pred.class_ids], corners)


def _unique_stem(path: Path, used: set[str]) -> str:
    stem, n = path.stem, 1
    while stem in used:
        n += 1
        stem = f"{path.stem}_{n}"
    used.add(stem)
    return stem


def _drawn_suffix(path: Path) -> str:
    return ".png" if path.suffix.lower() == ".png" else ".jpg"


def _output_folder(out, images: Sequence[Path], stems: dict, weights, draw: bool, save_txt: bool,
                   save_xml: bool, save_json: bool, exist_ok: bool) -> Path:
    """The folder to write into, checked by the one output rule (``vocli.outputs``)."""
    from vocli.outputs import check_output_dir, next_run_dir

    if out is None:
        return next_run_dir(Path("runs/detect"), "exp")
    out = Path(out).expanduser()
    planned: list[Path] = []
    for path in images:
        stem = stems[path]
        if draw:
            planned.append(out / f"{stem}{_drawn_suffix(path)}")
        if save_txt:
            planned.append(out / "labels" / f"{stem}.txt")
        if save_xml:
            planned.append(out / "Annotations" / f"{stem}.xml")
    if save_json:
        planned.append(out / "detections.jsonl")
    inputs = [*images, weights] if weights is not None else list(images)
    return check_output_dir(out, inputs, planned, overwrite=exist_ok, option="--exist-ok")


def class_names_for(loaded_names, num_classes: int, names: Optional[Sequence[str]]) -> tuple[str, ...]:
    """Names given > names in the checkpoint > VOC's 20 > ``class0..``; the count must match the model."""
    from vocli.datasets.voc import VOC_CLASSES

    chosen = tuple(names) if names else loaded_names
    if chosen is None:
        chosen = VOC_CLASSES if num_classes == len(VOC_CLASSES) else tuple(f"class{i}" for i in range(num_classes))
    if len(chosen) != num_classes:
        raise VocliError(f"{len(chosen)} class names for a model with {num_classes} classes",
                         hint="pass --names with the .names file the model was trained on")
    return tuple(chosen)


def coco_results(parts: Sequence[tuple]) -> list[dict]:
    """COCO results entries from ``(stem, boxes VOC pixels (n, 4), scores (n,), class ids (n,))`` per image.

    Image ids from the stems by ``vocli.coco.coco_image_ids`` (as ``vocli convert coco`` numbers the
    same VOC ids); boxes through the same VOC -> COCO rule as the ground truth, so scoring this
    file with pycocotools gives what ``vocli evaluate --metric coco`` gives for the model.
    """
    from vocli.coco import coco_image_ids, results_list

    out: list[dict] = []
    for image_id, (_, boxes, scores, labels) in zip(coco_image_ids([p[0] for p in parts]), parts):
        out += results_list([image_id] * len(scores), boxes, scores, labels)
    return out


def detect(sources: Sequence[Union[str, os.PathLike]], weights: Union[str, os.PathLike], cfg=None,
           conf: float = 0.25, iou: float = 0.45, nms: str = "standard", img_size: Optional[int] = None,
           out: Optional[Union[str, os.PathLike]] = None, save_txt: bool = False, save_xml: bool = False,
           save_json: bool = False, draw: bool = True, device: str = "auto", json_format: str = "vocli",
           classes: Optional[Sequence[str]] = None, names: Optional[Sequence[str]] = None,
           batch_size: int = 8, max_det: int = 300, exist_ok: bool = False,
           progress: Optional[Callable[[int], None]] = None, model=None) -> DetectResult:
    """Detect objects in ``sources`` (images, folders, globs, list files) and write the outputs.

    ``classes`` keeps only those class names; ``names`` gives the model's class names
    (default: from the checkpoint, else VOC's). ``model`` (a built ``Darknet``) skips loading ``weights``.
    Unreadable files are skipped and listed in the result.

    ``out``: default ``runs/detect/exp``, ``exp2`` ... (a fresh folder each run). A given ``out``
    that holds files is refused unless ``exist_ok``; one where an output would replace an input
    image (``detect imgs --out imgs``) is refused always (``vocli.outputs``).
    """
    from PIL import Image

    from vocli.plotting import draw_detections

    if nms not in ("standard", "diou"):
        raise VocliError(f"unknown --nms {nms!r}", hint="use standard or diou")
    if json_format not in ("vocli", "coco"):
        raise VocliError(f"unknown --json-format {json_format!r}", hint="use vocli or coco")
    images, skipped = resolve_sources(sources)
    if not images:
        raise VocliError("no images to run on" + (f" ({skipped[0][0]}: {skipped[0][1]})" if skipped else ""),
                         hint="pass image files, folders, globs or a list file")
    # Outputs are checked before the model loads: a refused --out costs nothing.
    used: set[str] = set()
    stems = {path: _unique_stem(path, used) for path in images}
    out = _output_folder(out, images, stems, weights, draw=draw, save_txt=save_txt, save_xml=save_xml,
                         save_json=save_json, exist_ok=exist_ok)
    device = device_name(device)
    if model is None:
        loaded = load_model(weights, cfg=cfg, device=device)
        model, model_names, trained_size = loaded.model, loaded.names, loaded.img_size
    else:
        model_names, trained_size = None, None
    if img_size is None:  # the size the model was trained at, when its checkpoint says
        img_size = trained_size or DEFAULT_IMG_SIZE
    names = class_names_for(model_names, int(model.num_classes), names)
    keep = None
    if classes:
        unknown = [c for c in classes if c not in names]
        if unknown:
            raise VocliError(f"--classes: unknown class {unknown[0]!r}", hint=f"model classes: {', '.join(names)}")
        keep = np.array([names.index(c) for c in classes])
    make_folder(out)
    counts = {n: 0 for n in names}
    written = {"images": 0, "txt": 0, "xml": 0}
    json_lines: list[str] = []
    coco_parts: list[tuple] = []
    done = 0
    start = time.perf_counter()
    for pred in predict_images(model, images, img_size=img_size, conf=conf, iou=iou, nms=nms,
                               batch_size=batch_size, device=device, max_det=max_det, keep_images=draw,
                               progress=progress):
        if isinstance(pred, SkippedImage):
            skipped.append((str(pred.path), pred.reason))
            continue
        done += 1
        if keep is not None:
            sel = np.isin(pred.class_ids, keep)
            pred.boxes, pred.scores, pred.class_ids = pred.boxes[sel], pred.scores[sel], pred.class_ids[sel]
        for c in pred.class_ids:
            counts[names[int(c)]] += 1
        stem = stems[pred.path]
        if draw:
            suffix = _drawn_suffix(pred.path)
            drawn = draw_detections(Image.fromarray(pred.image), pred.boxes, names, pred.scores, pred.class_ids)
            with atomic_path(out / f"{stem}{suffix}", suffix=suffix) as tmp:
                drawn.save(tmp, format="PNG" if suffix == ".png" else "JPEG", quality=92)
            written["images"] += 1
        pred.image = None
        if save_txt:
            atomic_write_text(out / "labels" / f"{stem}.txt", yolo_lines(pred))
            written["txt"] += 1
        if save_xml:
            atomic_write_text(out / "Annotations" / f"{stem}.xml", voc_xml(pred, names))
            written["xml"] += 1
        if save_json and json_format == "coco":
            coco_parts.append((stem, to_voc_pixels(pred.boxes, pred.width, pred.height), pred.scores, pred.class_ids))
        elif save_json:
            json_lines.append(detection_json_line(stem, to_voc_pixels(pred.boxes, pred.width, pred.height),
                                                  pred.scores, pred.class_ids,
                                                  names, width=pred.width, height=pred.height))
    seconds = time.perf_counter() - start
    if not done:  # every input was unreadable: nothing was detected, which is no success
        path, reason = skipped[-1]
        raise VocliError(f"none of the {len(images)} image(s) could be read (e.g. {path}: {reason})",
                         hint="pass readable JPEG or PNG files")
    json_path = None
    if save_json and json_format == "coco":
        json_path = out / "detections.json"
        atomic_write_text(json_path, json.dumps(coco_results(coco_parts)))
    elif save_json:
        json_path = out / "detections.jsonl"
        atomic_write_text(json_path, "".join(json_lines))
    return DetectResult(out=out, images=done, num_detections=sum(counts.values()), counts=counts,
                        skipped=skipped, written=written, seconds=seconds,
                        images_per_second=done / seconds if seconds > 0 else 0.0, json_path=json_path,
                        img_size=img_size)

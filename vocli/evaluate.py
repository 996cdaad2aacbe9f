"""``vocli evaluate``: score a model, or detections made by any tool, the way the VOC devkit does.

Ground truth comes from VOC XML whenever an image sits in a VOC tree
(``Annotations/<id>.xml`` beside ``JPEGImages``), so ``difficult`` flags count;
otherwise from its YOLO label file (no difficult flags), converted back to VOC
corners with ``converters.yolo_to_voc.voc_corners``. Model boxes are mapped to VOC
1-based pixels with ``vocli.detection_files.to_voc_pixels`` before matching.
Definitions of the metrics: ``vocli.metrics``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import numpy as np

from vocli.datasets.voc import VOC_CLASSES, VocSet, image_size_from_file, resolve_sets
from vocli.datasets.voc_bulk import read_annotations
from vocli.detection_files import load_detections, to_voc_pixels
from vocli.errors import VocliError
from vocli.metrics import Detections, EvalResult, GroundTruth, default_metric, evaluate_detections

Progress = Optional[Callable[[int], None]]


# --------------------------------------------------------------------------- ground truth


def voc_ground_truth(voc_sets: Sequence[VocSet], classes: Sequence[str], progress: Progress = None,
                     workers: Optional[int] = None, meanwhile: Optional[Callable[[], None]] = None) -> GroundTruth:
    """Ground truth of every image listed in ``voc_sets`` (ids as in the split lists), difficult kept.

    The XML files are read by ``voc_bulk.read_annotations`` in ``workers`` processes (default:
    all cores; small sets in-process). An image whose annotation is invalid is left out, and
    listed in ``invalid`` (``convert``'s ``--skip-invalid`` semantics: the run goes on).
    ``meanwhile()``: other work done in this process while the workers read.
    """
    from converters._common import invalid_annotation

    ids = {vs: vs.ids() for vs in voc_sets}
    listed = [(vs, image_id) for vs in voc_sets for image_id in ids[vs]]
    table = read_annotations([path for vs in voc_sets for path in vs.annotation_files(ids[vs])], classes=classes,
                             workers=workers, progress=progress, meanwhile=meanwhile)
    valid = table.valid
    keep = np.flatnonzero(valid)
    object_file = table.object_file()
    return GroundTruth(image_ids=[listed[i][1] for i in keep.tolist()],
                       image_index=(np.cumsum(valid) - 1)[object_file].astype(np.int64),
                       boxes=table.boxes, labels=table.class_ids, difficult=table.difficult,
                       invalid=[invalid_annotation(err) for err in table.invalid],
                       invalid_ids=[listed[i][1] for i in sorted(table.errors)])


def _xml_beside(image: Path) -> Optional[Path]:
    """The VOC XML of an image in a ``JPEGImages`` folder, following the folder link that
    ``convert yolo --out`` makes (so difficult flags still count)."""
    if image.parent.name != "JPEGImages":
        return None
    for folder in dict.fromkeys((image.parent, image.parent.resolve())):
        xml = folder.parent / "Annotations" / f"{image.stem}.xml"
        if xml.is_file():
            return xml
    return None


def ground_truth_for_images(image_paths: Sequence[Union[str, os.PathLike]], classes: Sequence[str],
                            progress: Progress = None, workers: Optional[int] = 1) -> GroundTruth:
    """Ground truth of each image (id = its path as given): VOC XML beside it, else its YOLO label file.

    A missing label file means no objects, as in darknet. The XML files are read together by
    ``voc_bulk.read_annotations`` in ``workers`` processes (default 1: training calls this with
    torch's threads running, where forking is unsafe; ``None``: all cores); an image whose XML
    is invalid is left out and listed in ``invalid`` / ``invalid_ids`` (its path as given).
    """
    from converters._common import invalid_annotation
    from converters.voc_to_yolo import label_path_for
    from converters.yolo_to_voc import parse_label_text, voc_corners

    xmls = {k: xml for k, raw in enumerate(image_paths) if (xml := _xml_beside(Path(raw))) is not None}
    table = read_annotations(list(xmls.values()), classes=classes, workers=workers)
    row_of = dict(zip(xmls, range(len(xmls))))
    images, invalid, invalid_ids = [], [], []
    for k, raw in enumerate(image_paths):
        image = Path(raw)
        row = row_of.get(k)
        if row is not None:
            if row in table.errors:
                invalid.append(invalid_annotation(table.errors[row]))
                invalid_ids.append(str(raw))
            else:
                objects = slice(table.first[row], table.first[row + 1])
                images.append((str(raw), table.boxes[objects], table.class_ids[objects], table.difficult[objects]))
        else:
            label = label_path_for(image)
            text = label.read_text(encoding="utf-8") if label.is_file() else ""
            try:
                class_ids, yolo = parse_label_text(text, len(classes))
            except ValueError as err:
                raise VocliError(f"{label}: {err}") from None
            if len(class_ids):
                width, height, _ = image_size_from_file(image)
                boxes = voc_corners(yolo, np.full(len(yolo), width), np.full(len(yolo), height)).astype(np.float64)
            else:
                boxes = np.zeros((0, 4))
            images.append((str(raw), boxes, class_ids, np.zeros(len(class_ids), bool)))
        if progress is not None:
            progress(1)
    gt = GroundTruth.from_images(images)
    gt.invalid, gt.invalid_ids = invalid, invalid_ids
    return gt


def default_metric_for_images(image_paths: Sequence[Union[str, os.PathLike]]) -> str:
    """``voc07`` when the images are exactly VOC2007's test list, else ``voc12``."""
    paths = [Path(p) for p in image_paths]
    dirs = {p.parent for p in paths}
    if len(dirs) == 1:
        folder = next(iter(dirs))
        split = folder.parent / "ImageSets" / "Main" / "test.txt"
        if folder.name == "JPEGImages" and folder.parent.name == "VOC2007" and split.is_file():
            ids = [line.split()[0] for line in split.read_text(encoding="utf-8").splitlines() if line.strip()]
            if sorted(ids) == sorted(p.stem for p in paths):
                return default_metric(["2007/test"])
    return default_metric([])


# --------------------------------------------------------------------------- model evaluation


def evaluate_model(model, image_paths: Sequence[Union[str, os.PathLike]], ground_truth: Optional[GroundTruth] = None,
                   classes: Sequence[str] = VOC_CLASSES, img_size: int = 416, conf: float = 0.005,
                   iou: float = 0.45, batch_size: int = 16, device: str = "cpu", metric: Optional[str] = None,
                   nms: str = "standard", iou_threshold: float = 0.5, max_det: int = 300,
                   progress: Progress = None) -> EvalResult:
    """mAP of ``model`` (a ``Darknet``, left in the train/eval mode it came in) on ``image_paths``.

    ``ground_truth``: precomputed (ids = the paths as given), else read with
    ``ground_truth_for_images`` (pass it in when calling every epoch to skip re-reading).
    ``metric=None``: ``voc07`` for exactly VOC2007 test, else ``voc12``.
    """
    from vocli.predict import SkippedImage, predict_images

    if len(classes) != int(model.num_classes):
        raise VocliError(f"{len(classes)} class names for a model with {model.num_classes} classes",
                         hint="use the .names file the model was trained with")
    if ground_truth is None:
        ground_truth = ground_truth_for_images(image_paths, classes)
    if ground_truth.invalid_ids:  # images whose annotation is invalid are left out
        left_out = set(ground_truth.invalid_ids)
        image_paths = [p for p in image_paths if str(p) not in left_out]
    if metric is None:
        metric = default_metric_for_images(image_paths)
    ids, boxes, scores, labels = [], [], [], []
    for raw, pred in zip(image_paths, predict_images(model, image_paths, img_size=img_size, conf=conf, iou=iou,
                                                     nms=nms, batch_size=batch_size, device=device,
                                                     max_det=max_det, progress=progress)):
        if isinstance(pred, SkippedImage):
            raise VocliError(f"{pred.path}: {pred.reason}", hint="fix or remove it from the image list")
        ids.extend([str(raw)] * len(pred.scores))
        boxes.append(to_voc_pixels(pred.boxes, pred.width, pred.height))
        scores.append(pred.scores)
        labels.append(pred.class_ids)
    detections = Detections(np.array(ids, dtype=object), np.concatenate(boxes) if boxes else np.zeros((0, 4)),
                            np.concatenate(scores) if scores else np.zeros(0),
                            np.concatenate(labels) if labels else np.zeros(0, np.int64))
    return evaluate_detections(detections, ground_truth, classes, iou_threshold=iou_threshold, metric=metric)


# --------------------------------------------------------------------------- the command


def _default_classes(voc_sets: Sequence[VocSet]) -> tuple[str, ...]:
    if voc_sets and all(vs.year == "shapes" for vs in voc_sets):
        from vocli.datasets.shapes import SHAPES_CLASSES

        return tuple(SHAPES_CLASSES)
    return VOC_CLASSES


def _image_list(data, split: str) -> tuple[list[Path], tuple[str, ...]]:
    from converters.voc_to_yolo import read_data_file

    if split not in ("valid", "test", "train"):
        raise VocliError(f"unknown --split {split!r}", hint="use valid (= test) or train")
    data_file = read_data_file(data)
    listed = data_file.train if split == "train" else data_file.valid
    try:
        lines = listed.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise VocliError(f"{listed}: image list named in {data} not found", hint="re-run `vocli convert yolo`") from None
    paths = [Path(line.strip()) for line in lines if line.strip()]
    if not paths:
        raise VocliError(f"{listed}: image list is empty")
    return paths, data_file.names


def evaluate(weights=None, data=None, detections=None, root=None, sets=None, cfg=None, split: str = "valid",
             classes: Optional[Sequence[str]] = None, img_size: Optional[int] = None, conf: float = 0.005,
             iou: float = 0.45, metric: Optional[str] = None, iou_threshold: float = 0.5, plots=None,
             batch_size: int = 16, device: str = "auto", nms: str = "standard", workers: Optional[int] = None,
             progress: Progress = None) -> EvalResult:
    """Score ``detections`` (comp4 files / vocli JSON lines) or a model (``weights``) on VOC ground truth.

    Ground truth: ``root`` + ``sets`` (VOC XML), or ``data`` (a darknet .data file; its
    ``valid`` list, or ``train`` with ``split="train"``). ``plots``: folder for PR curves and
    the AP bar chart. ``metric=None``: ``voc07`` for exactly 2007/test, else ``voc12``.
    ``workers``: processes reading VOC XML (default: all cores).
    """
    from vocli.paths import data_root

    if (weights is None) == (detections is None):
        raise VocliError("give either --weights (score a model) or --detections (score files)")
    voc_sets = None
    if data is None:
        voc_sets = resolve_sets(root if root is not None else data_root(), sets, default=("2007/test",))
        names = tuple(classes) if classes else _default_classes(voc_sets)
    elif detections is not None:
        raise VocliError("--detections is scored against --root/--sets, not --data")
    if metric is None and voc_sets is not None:
        metric = default_metric([vs.name for vs in voc_sets])

    if detections is not None:
        coco = _is_coco_results(detections)
        loaded = []  # comp4 / JSON-lines files are parsed here while the workers read the XML
        gt = voc_ground_truth(voc_sets, names, progress, workers=workers,
                              meanwhile=None if coco else lambda: loaded.append(load_detections(detections, names)))
        if coco:  # COCO results name images by number: read against the ground truth's ids
            found, files = coco_detections(detections, gt, names), [Path(detections)]
        else:
            found, files = loaded[0]
        if gt.invalid_ids:  # their images are left out: so are their detections
            kept = ~np.isin(found.image_ids, np.array(gt.invalid_ids, dtype=object))
            found = Detections(found.image_ids[kept], found.boxes[kept], found.scores[kept], found.labels[kept])
        result = evaluate_detections(found, gt, names, iou_threshold=iou_threshold, metric=metric)
        result.source = f"{len(files)} detection file(s) from {detections}"
    else:
        # Ground truth first: its worker processes fork before torch starts threads or CUDA.
        if voc_sets is not None:
            images = [vs.image_path(i) for vs in voc_sets for i in vs.ids()]
            gt = voc_ground_truth(voc_sets, names, workers=workers)
            left_out = set(gt.invalid_ids)
            images = [vs.image_path(i) for vs in voc_sets for i in vs.ids() if i not in left_out]
            gt.image_ids = [str(p) for p in images]
        else:
            images, data_names = _image_list(data, split)
            names = tuple(classes) if classes else data_names
            gt = ground_truth_for_images(images, names, workers=workers)
            left_out = set(gt.invalid_ids)
            images = [p for p in images if str(p) not in left_out]
        from vocli.predict import DEFAULT_IMG_SIZE, device_name, load_model

        device = device_name(device)
        loaded = load_model(weights, cfg=cfg, device=device)
        if img_size is None:  # the size the model was trained at, when its checkpoint says
            img_size = loaded.img_size or DEFAULT_IMG_SIZE
        result = evaluate_model(loaded.model, images, gt, classes=names, img_size=img_size, conf=conf, iou=iou,
                                batch_size=batch_size, device=device, metric=metric, nms=nms,
                                iou_threshold=iou_threshold, progress=progress)
        result.source = f"{weights} on {len(images)} images at {img_size} px"
    result.invalid = gt.invalid
    if plots is not None:
        write_plots(result, plots)
    return result


def _is_coco_results(path) -> bool:
    """A ``.json`` file holding a JSON list (COCO results), not vocli's JSON lines."""
    path = Path(path).expanduser()
    if path.suffix != ".json" or not path.is_file():
        return False
    with open(path, "rb") as f:
        return f.read(256).lstrip()[:1] == b"["


def coco_detections(path, gt: GroundTruth, classes: Sequence[str]) -> Detections:
    """A COCO results file as ``Detections`` on ``gt``'s images (ids by ``vocli.coco.coco_image_ids``).

    The file's own ``[x, y, w, h]`` boxes are kept for the ``coco`` metric; ``boxes`` holds them
    as VOC corners (``vocli.boxes.coco_to_voc``) for the VOC metrics.
    """
    from vocli.boxes import coco_to_voc
    from vocli.coco import coco_image_ids, read_results

    index, xywh, scores, labels = read_results(path, classes, coco_image_ids(list(gt.image_ids)))
    return Detections(np.asarray(gt.image_ids, dtype=object)[index], coco_to_voc(xywh), scores, labels,
                      coco_boxes=xywh)


def write_plots(result: EvalResult, folder: Union[str, os.PathLike], max_points: int = 400) -> list[Path]:
    """``pr_curves.png`` (one panel per class with ground truth) and ``ap_per_class.png``."""
    from vocli.plotting import bar_chart, multi_line_grid

    folder = Path(folder).expanduser()
    panels = []
    for c in result.per_class:
        if c.num_gt == 0:
            continue
        step = max(1, len(c.recall) // max_points)
        rec = np.concatenate((c.recall[::step], c.recall[-1:]))
        prec = np.concatenate((c.precision[::step], c.precision[-1:]))
        panels.append((f"{c.name}  AP {c.ap:.3f}", {"precision": (rec.tolist(), prec.tolist())}))
    # The same 0..1 axes in every panel, so curves of different classes compare at a glance.
    curves = multi_line_grid(folder / "pr_curves.png", panels, xlabel="recall", cols=4, xlim=(0.0, 1.0),
                             ylim=(0.0, 1.0))
    scored = [c for c in result.per_class if c.num_gt > 0]
    bars = bar_chart(folder / "ap_per_class.png", [c.name for c in scored] + ["mAP"],
                     [c.ap for c in scored] + [result.map],
                     title=f"AP per class ({result.metric}, IoU > {result.iou_threshold:g}); mAP {result.map:.4f}",
                     ylabel="AP")
    return [curves, bars]

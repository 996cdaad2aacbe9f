"""Model loading and batched inference shared by ``evaluate`` and ``detect``.

Images are letterboxed to the network size, run in batches (the next batch is
decoded on a worker thread while the model runs), decoded, passed through
class-wise NMS and mapped back to original 0-based continuous pixels.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence, Union

import numpy as np

from vocli.errors import DarknetFormatError, ImageReadError, VocliError
from vocli.images import LetterboxInfo, letterbox, load_image, to_tensor_batch, unletterbox_boxes


@dataclass
class LoadedModel:
    """A ready ``Darknet`` model (eval mode, on its device) and what the file said about it."""

    model: object  # vocli.darknet.model.Darknet
    cfg: object     # vocli.darknet.cfg.DarknetCfg
    names: Optional[tuple[str, ...]]
    source: Path
    img_size: Optional[int] = None  # the input size the checkpoint was trained at, when it says


DEFAULT_IMG_SIZE = 416  # for weights that do not say what size they were trained at


@dataclass
class ImagePrediction:
    """Detections of one image. boxes: (n, 4) xyxy original 0-based pixels; scores, class_ids: (n,).

    ``image`` holds the decoded (H, W, 3) RGB pixels when the caller asked to keep them.
    """

    path: Path
    width: int
    height: int
    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    image: Optional[np.ndarray] = None


@dataclass
class SkippedImage:
    path: Path
    reason: str


def device_name(spec: Optional[str]) -> str:
    """``--device`` (``auto``, ``cpu``, ``cuda``, ``cuda:N``) -> the torch device string it means."""
    from vocli.yolo.setup import resolve_device

    return str(resolve_device(spec or "auto"))


def load_model(weights: Union[str, os.PathLike], cfg=None, device: str = "auto") -> LoadedModel:
    """Build ``Darknet`` from ``cfg`` (name, path, or the cfg stored in the file) and load ``weights``.

    ``weights``: darknet ``.weights`` (without ``cfg``: the shipped cfg its size fits, as
    ``convert-weights`` picks it), a converted ``.pt``/``.h5`` or a ``vocli train`` checkpoint
    (its input size in ``img_size``). A bare file name is also looked up where ``vocli fetch``
    keeps weights. Tensors that do not fit the cfg are an error here (a detector with a random
    head is no use), unlike when initialising training.
    """
    from converters.darknet_weights import cfg_for_weights, load_payload, load_weights
    from vocli.darknet.cfg import load_cfg, parse_cfg
    from vocli.darknet.model import Darknet
    from vocli.paths import find_weights_file

    path = find_weights_file(weights)
    if not path.is_file():
        raise VocliError(f"{path}: weights file not found",
                         hint="train one with `vocli train`, or `vocli fetch yolov3.weights`")
    state: Union[Path, dict] = path
    names, text, cfg_name, img_size = None, None, None, None
    if path.suffix.lower() != ".weights":  # converted .pt/.h5 or a train checkpoint: one reader
        payload = load_payload(path)
        names, text, cfg_name, state = payload.names, payload.cfg_text, payload.cfg_name, payload.state_dict
        img_size = payload.img_size
    if path.suffix.lower() == ".weights":
        model_cfg = cfg_for_weights(path, cfg)[0]
    elif cfg is not None:
        model_cfg = load_cfg(cfg)
    elif text is not None:
        model_cfg = parse_cfg(text, source=f"{path} (embedded cfg)", name=path.stem)
    elif cfg_name:
        model_cfg = load_cfg(cfg_name)
    else:
        raise DarknetFormatError(f"{path}: carries no cfg", hint="pass --cfg NAME|PATH, e.g. --cfg yolov3-voc")
    model = Darknet(model_cfg)
    report = load_weights(model, state)
    if report.skipped or report.missing:
        first = report.skipped[0] if report.skipped else (report.missing[0], "missing from the file")
        raise DarknetFormatError(
            f"{path}: {len(report.skipped)} tensors do not fit the cfg and {len(report.missing)} are missing "
            f"(first: {first[0]}: {first[1]})", hint="pass the --cfg the weights were made with")
    model.to(device_name(device)).eval()
    return LoadedModel(model=model, cfg=model_cfg, names=names, source=path, img_size=img_size)


def _prepare(path: Path, size: int, keep_image: bool):
    try:
        image = load_image(path)
    except ImageReadError as err:
        return SkippedImage(path, err.reason)
    boxed, info = letterbox(image, size)
    return path, boxed, info, image if keep_image else None


def _check_size(model, img_size: int) -> None:
    stride = max(int(h.stride) for h in model.heads)
    if img_size <= 0 or img_size % stride:
        raise VocliError(f"--img-size {img_size} is not a multiple of the model's stride {stride}",
                         hint=f"use e.g. {max(stride, round(img_size / stride) * stride)}")


def predict_images(model, image_paths: Sequence[Union[str, os.PathLike]], img_size: int = 416,
                   conf: float = 0.25, iou: float = 0.45, nms: str = "standard", batch_size: int = 8,
                   device: str = "cpu", max_det: int = 300, keep_images: bool = False,
                   progress: Optional[Callable[[int], None]] = None,
                   ) -> Iterator[Union[ImagePrediction, SkippedImage]]:
    """Run ``model`` over ``image_paths`` in order, yielding one prediction (or skip) per path.

    Unreadable images come out as ``SkippedImage``; the caller decides whether that is fatal.
    The model is put in eval mode for the run and restored to its previous mode afterwards.
    """
    import torch

    from vocli.darknet.decode import decode_outputs, non_max_suppression

    _check_size(model, img_size)
    if batch_size < 1:
        raise VocliError(f"batch size {batch_size} must be at least 1")
    paths = [Path(p) for p in image_paths]
    batches = [paths[i:i + batch_size] for i in range(0, len(paths), batch_size)]
    was_training = model.training
    model.eval()
    try:
        with ThreadPoolExecutor(max_workers=2) as pool, torch.inference_mode():
            pending = [pool.submit(_prepare, p, img_size, keep_images) for p in batches[0]] if batches else []
            for b in range(len(batches)):
                ready = [f.result() for f in pending]
                pending = ([pool.submit(_prepare, p, img_size, keep_images) for p in batches[b + 1]]
                           if b + 1 < len(batches) else [])
                good = [r for r in ready if not isinstance(r, SkippedImage)]
                dets = []
                if good:
                    x = to_tensor_batch([r[1] for r in good]).to(device)
                    decoded = decode_outputs(model(x), model.heads)
                    dets = non_max_suppression(decoded, conf_threshold=conf, iou_threshold=iou,
                                               method=nms, max_det=max_det)
                found = iter(zip(good, dets))
                for item in ready:
                    if isinstance(item, SkippedImage):
                        yield item
                        continue
                    (path, _, info, image), det = next(found)
                    yield _to_prediction(path, info, det.float().cpu().numpy(), image)
                if progress is not None:
                    progress(len(ready))
    finally:
        model.train(was_training)


def _to_prediction(path: Path, info: LetterboxInfo, det: np.ndarray, image) -> ImagePrediction:
    """det: (n, 6) x1, y1, x2, y2 (letterboxed pixels), score, class -> original pixels."""
    boxes = unletterbox_boxes(det[:, :4].astype(np.float64), info)
    # Boxes lying wholly in the padding collapse to zero area once clipped; they are not detections.
    real = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return ImagePrediction(path=path, width=info.orig_w, height=info.orig_h, boxes=boxes[real],
                           scores=det[real, 4].astype(np.float64), class_ids=det[real, 5].astype(np.int64),
                           image=image)

"""Export a Darknet model to ONNX (``vocli export-onnx``), checked in onnxruntime by the tests.

Three graph outputs, by option:

* raw (default): one output per ``[yolo]`` head, ``head<i>`` (B, A, H/stride, W/stride, 5 + C), exactly
  ``Darknet.forward`` (tx, ty, tw, th, objectness logit, class logits);
* ``decode``: ``boxes`` (B, N, 4) x1, y1, x2, y2 in input pixels and ``scores`` (B, N, C) =
  objectness x class probability, as ``vocli.darknet.decode`` computes them; NMS is left to the runtime;
* ``nms`` (implies ``decode``): ``detections`` (K, 7) = batch index, x1, y1, x2, y2, score, class id, from
  ONNX ``NonMaxSuppression`` per class (IoU above ``iou`` suppresses, scores above ``conf`` kept,
  at most ``max_det`` per class and image).

Batch, height and width are dynamic (height and width multiples of 32). The file's metadata
holds the class names, input size, anchors, strides, cfg name and output layout (JSON values).
The graph is traced by ``torch.onnx.export(..., dynamo=False)`` (the TorchScript exporter: no
onnxscript needed); ``onnx`` adds the metadata; both come with the ``[onnx]`` extra.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from vocli.errors import VocliError

ONNX_EXTRA_HINT = "install the extra: pip install 'vocli[onnx]'"
DEFAULT_OPSET = 17


class MissingExtraError(VocliError):
    """An optional dependency (an extra) is not installed."""


def require_onnx():
    """The ``onnx`` module, or one clear error naming the extra."""
    try:
        import onnx
    except ImportError:
        raise MissingExtraError("export-onnx needs the onnx package", hint=ONNX_EXTRA_HINT) from None
    return onnx


@dataclass
class OnnxExportResult:
    path: Path
    cfg: str
    outputs: list[str]
    input_size: list[int]  # traced (height, width)
    num_classes: int
    opset: int
    bytes: int
    metadata: dict = field(default_factory=dict)


def _nms_function():
    import torch

    from vocli.boxes import nms

    class OnnxNms(torch.autograd.Function):
        """ONNX ``NonMaxSuppression``: boxes (B, N, 4) xyxy, scores (B, C, N) -> (K, 3) int64 batch, class, box.

        The eager forward does the same per image and class with ``vocli.boxes.nms`` (used while tracing
        and as the reference in tests); the exported graph holds the ONNX operator.
        """

        @staticmethod
        def forward(ctx, boxes, scores, max_per_class: int, iou: float, conf: float):
            if torch.jit.is_tracing():  # the graph gets the ONNX operator: skip the work while tracing
                return torch.zeros((1, 3), dtype=torch.long)
            rows = []
            for b in range(boxes.shape[0]):
                for c in range(scores.shape[1]):
                    cand = (scores[b, c] > conf).nonzero().flatten()
                    kept = cand[nms(boxes[b, cand], scores[b, c, cand], iou)][:max_per_class]
                    rows.append(torch.stack([torch.full_like(kept, b), torch.full_like(kept, c), kept], 1))
            return torch.cat(rows) if rows else torch.zeros((0, 3), dtype=torch.long)

        @staticmethod
        def symbolic(g, boxes, scores, max_per_class: int, iou: float, conf: float):
            const = lambda v, dtype: g.op("Constant", value_t=torch.tensor([v], dtype=dtype))  # noqa: E731
            return g.op("NonMaxSuppression", boxes, scores, const(max_per_class, torch.long),
                        const(iou, torch.float32), const(conf, torch.float32), center_point_box_i=0)

    return OnnxNms


def export_module(model, decode: bool = False, nms: bool = False, conf: float = 0.005, iou: float = 0.45,
                  max_det: int = 300):
    """Wrap a ``Darknet`` so its forward returns the outputs described in the module docstring."""
    import torch

    from vocli.boxes import cxcywh_to_xyxy
    from vocli.darknet.decode import decode_outputs

    decode = decode or nms
    onnx_nms = _nms_function() if nms else None

    class Exported(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, images):
            outputs = self.model(images)
            if not decode:
                return tuple(outputs)
            decoded = decode_outputs(outputs, self.model.heads)            # (B, N, 5 + C)
            boxes = cxcywh_to_xyxy(decoded[..., :4])                       # (B, N, 4) input pixels
            scores = decoded[..., 4:5] * decoded[..., 5:]                  # (B, N, C)
            if onnx_nms is None:
                return boxes, scores
            sel = onnx_nms.apply(boxes, scores.transpose(1, 2).contiguous(), max_det, iou, conf)  # (K, 3)
            b, c, i = sel[:, 0], sel[:, 1], sel[:, 2]
            return torch.cat([b[:, None].to(boxes.dtype), boxes[b, i], scores[b, i, c][:, None],
                              c[:, None].to(boxes.dtype)], dim=1)

    return Exported().eval()


def output_names(num_heads: int, decode: bool, nms: bool) -> list[str]:
    if nms:
        return ["detections"]
    if decode:
        return ["boxes", "scores"]
    return [f"head{i}" for i in range(num_heads)]


def export_onnx(weights: str | os.PathLike, out: str | os.PathLike, cfg=None, img_size: Optional[int] = None,
                decode: bool = False, nms: bool = False, conf: float = 0.005, iou: float = 0.45,
                max_det: int = 300, names: Optional[Sequence[str]] = None,
                opset: int = DEFAULT_OPSET) -> OnnxExportResult:
    """Export ``weights`` (``.weights`` + cfg, ``.pt``, ``.h5`` or a train checkpoint) to ``out``.

    ``img_size``: the square size traced and recorded as ``input_size`` [height, width] (default:
    the cfg's); any multiple of 32 runs. ``names``: class names (default: the checkpoint's, else VOC's 20).
    """
    onnx = require_onnx()
    import torch

    decode = decode or nms
    from vocli.detect import class_names_for
    from vocli.paths import atomic_path
    from vocli.predict import load_model

    loaded = load_model(weights, cfg=cfg, device="cpu")
    model = loaded.model
    height, width = (int(img_size), int(img_size)) if img_size else tuple(int(v) for v in model.input_size)
    if min(height, width) <= 0 or height % 32 or width % 32:
        raise VocliError(f"input size {height}x{width} is not a positive multiple of 32", hint="e.g. --img-size 416")
    class_names = class_names_for(loaded.names, int(model.num_classes), names)
    outputs = output_names(len(model.heads), decode, nms)
    wrapped = export_module(model, decode=decode, nms=nms, conf=conf, iou=iou, max_det=max_det)
    dynamic = {"images": {0: "batch", 2: "height", 3: "width"}}
    if nms:
        dynamic["detections"] = {0: "detections"}
    elif decode:
        dynamic.update({"boxes": {0: "batch", 1: "boxes"}, "scores": {0: "batch", 1: "boxes"}})
    else:
        for i, head in enumerate(model.heads):
            dynamic[f"head{i}"] = {0: "batch", 2: f"height/{head.stride}", 3: f"width/{head.stride}"}
    cfg_name = loaded.cfg.name or Path(str(loaded.cfg.source)).stem
    metadata = {
        "names": json.dumps(list(class_names)),
        "input_size": json.dumps([height, width]),
        "anchors": json.dumps([head.anchors.tolist() for head in model.heads]),
        "strides": json.dumps([int(head.stride) for head in model.heads]),
        "cfg": cfg_name,
        "outputs": json.dumps(outputs),
        "layout": ("detections: (K, 7) batch, x1, y1, x2, y2, score, class" if nms else
                   "boxes: (B, N, 4) x1, y1, x2, y2 input pixels; scores: (B, N, C)" if decode else
                   "head<i>: (B, A, H/stride, W/stride, 5 + C) raw tx, ty, tw, th, obj, classes"),
        "input": "images: (B, 3, H, W) RGB in [0, 1], H and W multiples of 32 (letterboxed)",
        "producer": "vocli export-onnx",
    }
    out = Path(out).expanduser()
    example = torch.zeros(1, 3, height, width)
    with atomic_path(out, suffix=".onnx") as tmp, torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on constant folding and Python values
        torch.onnx.export(wrapped, (example,), str(tmp), dynamo=False, opset_version=opset,
                          input_names=["images"], output_names=outputs, dynamic_axes=dynamic)
        proto = onnx.load(str(tmp))
        for key, value in metadata.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(proto, str(tmp))
    return OnnxExportResult(path=out, cfg=cfg_name, outputs=outputs, input_size=[height, width],
                            num_classes=int(model.num_classes), opset=opset, bytes=out.stat().st_size,
                            metadata=metadata)

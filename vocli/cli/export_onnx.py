"""``vocli export-onnx``: a Darknet model to ONNX (thin layer over ``vocli.export_onnx``)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from vocli.cli.common import JSON_OPTION, emit_json, err_console


def export_onnx(
    weights: Path = typer.Argument(..., help="Model: .weights (with --cfg), .pt, .h5 or a train checkpoint."),
    out: Path = typer.Option(..., "--out", "-o", help="The .onnx file to write."),
    cfg: Optional[str] = typer.Option(None, "--cfg", help="Darknet cfg name or file (default: the one in the file)."),
    img_size: Optional[int] = typer.Option(None, "--img-size", help="Size traced and recorded as input_size "
                                                                    "(multiple of 32; default: the cfg's)."),
    decode: bool = typer.Option(False, "--decode", help="Output boxes (input pixels) and scores, not raw heads."),
    nms: bool = typer.Option(False, "--nms", help="Decode and include ONNX NonMaxSuppression; output "
                                                  "detections (K, 7): batch, x1, y1, x2, y2, score, class."),
    conf: float = typer.Option(0.005, "--conf", help="--nms: keep scores above this."),
    iou: float = typer.Option(0.45, "--iou", help="--nms: IoU above which a box is suppressed."),
    max_det: int = typer.Option(300, "--max-det", min=1, help="--nms: most detections per class and image."),
    names: Optional[Path] = typer.Option(None, "--names", help="Class list file (default: from the checkpoint, "
                                                               "else VOC)."),
    opset: int = typer.Option(17, "--opset", help="ONNX opset."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Export a Darknet model to ONNX: raw heads, or decoded boxes and scores (--decode), optionally with NMS.

    \b
    Batch and input size are dynamic (multiples of 32). Metadata: class names,
    input size, anchors, strides, cfg name. Needs the extra: pip install 'vocli\\[onnx]'.

    \b
    Example: vocli export-onnx runs/train/exp/best.pt -o best.onnx --decode
    Example: vocli export-onnx yolov3.weights --cfg yolov3 -o yolov3.onnx --decode --nms --conf 0.25
    """
    from vocli.datasets.voc import read_classes
    from vocli.export_onnx import export_onnx as run_export

    class_names = read_classes(names) if names is not None else None
    result = run_export(weights, out, cfg=cfg, img_size=img_size, decode=decode, nms=nms, conf=conf, iou=iou,
                        max_det=max_det, names=class_names, opset=opset)
    if json_out:
        emit_json(result)
        return
    err_console().print(f"{escape(str(result.path))}: {result.cfg}, {result.num_classes} classes, outputs "
                        f"{', '.join(result.outputs)}, traced at {result.input_size[0]}x{result.input_size[1]}, opset {result.opset}, "
                        f"{result.bytes / 1e6:.1f} MB")


def register(app: typer.Typer) -> None:
    app.command("export-onnx")(export_onnx)

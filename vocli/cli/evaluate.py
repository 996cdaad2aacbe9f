"""``vocli evaluate``: VOC mAP of a model or of detection files (thin layer over ``vocli.evaluate``)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import typer

from vocli.cli.common import (JSON_OPTION, ROOT_OPTION, SETS_OPTION, SKIP_INVALID_OPTION, Col, emit_json,
                              err_console, exit_if_invalid, print_table, progress_bar, render_invalid)

METRIC_NAMES = {
    "voc07": "VOC2007 11-point interpolated AP",
    "voc12": "VOC2010+ area under the precision envelope",
    "coco": "pycocotools COCOeval: AP50 per class, AP@[.50:.95], AP75, small/medium/large",
}


def evaluate(
    weights: Optional[Path] = typer.Option(None, "--weights", "-w", help="Model to score: .pt (train or converted) or .weights."),
    cfg: Optional[str] = typer.Option(None, "--cfg", help="Darknet cfg name or file (default: the one in the checkpoint)."),
    data: Optional[Path] = typer.Option(None, "--data", help="Darknet .data file; its valid list is scored."),
    split: str = typer.Option("valid", "--split", help="With --data: valid (= test) or train list."),
    detections: Optional[Path] = typer.Option(
        None, "--detections", "-d", help="comp4_det_test_<class>.txt files (a folder or one file), vocli .jsonl, "
                                         "or a COCO results .json (ids as `vocli convert coco` gives them)."),
    root: Optional[Path] = ROOT_OPTION,
    sets: Optional[str] = SETS_OPTION,
    classes: Optional[Path] = typer.Option(None, "--classes", help="Class list file (.names); default VOC's 20."),
    metric: Optional[str] = typer.Option(None, "--metric", help="voc07, voc12 or coco (default: voc07 for 2007/test, else voc12)."),
    iou_threshold: float = typer.Option(0.5, "--iou-threshold", help="A match needs IoU strictly above this."),
    img_size: Optional[int] = typer.Option(
        None, "--img-size", help="Network input size, a multiple of 32 (default: the size a vocli checkpoint was "
                                 "trained at, else 416).", show_default=False),
    conf: float = typer.Option(0.005, "--conf", help="Detections scoring at most this are dropped."),
    iou: float = typer.Option(0.45, "--iou", help="NMS IoU threshold."),
    nms: str = typer.Option("standard", "--nms", help="standard or diou."),
    batch_size: int = typer.Option(16, "--batch-size", help="Images per forward pass."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA when present, else CPU), cpu, cuda or cuda:N."),
    plots: Optional[Path] = typer.Option(None, "--plots", help="Folder for pr_curves.png and ap_per_class.png."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Processes reading VOC XML (default: all cores)."),
    skip_invalid: bool = SKIP_INVALID_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Score detections the way the PASCAL VOC devkit does, and say which AP it is.

    \b
    Per class, detections are sorted by score with a stable sort (ties keep
    input order); each takes the ground truth of highest IoU in its image (IoU
    with +1 inclusive pixel widths): TP when IoU > 0.5 and that object is not
    yet matched, ignored when it is difficult, else FP (duplicates too).
    Classes without ground truth get AP NaN and are left out of the mAP.
    --metric coco is pycocotools' COCOeval on the boxes converted as `vocli
    convert coco` writes them (x = xmin - 1, w = xmax - xmin + 1; difficult =
    iscrowd), equal to it to 1e-9; --iou-threshold does not apply to it.

    \b
    Example: vocli evaluate --detections results/ --root ~/data --sets 2007/test
    Example: vocli evaluate --weights runs/train/exp/best.pt --data voc.data --plots eval/
    """
    from vocli.datasets.voc import read_classes
    from vocli.evaluate import evaluate as run_evaluate

    if metric is not None and metric not in METRIC_NAMES:
        raise typer.BadParameter(f"{metric!r}; use voc07, voc12 or coco", param_hint="--metric")
    if (weights is None) == (detections is None):
        raise typer.BadParameter("give either --weights or --detections", param_hint="--weights/--detections")
    names = read_classes(classes) if classes is not None else None
    with progress_bar("evaluate", None, enabled=not json_out, unit="images") as advance:
        result = run_evaluate(weights=weights, data=data, detections=detections, root=root, sets=sets, cfg=cfg,
                              split=split, classes=names, img_size=img_size, conf=conf, iou=iou, metric=metric,
                              iou_threshold=iou_threshold, plots=plots, batch_size=batch_size, device=device,
                              nms=nms, workers=workers, progress=advance)
    if json_out:
        emit_json(result.summary())
    else:
        render(result, plots)
    render_invalid(result.invalid, skip_invalid)
    exit_if_invalid(result.invalid, skip_invalid)


def _fmt(value) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"


def render(result, plots: Optional[Path] = None) -> None:
    """Per-class table and the mAP line on stderr."""
    console = err_console()
    coco = result.metric == "coco"
    rule = "IoU >= 0.5" if coco else f"IoU > {result.iou_threshold:g}"
    columns = [Col("class", "key"), Col("AP", "num")] + ([Col("AP@\n[.5:.95]", "num")] if coco else []) + [
        Col("gt", "num"), Col("diffi-\ncult", "num"), Col("detec-\ntions", "num"), Col("recall", "num")]
    rows = []
    for c in result.per_class:
        # No detections of a class with ground truth: recall 0, not "n/a" (that is for no ground truth).
        recall = (float(c.recall[-1]) if len(c.recall) else 0.0) if c.num_gt else float("nan")
        rows.append([c.name, _fmt(c.ap)] + ([_fmt(c.ap_50_95)] if coco else []) +
                    [c.num_gt, c.num_difficult, c.num_det, _fmt(recall)])
    print_table(f"AP per class: {result.metric} ({METRIC_NAMES[result.metric]}), {rule}", columns, rows)
    console.print(f"{result.source}; {result.num_images} images, {result.num_detections} detections; "
                  f"scores sorted {result.sort}", soft_wrap=True)
    if result.excluded:
        console.print(f"[yellow]no ground truth, left out of the mAP:[/] {', '.join(result.excluded)}")
    if coco and result.coco_stats:
        stats = result.coco_stats
        console.print("  ".join(f"{name} {_fmt(value if value > -1 else None)}" for name, value in stats.items()))
        console.print(f"[bold]AP@[.5:.95] = {_fmt(result.map_50_95)}   AP50 = {_fmt(result.map)}[/]")
    else:
        console.print(f"[bold]mAP ({result.metric}) = {_fmt(result.map)}[/]")
    if plots is not None:
        console.print(f"plots: {plots / 'pr_curves.png'}, {plots / 'ap_per_class.png'}")


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate)

"""``vocli detect``: run a model on images and save what it sees (thin layer over ``vocli.detect``)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from vocli.cli.common import JSON_OPTION, emit_json, err_console, progress_bar


def detect(
    sources: List[str] = typer.Argument(..., help="Images, folders, globs (quote them) or list files."),
    weights: Path = typer.Option(..., "--weights", "-w", help="Model: .pt (train or converted) or .weights."),
    cfg: Optional[str] = typer.Option(None, "--cfg", help="Darknet cfg name or file (default: the one in the checkpoint)."),
    conf: float = typer.Option(0.25, "--conf", help="Keep detections scoring above this."),
    iou: float = typer.Option(0.45, "--iou", help="NMS IoU threshold."),
    nms: str = typer.Option("standard", "--nms", help="standard or diou (DIoU-NMS)."),
    img_size: Optional[int] = typer.Option(
        None, "--img-size", help="Network input size, a multiple of 32 (default: the size a vocli checkpoint was "
                                 "trained at, else 416).", show_default=False),
    classes: Optional[str] = typer.Option(None, "--classes", help="Comma-separated class names to keep."),
    names: Optional[Path] = typer.Option(None, "--names", help="Class list file (default: from the checkpoint, else VOC)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (default runs/detect/exp, exp2, ...).",
                                       show_default=False),
    exist_ok: bool = typer.Option(False, "--exist-ok", "--overwrite",
                                  help="Write into an --out folder that already holds files (never over an input)."),
    save_txt: bool = typer.Option(False, "--save-txt", help="Write labels/<image>.txt YOLO lines."),
    save_xml: bool = typer.Option(False, "--save-xml", help="Write Annotations/<image>.xml VOC XML."),
    save_json: bool = typer.Option(False, "--save-json", help="Write detections.jsonl (one line per image), "
                                                              "or detections.json with --json-format coco."),
    json_format: str = typer.Option("vocli", "--json-format", help="--save-json format: vocli (JSON lines, VOC "
                                                                   "pixels) or coco (results: image_id, "
                                                                   "category_id, bbox, score)."),
    no_draw: bool = typer.Option(False, "--no-draw", help="Do not write annotated images."),
    batch_size: int = typer.Option(8, "--batch-size", help="Images per forward pass."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA when present, else CPU), cpu, cuda or cuda:N."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Detect objects in images; write annotated images, labels, VOC XML or JSON lines.

    \b
    Images are letterboxed to --img-size, run in batches, decoded, passed
    through class-wise NMS and mapped back to original pixels. Unreadable
    files are reported by name and skipped.

    \b
    Example: vocli detect photos/ --weights runs/train/exp/best.pt --save-xml
    Example: vocli detect 'data/*.jpg' --weights yolov3.weights --cfg yolov3 --names coco.names --nms diou
    """
    from vocli.datasets.voc import read_classes
    from vocli.detect import detect as run_detect

    if nms not in ("standard", "diou"):
        raise typer.BadParameter(f"{nms!r}; use standard or diou", param_hint="--nms")
    keep = [c.strip() for c in classes.split(",") if c.strip()] if classes else None
    class_names = read_classes(names) if names is not None else None
    with progress_bar("detect", None, enabled=not json_out, unit="images") as advance:
        result = run_detect(sources, weights, cfg=cfg, conf=conf, iou=iou, nms=nms, img_size=img_size, out=out,
                            save_txt=save_txt, save_xml=save_xml, save_json=save_json, json_format=json_format, draw=not no_draw,
                            device=device, classes=keep, names=class_names, batch_size=batch_size,
                            exist_ok=exist_ok, progress=advance)
    if json_out:
        emit_json(result)
    else:
        render(result)


def render(result) -> None:
    from rich.markup import escape
    from rich.table import Table

    console = err_console()
    for path, reason in result.skipped:
        console.print(f"[yellow]skipped[/] {escape(path)}: {escape(reason)}")
    table = Table(title=f"detections in {result.images} images", title_justify="left")
    table.add_column("class")
    table.add_column("count", justify="right")
    for name, count in sorted(result.counts.items(), key=lambda kv: -kv[1]):
        if count:
            table.add_row(name, str(count))
    table.add_row("[bold]total[/]", f"[bold]{result.num_detections}[/]")
    console.print(table)
    wrote = ", ".join(f"{n} {k}" for k, n in result.written.items() if n)
    json_part = f", {result.json_path.name}" if result.json_path else ""
    console.print(f"{result.images_per_second:.1f} images/s at {result.img_size} px; wrote {wrote or 'nothing'}"
                  f"{json_part} under {result.out}", soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("detect")(detect)

"""``vocli anchors``: cluster box shapes into YOLO anchors (thin layer over ``vocli.anchors``)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from vocli.cli.common import (JSON_OPTION, ROOT_OPTION, SETS_OPTION, SKIP_INVALID_OPTION, emit_json, err_console,
                              exit_if_invalid, progress_bar, render_invalid)


def anchors(
    k: int = typer.Option(9, "--k", help="Number of anchors."),
    root: Optional[Path] = ROOT_OPTION,
    sets: Optional[str] = SETS_OPTION,
    labels: Optional[Path] = typer.Option(
        None, "--labels", help="Darknet list file (or .data) with YOLO labels, or a `convert ssd` .h5 file, instead of VOC XML."),
    img_size: int = typer.Option(416, "--img-size", help="Network input size; anchors are in pixels at this size."),
    include_difficult: bool = typer.Option(False, "--include-difficult", help="Also cluster boxes marked difficult."),
    restarts: int = typer.Option(10, "--restarts", help="k-means++ restarts; the best mean IoU wins."),
    iters: int = typer.Option(300, "--iters", help="Most Lloyd iterations per run (stops earlier when stable)."),
    evolve: int = typer.Option(0, "--evolve", help="Generations of mutations kept only when the mean IoU rises."),
    seed: int = typer.Option(0, "--seed", help="Random seed; same seed and data give the same anchors."),
    write_cfg: Optional[Path] = typer.Option(
        None, "--write-cfg", help="Rewrite anchors= and num= of every [yolo] section of this cfg in place "
                                  "(with --cfg: write this new file from that cfg)."),
    cfg: Optional[str] = typer.Option(
        None, "--cfg", help="With --write-cfg FILE: start FILE from this shipped cfg (`vocli models`) or cfg path."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write a PNG scatter of box shapes and anchors."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Processes reading VOC XML (default: all cores)."),
    skip_invalid: bool = SKIP_INVALID_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Cluster box shapes into K anchors with IoU k-means (seeded, reproducible).

    \b
    Distance 1 - IoU of shapes at a common centre, k-means++ seeding, median
    updates, best of --restarts. Prints the anchors in cfg syntax, the masks for
    the three scales, and mean IoU / best possible recall against the stock
    YOLOv3 anchors on the same boxes.

    \b
    Example: vocli anchors --k 9 --sets 2007/trainval,2012/trainval
    Example: vocli anchors --k 9 --labels train.txt --write-cfg yolov3-voc.cfg --plot anchors.png
    Example: vocli anchors --sets 2007/trainval --cfg yolov3-voc --write-cfg my-yolov3-voc.cfg
    """
    from vocli.anchors import compute_anchors

    if labels is not None and sets is not None:
        raise typer.BadParameter("use either --sets (VOC XML) or --labels, not both", param_hint="--labels")
    with progress_bar("anchors", None, enabled=not json_out, unit="files") as advance:
        result = compute_anchors(
            k=k, root=root, sets=sets, labels=labels, img_size=img_size, include_difficult=include_difficult,
            restarts=restarts, iters=iters, evolve=evolve, seed=seed, write_cfg=write_cfg, plot=plot,
            progress=advance, workers=workers, cfg=cfg,
        )
    if json_out:
        emit_json(result)
    else:
        render(result)
    render_invalid(result.invalid, skip_invalid)
    exit_if_invalid(result.invalid, skip_invalid)


def render(result) -> None:
    """Rich tables on stderr."""
    from rich.table import Table

    console = err_console()
    dropped = f", {result.dropped_zero} zero-size dropped" if result.dropped_zero else ""
    missing = f", {result.missing_labels} label files missing" if result.missing_labels else ""
    console.print(f"{result.boxes} boxes ({result.distinct_shapes} distinct shapes) from {result.images} images "
                  f"in {result.source}{dropped}{missing}")
    evolve = f", {result.evolve} evolve generations" if result.evolve else ""
    console.print(f"seed {result.seed}, best of {result.restarts} restarts (restart {result.best_restart}), "
                  f"Lloyd refinement on all boxes: {result.iterations} iteration(s){evolve}")
    table = Table(title=f"{result.k} anchors at {result.img_size} px", title_justify="left")
    for col in ("#", "w", "h", "stride"):
        table.add_column(col, justify="right")
    # Masks are in cfg order: the first [yolo] layer is the coarsest (stride 32).
    stride_of = {i: 32 >> s for s, mask in enumerate(result.masks) for i in mask}
    for i, (w, h) in enumerate(result.anchors):
        table.add_row(str(i), str(w), str(h), str(stride_of.get(i, "-")))
    console.print(table)
    metrics = Table(title="fit on these boxes", title_justify="left")
    metrics.add_column("metric")
    metrics.add_column("vocli", justify="right")
    metrics.add_column("YOLOv3 stock", justify="right")
    for label, key, fmt in (("mean IoU to best anchor", "mean_iou", "{:.4f}"),
                            ("best possible recall (4x ratio)", "best_possible_recall", "{:.4f}"),
                            ("anchors within 4x per box", "anchors_above_threshold", "{:.2f}")):
        metrics.add_row(label, fmt.format(getattr(result.metrics, key)), fmt.format(getattr(result.stock_metrics, key)))
    console.print(metrics)
    console.print(f"anchors = {result.cfg_anchors}", soft_wrap=True)
    console.print("masks (cfg order, coarsest first): " + " / ".join(",".join(map(str, m)) for m in result.masks))
    if result.cfg_written:
        console.print(f"wrote anchors into {result.cfg_sections} \\[yolo] sections of {result.cfg_written}")
    if result.plot:
        console.print(f"wrote {result.plot}")


def register(app: typer.Typer) -> None:
    app.command(name="anchors")(anchors)

"""`vocli convert-weights`, `vocli export-weights`, `vocli models`: Darknet weights and shipped cfgs."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple

import typer

from vocli.cli.common import JSON_OPTION, OVERWRITE_OPTION, Col, emit_json, err_console, print_table, progress_bar


def register(app: typer.Typer) -> None:
    app.command("convert-weights")(convert_weights_cmd)
    app.command("export-weights")(export_weights_cmd)
    app.command("models")(models_cmd)


def convert_weights_cmd(
    src: Path = typer.Argument(..., help="Darknet .weights file (or a partial one such as darknet53.conv.74)."),
    cfg: Optional[str] = typer.Option(None, "--cfg", help="Shipped cfg name or cfg path (default: the shipped cfg matching the file size)."),
    out: Optional[Path] = typer.Option(None, "-o", "--out", help="Output .pt or .h5 (default: beside SRC, .pt)."),
    cutoff: Optional[int] = typer.Option(None, "--cutoff", min=1, help="Read only the first N layers (default: N from a .conv.N name)."),
    allow_trailing: bool = typer.Option(False, "--allow-trailing", help="Accept and keep bytes after the last layer."),
    overwrite: bool = OVERWRITE_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Convert Darknet .weights to a PyTorch state dict (.pt) or HDF5 (.h5), checking every size first.

    \b
    Example: vocli convert-weights yolov3.weights
    Example: vocli convert-weights darknet53.conv.74 --cfg yolov3-voc -o backbone.pt
    Example: vocli convert-weights yolov3-tiny.weights -o tiny.h5 --json
    """
    from converters.darknet_weights import convert_weights

    size = src.stat().st_size if src.is_file() else None
    with progress_bar("converting", size, enabled=not json_out, unit="bytes") as advance:
        report = convert_weights(src, cfg=cfg, out=out, cutoff=cutoff, allow_trailing=allow_trailing,
                                 overwrite=overwrite, progress=advance)
    if json_out:
        emit_json(report)
        return
    picked = " (picked by file size)" if report.cfg_auto else ""
    part = f", first {report.cutoff} layers" if report.cutoff is not None else ""
    err_console().print(
        f"[green]wrote[/] {report.out} ({report.bytes_out:,} bytes): {report.tensors} tensors, {report.floats:,} floats "
        f"from {report.src.name} (header {'.'.join(map(str, report.header))}, seen {report.seen:,}); "
        f"cfg {report.cfg}{picked}, {report.num_classes} classes{part}")


def export_weights_cmd(
    src: Path = typer.Argument(..., help="Converted .pt/.h5, or a `vocli train` checkpoint."),
    out: Path = typer.Option(..., "-o", "--out", help="Darknet .weights file to write."),
    cfg: Optional[str] = typer.Option(None, "--cfg", help="Cfg name or path (default: the cfg stored in SRC)."),
    overwrite: bool = OVERWRITE_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Write a Darknet .weights file from a converted .pt/.h5 or a training checkpoint.

    \b
    Converting a .weights file and exporting it again gives the same bytes, header included.
    Example: vocli export-weights yolov3.pt -o yolov3.weights
    Example: vocli export-weights runs/exp/best.pt -o voc.weights
    """
    from converters.darknet_weights import export_weights

    with progress_bar("exporting", None, enabled=not json_out, unit="bytes") as advance:
        report = export_weights(src, out, cfg=cfg, overwrite=overwrite, progress=advance)
    if json_out:
        emit_json(report)
        return
    err_console().print(f"[green]wrote[/] {report.out} ({report.bytes_out:,} bytes, {report.floats:,} floats, "
                        f"header {'.'.join(map(str, report.header))}, seen {report.seen:,}) with cfg {report.cfg}")


def models_cmd(
    img_size: int = typer.Option(416, "--img-size", min=32, help="Input size for the GFLOPs column."),
    export: Optional[Tuple[str, Path]] = typer.Option(
        None, "--export", metavar="NAME FILE",
        help="Copy the shipped cfg NAME to FILE, to edit or to give `vocli anchors --write-cfg`."),
    overwrite: bool = OVERWRITE_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """List the shipped model cfgs: classes, layers, parameters, GFLOPs, .weights size and where each cfg is.

    \b
    Example: vocli models
    Example: vocli models --img-size 608 --json
    Example: vocli models --export yolov3-voc my-yolov3-voc.cfg
    """
    if export is not None:
        from vocli.darknet.cfg import export_cfg, shipped_cfg_path

        name, dest = export
        shipped_cfg_path(name)  # a shipped name, or an error listing them
        written = export_cfg(name, dest, overwrite=overwrite)
        if json_out:
            emit_json({"name": name, "cfg": str(written)})
        else:
            err_console().print(f"[green]wrote[/] {written} (a copy of the shipped {name}.cfg)", soft_wrap=True)
        return
    from vocli.darknet.summary import models

    infos = models(img_size)
    if json_out:
        emit_json(infos)
        return
    print_table(f"shipped cfgs (GFLOPs at {img_size}x{img_size})",
                [Col("name", "key"), Col("classes", "num"), Col("layers", "num"), Col("params", "num"),
                 Col("GFLOPs", "num"), Col(".weights bytes", "num")],
                [(i.name, i.classes, i.layers, f"{i.params:,}", f"{i.gflops:.2f}", f"{i.weights_bytes:,}")
                 for i in infos])
    folder = Path(infos[0].cfg_path).parent if infos else None
    if folder is not None:
        err_console().print(f"cfg files in {folder}; copy one with `vocli models --export NAME FILE`",
                            soft_wrap=True, highlight=False)

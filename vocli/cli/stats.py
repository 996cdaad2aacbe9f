"""``vocli stats``: per-split counts, distributions and anomalies of a VOC-layout dataset."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from vocli.cli.common import (JSON_OPTION, ROOT_OPTION, emit_json, err_console, print_missing_images,
                              progress_bar, resolve_root)

MAX_LISTED = 20


def stats(
    root: Optional[Path] = ROOT_OPTION,
    sets: Optional[str] = typer.Option(
        None, "--sets", help="Comma-separated <year>/<split> sets (default: every split list found)."),
    classes: Optional[Path] = typer.Option(
        None, "--classes", exists=True, dir_okay=False,
        help="Class-list file, one name per line (default: VOC's 20 or the shapes classes when every name "
             "fits, else the names found)."),
    plots: Optional[Path] = typer.Option(
        None, "--plots", file_okay=False, help="Write class_histogram.png and box_shapes.png into this folder."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Processes reading VOC XML (default: all cores)."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Count images, objects and classes per split; show size distributions; flag anomalies.

    \b
    Per split: images, objects, objects per class (difficult / truncated),
    image sizes, box width / height / aspect-ratio percentiles, boxes per
    image. Anomalies (reported, never fatal): missing or invalid annotation
    files, boxes outside the image or inverted, zero-size and duplicate boxes,
    images without objects, unknown classes.

    \b
    Example: vocli stats --root ~/data --sets 2007/trainval,2007/test
    Example: vocli stats --root shapes-data --plots stats-plots --json
    """
    from vocli.datasets.voc import read_classes
    from vocli.stats import dataset_stats

    class_names = read_classes(classes) if classes is not None else None
    with progress_bar("reading annotations", None, enabled=not json_out, unit="files") as advance:
        result = dataset_stats(resolve_root(root), sets=sets, classes=class_names, plots=plots, progress=advance,
                               workers=workers)
    if json_out:
        emit_json(result)
    else:
        render(result)


def _num(value: float, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if float(value).is_integer():
        return f"{int(value)}"
    return f"{value:.{digits}g}"


def render(result) -> None:
    """Rich tables on stderr, sized to fit 80 columns."""
    from rich import box
    from rich.table import Table

    console = err_console()
    total = result.total
    console.print(f"{escape(str(result.root))}: classes = {result.classes_source} ({len(result.classes)})")

    splits = Table(title="splits", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False,
                   collapse_padding=True)
    splits.add_column("split", no_wrap=True)
    for col in ("images", "objects", "diff.", "trunc.", "box/img", "no jpg", "anomalies"):
        splits.add_column(col, justify="right", no_wrap=True)
    for s in result.splits + [total]:
        splits.add_row(s.name, str(s.images), str(s.objects), str(s.difficult), str(s.truncated),
                       _num(s.boxes_per_image.mean), str(s.missing_images), str(sum(s.anomaly_counts.values())),
                       style="bold" if s is total else None, end_section=s is result.splits[-1])
    console.print(splits)
    common = ", ".join(f"{w}x{h} ({n})" for w, h, n in total.image_sizes["most_common"][:3])
    console.print(f"image sizes: {total.image_sizes['distinct']} distinct; most common {common}")

    # Per-split columns only while the table stays readable; --json always has them.
    shown = result.splits if len(result.splits) <= 3 else []
    per_class = Table(title="objects per class", title_justify="left", box=box.SIMPLE_HEAD)
    per_class.add_column("class", no_wrap=True)
    for col in ("all", "diff.", "trunc.", "images"):
        per_class.add_column(col, justify="right")
    for s in shown:
        per_class.add_column(s.name, justify="right", no_wrap=True)
    by_split = [{c.name: c.objects for c in s.per_class} for s in shown]
    for c in total.per_class:
        per_class.add_row(c.name, str(c.objects), str(c.difficult), str(c.truncated), str(c.images),
                          *(str(counts.get(c.name, 0)) for counts in by_split))
    console.print(per_class)

    dist = Table(title="distributions (all splits)", title_justify="left", box=box.SIMPLE_HEAD)
    dist.add_column("quantity", no_wrap=True)
    keys = ("min", "p5", "p25", "median", "p75", "p95", "max")
    for col in keys:
        dist.add_column(col, justify="right")
    for label, summary in (("box width px", total.box_width), ("box height px", total.box_height),
                           ("aspect w/h", total.aspect), ("sqrt area share", total.relative_size),
                           ("boxes/image", total.boxes_per_image),
                           ("image width", total.image_sizes["width"]), ("image height", total.image_sizes["height"])):
        dist.add_row(label, *(_num(getattr(summary, k)) for k in keys))
    console.print(dist)

    anomalies = total.anomalies
    print_missing_images(total.missing_images, result.missing_image_files)
    if anomalies:
        counts = ", ".join(f"{k}: {n}" for k, n in total.anomaly_counts.items())
        console.print(f"[yellow]{len(anomalies)} anomalies[/] ({counts})")
        for a in anomalies[:MAX_LISTED]:
            console.print(f"  {a.kind}: {escape(a.file)}: {escape(a.detail)}", soft_wrap=True)
        if len(anomalies) > MAX_LISTED:
            console.print(f"  ... and {len(anomalies) - MAX_LISTED} more (--json lists all)")
    elif not total.missing_images:
        console.print("[green]no anomalies[/]")
    else:
        console.print("no annotation anomalies")
    for path in result.plots:
        console.print(f"wrote {escape(str(path))}")


def register(app: typer.Typer) -> None:
    app.command(name="stats")(stats)

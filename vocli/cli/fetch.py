"""``vocli fetch``, ``vocli verify``, ``vocli datasets``: thin layer over ``vocli.fetch``."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator, List, Optional

import typer
from rich.markup import escape

from vocli.cli.common import JSON_OPTION, ROOT_OPTION, Col, emit_json, err_console, print_table


def register(app: typer.Typer) -> None:
    app.command("fetch")(fetch)
    app.command("verify")(verify)
    app.command("datasets")(datasets)


def _size(n: Optional[int]) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return str(n)


@contextlib.contextmanager
def _progress(enabled: bool) -> Iterator:
    """A progress callback: byte bars (size, speed, ETA) on a terminal; retry/mirror notes on stderr."""
    console = err_console()
    def worth_noting(event) -> bool:
        # Retries and locks always; a mirror only when it failed (the successful one is in the table).
        if event.stage not in ("retry", "mirror", "lock") or not event.message:
            return False
        return event.stage != "mirror" or "failed" in event.message

    if not enabled:
        yield None
        return
    if not console.is_terminal:
        def note_only(event) -> None:
            if worth_noting(event):
                console.print(f"[dim]{escape(event.label)}: {escape(event.message)}[/]", soft_wrap=True)
        yield note_only
        return
    from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn,
                               TransferSpeedColumn)

    columns = [TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
               TimeRemainingColumn()]
    tasks: dict = {}
    with Progress(*columns, console=console, transient=True) as bars:
        def on_event(event) -> None:
            if event.stage in ("retry", "mirror", "lock"):
                if worth_noting(event):
                    bars.console.print(f"[dim]{escape(event.label)}: {escape(event.message)}[/]", soft_wrap=True)
                return
            key = (event.stage, event.label)
            if key not in tasks:
                verb = {"download": "fetch", "hash": "check", "extract": "extract", "generate": "generate"}.get(event.stage, event.stage)
                tasks[key] = bars.add_task(f"{verb} {event.label}", total=event.total)
            bars.update(tasks[key], completed=event.done, total=event.total)
        yield on_event


def fetch(
    names: Optional[List[str]] = typer.Argument(None, help="Names (see `vocli datasets`), URLs, or paths of tars you have."),
    root: Optional[Path] = ROOT_OPTION,
    mirror: Optional[List[str]] = typer.Option(None, "--mirror", help="Base URL holding the files; repeatable; tried before the built-in mirrors (also $VOCLI_MIRRORS)."),
    md5: Optional[str] = typer.Option(None, "--md5", help="Expected md5 of the one file fetched (needed for unknown URLs unless --sha256)."),
    sha256: Optional[str] = typer.Option(None, "--sha256", help="Expected sha256 of the one file fetched."),
    tar: Optional[Path] = typer.Option(None, "--tar", help="Import a tar you already have (offline machines, shared drives); checked like a download."),
    force: bool = typer.Option(False, "--force", help="Fetch and extract again even if present and verified."),
    extract: bool = typer.Option(True, "--extract/--no-extract", help="Extract dataset tars under --root."),
    keep_tar: bool = typer.Option(True, "--keep-tar/--delete-tar", help="Keep the tar after extraction."),
    images: int = typer.Option(1000, "--images", help="shapes: number of images."),
    size: int = typer.Option(256, "--size", help="shapes: image side in pixels."),
    seed: int = typer.Option(0, "--seed", help="shapes: random seed (same seed, same bytes)."),
    retries: int = typer.Option(5, "--retries", help="Tries per mirror without progress before moving on."),
    timeout: float = typer.Option(60.0, "--timeout", help="Read timeout in seconds."),
    list_: bool = typer.Option(False, "--list", help="List known datasets and what is present (same as `vocli datasets`)."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Download, verify and extract VOC (or weights), resuming and switching mirrors as needed.

    \b
    Names: voc2007, voc2007-test, voc2012, voc0712 (all three), shapes
    (generated locally, packed and verified like a download), yolov3.weights,
    yolov3-tiny.weights, darknet53.conv.74 (kept under $VOCLI_HOME/weights).
    Tars extract under --root (default $VOCLI_HOME/data) as VOCdevkit/VOC<year>.

    \b
    Example: vocli fetch shapes --images 200 --size 128
    Example: vocli fetch voc0712 --mirror http://mirror.example/voc/
    Example: vocli fetch voc2007 --tar /mnt/shared/VOCtrainval_06-Nov-2007.tar
    Example: vocli fetch https://host/my.tar --md5 0123456789abcdef0123456789abcdef
    """
    if list_:
        datasets(root=root, json_out=json_out)
        return
    from vocli.datasets.download import DownloadConfig
    from vocli.fetch import fetch as fetch_files

    config = DownloadConfig(read_timeout=timeout, retries=retries)
    with _progress(enabled=not json_out) as progress:
        result = fetch_files(names or [], root=root, mirrors=mirror or (), md5=md5, sha256=sha256, tar=tar,
                             force=force, extract=extract, keep_tar=keep_tar, progress=progress,
                             images=images, size=size, seed=seed, config=config)
    if json_out:
        emit_json(result)
        return
    rows = []
    for item in result.items:
        for f in item.files:
            if f.skipped:
                status = "already here, verified" if not f.extracted else "already extracted"
            else:
                status = "downloaded" if f.source and not f.source.startswith("file:") else "imported"
                if f.source and f.source.startswith("generated"):
                    status = "generated"
                if f.resumed_from:
                    status += f" (resumed at {_size(f.resumed_from)})"
                if len(f.attempts) > 1:
                    status += f" via mirror {len(f.attempts)}"
            where = item.tree if (f.extracted and item.tree) else f.path
            rows.append((item.name, f.filename, _size(f.size), status, where))
    print_table("fetched", [Col("name", "key"), Col("file", "key"), Col("size", "num"), Col("status"),
                            Col("where", "path")], rows, root=result.root, root_label="into")
    for item in result.items:
        if item.replaced:
            err_console().print(f"[yellow]note:[/] {escape(item.replaced)}", soft_wrap=True)
        if item.splits:
            err_console().print(f"{item.name}: " + ", ".join(f"{k} {v}" for k, v in item.splits.items()),
                                soft_wrap=True)


def verify(
    names: Optional[List[str]] = typer.Argument(None, help="Names, tar paths or VOCdevkit folders (default: all fetched)."),
    root: Optional[Path] = ROOT_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Re-check tar checksums and extracted trees (every listed image has its XML and JPEG).

    \b
    Exits 1 naming what is missing or corrupt.

    \b
    Example: vocli verify voc2007 voc2007-test
    Example: vocli verify ~/Downloads/VOCtrainval_11-May-2012.tar
    """
    from vocli.errors import DatasetNotFoundError
    from vocli.fetch import verify as verify_files

    with _progress(enabled=not json_out) as progress:
        result = verify_files(names or [], root=root, progress=progress)
    if json_out:
        emit_json(result)
    else:
        rows, styles = [], []
        for item in result.items:
            tar_cell = item.tar_status or "-"
            for i, split in enumerate(item.splits or [None]):
                cells = ["-"] * 5 if split is None else [
                    split.set, split.listed, "-" if split.expected is None else split.expected,
                    split.missing_annotations, split.missing_images]
                rows.append([item.name if i == 0 else "", tar_cell if i == 0 else "", *cells])
                styles.append(None if item.ok else "red")
        print_table("verify", [Col("name", "key"), Col("tar"), Col("split", "key"), Col("listed", "num"),
                               Col("expected", "num"), Col("missing\nxml", "num"), Col("missing\njpg", "num")],
                    rows, root=result.root, root_label="under", row_styles=styles)
    if not result.ok:
        raise DatasetNotFoundError(f"verify failed: {result.summary()}",
                                   hint="run `vocli fetch NAME --force` to fetch and extract again")
    if not json_out:
        err_console().print("[green]all verified[/]")


def datasets(root: Optional[Path] = ROOT_OPTION, json_out: bool = JSON_OPTION) -> None:
    """List what `vocli fetch` knows: files, sizes, whether present, verified and extracted, and where.

    \b
    Example: vocli datasets
    Example: vocli datasets --json | jq '.datasets[] | select(.extracted) | .name'
    """
    from vocli.fetch import list_datasets

    result = list_datasets(root)
    if json_out:
        emit_json(result)
        return
    rows = []
    for ds in result.datasets:
        files = ds.files or [None]
        for i, f in enumerate(files):
            state = "-" if f is None else ("verified" if f.verified else "unchecked" if f.present else "absent")
            extracted = "" if ds.kind in ("weights", "group") else ("yes" if ds.extracted else "no")
            rows.append((ds.name if i == 0 else "", f.filename if f else "-", _size(f.size) if f else "",
                         "" if f is None else state, extracted if i == 0 else ""))
    print_table(f"datasets (weights in {result.weights_dir})",
                [Col("name", "key"), Col("file", "key"), Col("size", "num"), Col("state", "key"),
                 Col("extracted", "key")], rows, root=result.root, root_label="under")
    for ds in result.datasets:
        if ds.kind == "group":
            err_console().print(f"{ds.name} = {' + '.join(ds.members)}", soft_wrap=True, highlight=False)


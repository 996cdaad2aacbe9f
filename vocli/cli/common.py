"""Shared pieces of every command: options, stderr console, JSON output, progress bars."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import sys
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import typer
from rich.console import Console

JSON_OPTION = typer.Option(False, "--json", help="Print one JSON document with the result on stdout.")
ROOT_OPTION = typer.Option(
    None, "--root", help="Folder holding VOCdevkit/ (default: $VOCLI_HOME/data).", show_default=False
)
OVERWRITE_OPTION = typer.Option(False, "--overwrite", "--exist-ok",
                                help="Replace an existing output file (never an input).")
SETS_OPTION = typer.Option(None, "--sets", help="Comma-separated <year>/<split> sets, e.g. 2007/trainval,2012/trainval.")


def err_console() -> Console:
    """Rich console on stderr (resolved at print time, so redirection and test capture work)."""
    return Console(stderr=True, highlight=False, soft_wrap=False)


def to_jsonable(obj: Any) -> Any:
    """Dataclasses, paths, numpy and torch values -> plain JSON types."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if hasattr(obj, "tolist"):  # numpy arrays and scalars, torch tensors
        return to_jsonable(obj.tolist())
    if hasattr(obj, "item") and callable(obj.item):
        return to_jsonable(obj.item())
    return obj


def emit_json(result: Any) -> None:
    """Write ``result`` as one JSON document on stdout (nothing else goes to stdout)."""
    sys.stdout.write(json.dumps(to_jsonable(result), indent=2) + "\n")
    sys.stdout.flush()


@contextlib.contextmanager
def progress_bar(description: str, total: Optional[float], enabled: bool = True,
                 unit: str = "items") -> Iterator[Callable[[float], None]]:
    """Yield ``advance(n)``; draws a rich bar on stderr when enabled and stderr is a terminal."""
    console = err_console()
    if not enabled or not console.is_terminal:
        yield lambda n=1: None
        return
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(description, total=total)
        yield lambda n=1: progress.advance(task, n)


def resolve_root(root: Optional[Path]) -> Path:
    """``--root`` or the data home."""
    from vocli.paths import data_root

    return Path(root).expanduser() if root is not None else data_root()


SKIP_INVALID_OPTION = typer.Option(False, "--skip-invalid",
                                   help="Exit 0 even when some annotations are invalid (they are still listed).")
MAX_LISTED = 20


def render_invalid(invalid, skip_invalid: bool) -> None:
    """The invalid input files (``.path``, ``.reason``) a command left out, as a table on stderr: one
    behaviour for every command that reads many annotations (``--skip-invalid`` turns the error off)."""
    from rich.markup import escape
    from rich.table import Table

    if not invalid:
        return
    console = err_console()
    if len(invalid) <= MAX_LISTED:
        table = Table(title=f"{len(invalid)} invalid file(s), left out", title_justify="left")
        table.add_column("file", overflow="fold")
        table.add_column("reason", overflow="fold")
        for item in invalid:
            table.add_row(escape(item.path), escape(item.reason))
    else:
        # Many files usually share a few reasons (a class missing from the list): one row per reason.
        by_reason: dict[str, list[str]] = {}
        for item in invalid:
            by_reason.setdefault(item.reason, []).append(item.path)
        table = Table(title=f"{len(invalid)} invalid file(s), left out, for {len(by_reason)} reason(s)",
                      title_justify="left")
        table.add_column("files", justify="right")
        table.add_column("reason", overflow="fold")
        table.add_column("first file", overflow="fold")
        ranked = sorted(by_reason.items(), key=lambda kv: -len(kv[1]))
        for reason, paths in ranked[:MAX_LISTED]:
            table.add_row(str(len(paths)), escape(reason), escape(paths[0]))
    console.print(table)
    if len(invalid) > MAX_LISTED and len(by_reason) > MAX_LISTED:
        console.print(f"... and {len(by_reason) - MAX_LISTED} more reasons (every file is in --json output)")
    if not skip_invalid:
        console.print("[bold red]error:[/] invalid annotations above; fix them or pass --skip-invalid")


def exit_if_invalid(invalid, skip_invalid: bool) -> None:
    """Exit 1 after the output when some inputs were invalid, unless ``--skip-invalid``."""
    if invalid and not skip_invalid:
        raise typer.Exit(1)

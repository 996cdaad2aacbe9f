"""Shared pieces of every command: options, stderr console, JSON output, progress bars."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import sys
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

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
    """The invalid input files (``.path``, ``.reason``) a command left out, on stderr: one whole line
    per file (or per reason, with its first file, when there are many), never a cut path. One
    behaviour for every command that reads many annotations (``--skip-invalid`` turns the error off)."""
    from rich.markup import escape

    if not invalid:
        return
    console = err_console()

    def line(text: str) -> None:
        console.print(escape(text), soft_wrap=True, highlight=False)

    if len(invalid) <= MAX_LISTED:
        console.print(f"[bold]{len(invalid)} invalid file(s), left out[/]")
        for item in invalid:
            line(f"  {item.path}: {item.reason}")
    else:
        # Many files usually share a few reasons (a class missing from the list): one line per reason.
        by_reason: dict[str, list[str]] = {}
        for item in invalid:
            by_reason.setdefault(item.reason, []).append(item.path)
        console.print(f"[bold]{len(invalid)} invalid file(s), left out, for {len(by_reason)} reason(s)[/]")
        ranked = sorted(by_reason.items(), key=lambda kv: -len(kv[1]))
        for reason, paths in ranked[:MAX_LISTED]:
            line(f"  {len(paths)} file(s): {reason} (first: {paths[0]})")
        if len(by_reason) > MAX_LISTED:
            console.print(f"... and {len(by_reason) - MAX_LISTED} more reasons (every file is in --json output)")
    if not skip_invalid:
        console.print("[bold red]error:[/] invalid annotations above; fix them or pass --skip-invalid")


def exit_if_invalid(invalid, skip_invalid: bool) -> None:
    """Exit 1 after the output when some inputs were invalid, unless ``--skip-invalid``."""
    if invalid and not skip_invalid:
        raise typer.Exit(1)


# --------------------------------------------------------------------------- tables that never cut


@dataclasses.dataclass(frozen=True)
class Col:
    """A table column. ``kind``: ``key`` (set or class names, ids: never cut or wrapped),
    ``num`` (right-aligned numbers: never cut or wrapped), ``path`` (shown relative to the
    table's root when inside it; never cut: the column moves below the table when it does
    not fit) or ``text`` (free text, folded onto more lines when narrow).
    A header may hold ``\\n`` to take two short lines instead of one long one."""

    header: str
    kind: str = "text"


def short_path(path: Any, root: Optional[Path] = None) -> str:
    """``path`` relative to ``root`` when it lies inside it, else as given."""
    if path is None:
        return "-"
    text = str(path)
    if root is not None:
        try:
            return str(Path(text).relative_to(Path(root)))
        except ValueError:
            pass
    return text


def print_table(title: str, columns: Sequence[Col], rows: Sequence[Sequence[Any]], *,
                root: Optional[Path] = None, root_label: str = "in", row_styles: Optional[Sequence[Any]] = None,
                console: Optional[Console] = None) -> None:
    """Print a table on stderr that never cuts a name, number or path at the console width.

    The title (and ``root``, once) is a line of its own that the terminal wraps, never rich.
    Path cells are shown relative to ``root``. Key and number columns never wrap. When the
    table does not fit with its path columns, those move below it as ``<first cell>: <path>``
    lines, whole. Cells are plain text (no markup).
    """
    from rich import box
    from rich.markup import escape
    from rich.measure import Measurement
    from rich.table import Table

    console = console or err_console()
    cells = [[("-" if v is None else short_path(v, root) if c.kind == "path" else str(v))
              for c, v in zip(columns, row)] for row in rows]
    heading = title + (f" {root_label} {root}" if root is not None else "")
    console.print(escape(heading), soft_wrap=True, style="bold")

    def build(keep: Sequence[int]) -> Table:
        table = Table(box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0), pad_edge=False, show_edge=False)
        for i in keep:
            col = columns[i]
            table.add_column(escape(col.header), justify="right" if col.kind == "num" else "left",
                             no_wrap=col.kind != "text", overflow="fold")
        for r, row in enumerate(cells):
            style = row_styles[r] if row_styles is not None else None
            table.add_row(*(escape(row[i]) for i in keep), style=style)
        return table

    everything = list(range(len(columns)))
    table = build(everything)
    below: list[int] = []
    # Measured without the console's limit (which would cap the answer at the width itself).
    if Measurement.get(console, console.options.update_width(100_000), table).minimum > console.width:
        below = [i for i, c in enumerate(columns) if c.kind == "path"]
        table = build([i for i in everything if i not in below])
    console.print(table)
    for i in below:
        header = columns[i].header.replace("\n", " ")
        for row in cells:
            console.print(escape(f"  {row[0]}: {header} {row[i]}"), soft_wrap=True, highlight=False)


def print_missing_images(count: int, first: Sequence[Any], consequence: str = "") -> None:
    """A warning naming how many listed images have no file, and the first few, whole."""
    if not count:
        return
    from rich.markup import escape

    console = err_console()
    tail = f" ({consequence})" if consequence else ""
    console.print(f"[yellow]warning:[/] {count} listed image(s) missing{escape(tail)}; the first:", soft_wrap=True)
    for path in first:
        console.print(escape(f"  {path}"), soft_wrap=True, highlight=False)
    if count > len(first):
        console.print(f"  ... and {count - len(first)} more", soft_wrap=True)

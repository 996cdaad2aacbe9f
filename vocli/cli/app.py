"""Root command: global options, command registration, and the one place errors become exit codes."""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import sys
import threading
import traceback
from typing import Iterator, Optional, Sequence

import typer
from rich.markup import escape

from vocli import __version__
from vocli.cli.common import err_console
from vocli.errors import VocliError

def _flags_without_type(params: list) -> list:
    for param in params:
        if getattr(param, "is_flag", False) and getattr(param, "metavar", None) is None:
            param.metavar = ""  # Typer >= 0.20 shows "<bool>" for a flag otherwise
    return params


class _ConventionalCommand(typer.core.TyperCommand):
    """A command whose help reads as Typer apps' users expect, whatever the Typer version: the
    usage line names arguments in capitals (``SRC``, ``SOURCES...``) and a flag shows no type."""

    def collect_usage_pieces(self, ctx) -> list:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name != "argument":
                continue
            name = (param.metavar or param.name or "").upper()
            if param.nargs != 1:
                name += "..."
            pieces.append(name if param.required else f"[{name}]")
        return pieces

    def get_params(self, ctx) -> list:
        return _flags_without_type(super().get_params(ctx))


class _ConventionalGroup(typer.core.TyperGroup):
    """The root and sub-command groups: flags without a type, as in ``_ConventionalCommand``."""

    def get_params(self, ctx) -> list:
        return _flags_without_type(super().get_params(ctx))


def _use_conventional_help(typer_app: typer.Typer) -> None:
    for command in typer_app.registered_commands:
        if command.cls in (None, typer.core.TyperCommand):
            command.cls = _ConventionalCommand
    for group in typer_app.registered_groups:
        # Typer wraps a default it filled in (``DefaultPlaceholder``); a class a module chose stays.
        if getattr(group.cls, "value", group.cls) in (None, typer.core.TyperGroup):
            group.cls = _ConventionalGroup
        _use_conventional_help(group.typer_instance)


app = typer.Typer(
    cls=_ConventionalGroup,
    name="vocli",
    help="PASCAL VOC to a trained, evaluated YOLOv3: fetch, convert, anchors, weights, train, evaluate, detect.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"vocli {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Optional[bool] = typer.Option(None, "--version", callback=_version, is_eager=True, help="Show the version and exit."),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors (also VOCLI_DEBUG=1)."),
) -> None:
    """vocli: from nothing to a trained, evaluated YOLOv3 on PASCAL VOC."""


# Each module registers its commands with ``register(app)``; keep this list in help order.
COMMAND_MODULES = (
    "fetch",
    "convert",
    "anchors",
    "weights",
    "train",
    "evaluate",
    "detect",
    "export_onnx",
    "stats",
    "demo",
)


def _register_commands() -> None:
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"vocli.cli.{name}")
        except ModuleNotFoundError as err:
            if err.name == f"vocli.cli.{name}":
                continue  # command not built yet
            raise
        module.register(app)


_register_commands()
_use_conventional_help(app)


def _base_exception(cls: type, name: str) -> type:
    """The class called ``name`` among ``cls``'s bases: click's exception classes reached through
    Typer's public ones, whichever click Typer uses (its own copy since 0.20, the package before)."""
    return next(base for base in cls.__mro__ if base.__name__ == name)


_EXIT = (typer.Exit,)
_ABORT = (typer.Abort,)
_CLICK_ERROR = (_base_exception(typer.BadParameter, "ClickException"),)


@contextlib.contextmanager
def _sigterm_interrupts(received: list) -> Iterator[None]:
    """While the CLI runs, SIGTERM interrupts it as Ctrl-C does, so that a terminated run cleans up
    (temp files, staging folders, the last checkpoint) the same way; ``received`` records it.
    A forked child that inherited the handler dies of the signal as it would by default."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pid = os.getpid()

    def interrupt(signum, frame) -> None:
        if os.getpid() != pid:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        received.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stopped(console, terminated: bool) -> int:
    console.print("[yellow]terminated[/]" if terminated else "[yellow]interrupted[/]")
    return 143 if terminated else 130


def _debug_requested(argv: Sequence[str]) -> bool:
    return "--debug" in argv or os.environ.get("VOCLI_DEBUG", "").lower() in ("1", "true", "yes")


#: glibc's mallopt parameter for the free memory kept at the top of the heap
M_TOP_PAD = -2
#: 64 MiB: a k-means distance table or a parsed chunk fits, so it is reused, not faulted in again
HEAP_TOP_PAD = 64 << 20


def keep_freed_heap(pad: int = HEAP_TOP_PAD) -> bool:
    """Let glibc keep ``pad`` bytes of freed heap instead of returning them at each free.

    numpy frees and re-allocates megabyte temporaries many times per command (k-means, the
    batch XML reader); by default glibc hands that memory back and every re-allocation
    faults it in again. Whole ``vocli anchors`` on 07+12 trainval: 110,000 minor page faults
    and 0.58 s without, 33,000 and 0.52 s with (docs/performance.md). A process-wide
    setting, so the CLI makes it, not the library; False where there is no ``mallopt``.
    """
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (AttributeError, OSError):  # not glibc (macOS, Windows)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt(M_TOP_PAD, pad) == 1


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the CLI; return the exit code (0 ok, 1 error, 2 usage, 130 interrupted, 143 terminated)."""
    keep_freed_heap()
    args = list(sys.argv[1:] if argv is None else argv)
    debug = _debug_requested(args)
    # --debug is accepted anywhere on the line, not only before the command.
    args = [a for a in args if a != "--debug"]
    console = err_console()
    sigterm: list = []
    try:
        with _sigterm_interrupts(sigterm):
            result = app(args=args, prog_name="vocli", standalone_mode=False)
        if result == 130:  # newer Typer turns Ctrl-C into this return value itself
            return _stopped(console, bool(sigterm))
        return result if isinstance(result, int) else 0
    except _EXIT as exc:
        return exc.exit_code
    except (KeyboardInterrupt, *_ABORT):
        return _stopped(console, bool(sigterm))
    except _CLICK_ERROR as exc:
        exc.show()
        return exc.exit_code
    except VocliError as exc:
        if debug:
            traceback.print_exc()
        console.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
        return 1
    except Exception as exc:  # noqa: BLE001 - last resort: one line unless --debug
        if debug:
            traceback.print_exc()
        else:
            console.print(
                f"[bold red]error:[/] {type(exc).__name__}: {escape(str(exc))} (run with --debug for the traceback)",
                soft_wrap=True,
            )
        return 1


if __name__ == "__main__":
    sys.exit(main())

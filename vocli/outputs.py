"""The one rule every command that writes follows before it writes anything.

An output is resolved and refused (``OutputError``: one line, exit 1) when

- it is the same file as one of the command's inputs (never allowed, not even with ``--overwrite``:
  ``vocli export-weights a.pt -o a.pt`` would read the checkpoint it is writing over);
- one of the files the command would write there is an input (``vocli detect imgs --out imgs``
  would replace the photos with annotated copies; never allowed either);
- it exists and is not ours to replace (a file, or a folder holding files, such as a VOC folder
  whose ``Annotations`` ``--save-xml`` would overwrite) unless ``overwrite`` (``--overwrite`` /
  ``--exist-ok``) says so.

Default run folders are never reused: ``next_run_dir`` gives ``runs/detect/exp``, ``exp2`` ... as
ultralytics does.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Union

from vocli.errors import OutputError

PathLike = Union[str, os.PathLike]


def resolved(path: PathLike) -> Path:
    """``path`` made absolute with symlinks and ``..`` resolved (it need not exist)."""
    return Path(os.path.realpath(Path(path).expanduser()))


def same_file(a: PathLike, b: PathLike) -> bool:
    """Whether ``a`` and ``b`` name the same file (hard links included) or the same resolved path."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return resolved(a) == resolved(b)


def next_run_dir(base: PathLike, name: str) -> Path:
    """``base/name``, or ``name2``, ``name3`` ... when taken (a fresh folder for each run)."""
    base = Path(base)
    candidate = base / name
    n = 2
    while candidate.exists():
        candidate = base / f"{name}{n}"
        n += 1
    return candidate


def _flag(option: str) -> str:
    return f"pass {option} to replace it" if option else "choose another path"


def check_output_file(out: PathLike, inputs: Iterable[PathLike] = (), overwrite: bool = False,
                      option: str = "--overwrite") -> Path:
    """``out`` (expanded) when writing it is allowed; ``OutputError`` when it is an input or exists.

    ``option`` names the flag that allows replacing an existing file in the message.
    """
    out = Path(out).expanduser()
    for source in inputs:
        if same_file(out, source):
            raise OutputError(f"{out}: is the input {source}; refusing to write over it",
                              hint="choose another output path")
    if out.is_dir():
        raise OutputError(f"{out}: is a folder, not a file to write", hint="name a file")
    if out.exists() and not overwrite:
        raise OutputError(f"{out}: already exists", hint=f"{_flag(option)}, or choose another path")
    return out


def check_output_dir(out: PathLike, inputs: Iterable[PathLike] = (), planned: Iterable[PathLike] = (),
                     overwrite: bool = False, option: str = "--exist-ok") -> Path:
    """``out`` (expanded) when a command may write into it, else ``OutputError``.

    ``inputs``: the files the command reads; ``planned``: the files it will write (under ``out``).
    Refused always: ``out`` is an input file, or a planned file is an input. Refused unless
    ``overwrite``: ``out`` exists and holds anything (files not ours to replace).
    """
    out = Path(out).expanduser()
    sources = list(inputs)
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a folder", hint="choose another output folder")
    if sources:
        # Files are matched by identity (device, inode): symlinks, hard links and '..' included.
        # A planned file that does not exist yet cannot be an input.
        by_id = {}
        for source in sources:
            try:
                st = os.stat(source)
            except OSError:
                continue
            by_id[(st.st_dev, st.st_ino)] = source
        for target in planned:
            try:
                st = os.stat(target)
            except OSError:
                continue
            hit = by_id.get((st.st_dev, st.st_ino))
            if hit is not None:
                raise OutputError(f"{out}: writing {Path(target).name} there would replace the input {hit}",
                                  hint="choose an output folder that holds no inputs")
    if out.is_dir() and not overwrite:
        with os.scandir(out) as listing:
            if next(listing, None) is not None:
                raise OutputError(f"{out}: already exists and is not empty",
                                  hint=f"{_flag(option)} files there, or choose another folder")
    return out


def check_run_folder(out: PathLike, inputs: Iterable[PathLike] = (), marker: str = "config.json") -> Path:
    """A ``--out`` run folder (``vocli train``): new, empty, or one of ours (it holds ``marker``, written by
    every run); never one where ``last.pt``/``best.pt`` would replace an input (``--weights .../best.pt``)."""
    out = Path(out).expanduser()
    check_output_dir(out, inputs, [out / "last.pt", out / "best.pt"], overwrite=True)
    if out.is_dir() and not (out / marker).is_file():
        with os.scandir(out) as listing:
            if next(listing, None) is not None:
                raise OutputError(f"{out}: holds files and is not a vocli run folder (no {marker})",
                                  hint="choose a new or empty --out folder")
    return out

"""Where vocli keeps data, and how it writes files without leaving partial ones behind."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator, Optional

from vocli.errors import VocliError

DEFAULT_HOME = "~/.cache/vocli"


def vocli_home() -> Path:
    """``$VOCLI_HOME`` or ``~/.cache/vocli``."""
    return Path(os.environ.get("VOCLI_HOME") or DEFAULT_HOME).expanduser()


def data_root() -> Path:
    """The default ``--root``: ``<home>/data`` (holds ``VOCdevkit/VOC2007`` ...)."""
    return vocli_home() / "data"


def weights_dir() -> Path:
    """Where fetched Darknet weight files are stored (not extracted)."""
    return vocli_home() / "weights"


def entry_name_problem(name: str) -> Optional[str]:
    """Why ``name`` (an ImageSets id or an XML ``<filename>``) is not a plain name inside its folder; None if it is.

    Ids and file names are names, never paths: a separator, ``.``/``..``, an absolute or drive path,
    or a NUL byte would make vocli read or write outside the dataset tree.
    """
    if not name:
        return "is empty"
    if "/" in name or "\\" in name:
        return "holds a path separator (ids and file names are names, not paths)"
    if name in (".", ".."):
        return f"is {name!r}, not a name"
    if "\0" in name:
        return "holds a NUL byte"
    if len(name) >= 2 and name[1] == ":" and name[0].isalpha():
        return "is a drive path"
    return None


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def find_weights_file(path: str | os.PathLike) -> Path:
    """``path`` when it exists; a bare file name not found here is looked up in ``weights_dir()``,
    where ``vocli fetch yolov3.weights`` stores it."""
    given = Path(path).expanduser()
    if given.exists() or given.parent != Path("."):
        return given
    fetched = weights_dir() / given.name
    return fetched if fetched.is_file() else given


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    On any exception (Ctrl-C included) the temporary file is removed, so ``path``
    is either the old file or the complete new one, never a partial write.
    ``suffix`` keeps an extension on the temp name for writers that infer the
    format from it (e.g. PIL).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix + ".tmp", dir=path.parent)
    try:
        # mkstemp makes the file 0600; outputs get the mode a plain open() would give them.
        os.fchmod(fd, 0o666 & ~current_umask())
    finally:
        os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


@contextlib.contextmanager
def staged_folder(folder: Path) -> Iterator[Optional[Path]]:
    """A fresh staging folder to fill in place of ``folder`` when that is absent or empty, else None.

    On success the staging folder replaces ``folder`` in one rename, so a first
    run that fails or is interrupted leaves no partial output; on failure it is removed.
    """
    folder = Path(folder)
    if folder.is_dir():
        with os.scandir(folder) as listing:
            if next(listing, None) is not None:
                yield None
                return
    folder.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    try:
        os.chmod(stage, 0o777 & ~current_umask())
        yield stage
        try:
            with contextlib.suppress(FileNotFoundError):
                os.rmdir(folder)  # empty: rename() onto a folder needs it gone on some systems
            os.rename(stage, folder)
        except OSError as err:
            raise VocliError(f"{folder} was filled by something else during this run ({err.strerror})",
                             hint="run the command again") from None
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise

"""Where vocli keeps data, and how it writes files without leaving partial ones behind."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterator, Optional

from vocli.errors import VocliError, WriteError

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


#: errno -> what a failed write means, for the one-line message naming the path.
_WRITE_ERRNOS = {errno.ENOSPC: "no space left on the device", errno.EFBIG: "file too large (size limit reached)",
                 errno.EDQUOT: "disk quota exceeded", errno.EROFS: "read-only file system"}
_CREATE_ERRNOS = {errno.EACCES: "permission denied", errno.EPERM: "operation not permitted"}
#: Text of errors that lost their errno on the way (HDF5's and torch's C++ writers).
_WRITE_TEXTS = (("No space left", _WRITE_ERRNOS[errno.ENOSPC]), ("File too large", _WRITE_ERRNOS[errno.EFBIG]),
                ("quota", _WRITE_ERRNOS[errno.EDQUOT]), ("Read-only file system", _WRITE_ERRNOS[errno.EROFS]),
                ("file write failed", "the write failed (disk full or a file size limit)"),
                ("PytorchStreamWriter failed", "the write failed (disk full or a file size limit)"),
                ("inline_container.cc", "the write failed (disk full or a file size limit)"))


def free_bytes(path: str | os.PathLike) -> Optional[int]:
    """Free bytes on the file system holding ``path`` (or its nearest existing parent); None if unknown."""
    here = Path(path).absolute()
    for folder in (here, *here.parents):
        if folder.exists():
            try:
                return shutil.disk_usage(folder).free
            except OSError:
                return None
    return None


def write_error(path: str | os.PathLike, err: BaseException, written: Optional[int] = None,
                creating: bool = False) -> Optional[WriteError]:
    """``err`` (raised while writing ``path``) as one line naming the path and the free space, or None
    when it is not a disk-full, size-limit, quota or read-only failure (``creating``: also permissions)."""
    if not isinstance(err, (OSError, RuntimeError)):
        return None
    code = getattr(err, "errno", None) if isinstance(err, OSError) else None
    reasons = {**_WRITE_ERRNOS, **(_CREATE_ERRNOS if creating else {})}
    reason = reasons.get(code)
    if reason is None:
        text = str(err)
        reason = next((r for needle, r in _WRITE_TEXTS if needle in text), None)
        if reason is None:
            return None
    if reason in (_WRITE_ERRNOS[errno.EROFS], *_CREATE_ERRNOS.values()):
        return WriteError(f"{path}: cannot write: {reason}", hint="write it elsewhere")
    free = free_bytes(Path(path).parent)
    where = f"; {free:,} bytes free there" if free is not None else ""
    need = f"; it needs more than the {written:,} bytes written before it failed" if written else ""
    return WriteError(f"{path}: cannot write: {reason}{where}{need}",
                      hint="free some space (or raise the limit) and run again; no partial file was left")


def make_folder(path: str | os.PathLike) -> Path:
    """``mkdir -p path``; a read-only or forbidden place is one ``WriteError`` line naming it."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        failure = write_error(path, err, creating=True)
        if failure is None:
            raise
        raise failure from None
    return path


def check_free_space(path: str | os.PathLike, needed: int) -> None:
    """Raise ``WriteError`` naming ``path`` when its disk has fewer than ``needed`` bytes free."""
    free = free_bytes(Path(path).parent)
    if free is not None and needed > free:
        raise WriteError(f"{path}: cannot write: needs {needed:,} bytes, {free:,} free there "
                         f"({needed - free:,} more needed)", hint="free some space or write elsewhere")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    On any exception (Ctrl-C included) the temporary file is removed, so ``path``
    is either the old file or the complete new one, never a partial write.
    ``suffix`` keeps an extension on the temp name for writers that infer the
    format from it (e.g. PIL).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # The pid in the name lets a later run tell a dead run's leftover (``remove_stale_temps``).
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=suffix + ".tmp", dir=path.parent)
    except OSError as err:
        failure = write_error(path, err, creating=True)
        if failure is None:
            raise
        raise failure from None
    try:
        # mkstemp makes the file 0600; outputs get the mode a plain open() would give them.
        os.fchmod(fd, 0o666 & ~current_umask())
    finally:
        os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException as err:
        written = None
        with contextlib.suppress(OSError):
            written = tmp_path.stat().st_size
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        failure = write_error(path, err, written)
        if failure is None:
            raise
        raise failure from None


#: Temp names vocli writes: ``.<name>.<pid>.<random><suffix>.tmp`` (atomic_path) and ``.<name>.<pid>.tmp``.
_TEMP_NAME = re.compile(r"^\..+?\.(?P<pid>\d+)(?:\.[A-Za-z0-9_]{8}(?:\.[A-Za-z0-9]+)?)?\.tmp$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Remove temp files (and staging folders) of vocli's own naming in ``folder`` whose writing process
    is gone; return them.

    A run killed with SIGKILL (or the machine going down) leaves ``.<name>.<pid>...tmp`` files;
    the next run clears them. Files of a live process, and any other names, are left alone.
    """
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.endswith(".tmp"):
            continue
        m = _TEMP_NAME.match(entry.name)
        if m is None or int(m.group("pid")) == os.getpid() or _alive(int(m.group("pid"))):
            continue
        with contextlib.suppress(OSError):
            if entry.is_dir(follow_symlinks=False):  # a staging folder (``staged_folder``)
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
            removed.append(Path(entry.path))
    return removed


def atomic_write_bytes(path: str | os.PathLike, data: bytes, suffix: str = "",
                       before_rename: Optional[Callable[[], None]] = None) -> None:
    """Write ``data`` to ``path`` atomically, after checking the disk has room for it.

    ``before_rename`` (e.g. ``DeferredSignals.check``) runs once the data is written and before it
    replaces ``path``: an exception there removes the temp file and leaves ``path`` as it was."""
    check_free_space(path, len(data))
    with atomic_path(path, suffix=suffix) as tmp:
        tmp.write_bytes(data)
        if before_rename is not None:
            before_rename()


@contextlib.contextmanager
def atomic_h5(path: str | os.PathLike, before_rename: Optional[Callable[[], None]] = None) -> Iterator:
    """Yield a new ``h5py.File`` built in memory; on success its bytes go to ``path`` in one checked write.

    HDF5 never writes to the disk itself: after a failed write (disk full, a size limit) the
    HDF5 library crashes the process at exit (a segmentation fault, exit 139) whatever Python
    does, so the file is built with the ``core`` driver and written by ``atomic_write_bytes``
    (free space checked first, one line naming the path on failure). Memory: the file's size.
    ``before_rename`` as for ``atomic_write_bytes``.
    """
    import h5py

    path = Path(path)
    with h5py.File(f"{path}.{os.getpid()}.in-memory", "w", driver="core", backing_store=False) as h5:
        yield h5
        h5.flush()
        image = h5.id.get_file_image()
    atomic_write_bytes(path, image, suffix=path.suffix, before_rename=before_rename)


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
    stage = Path(tempfile.mkdtemp(prefix=f".{folder.name}.{os.getpid()}.", suffix=".tmp", dir=folder.parent))
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

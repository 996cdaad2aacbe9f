"""Pieces shared by the dataset converters: invalid-file records, chunks of work over processes, file I/O.

``run_chunks`` streams results from the standard library's process pool, for every
command that spreads files over ``--workers`` (``convert yolo``/``ssd``/``voc`` and the
bulk XML reading, ``vocli.datasets.voc_bulk``). A hand-made alternative (forked helpers
taking jobs from a shared counter, the caller working too) was measured against it as
whole ``convert yolo`` processes on 21,503 files and removed: see docs/performance.md."""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import os
import signal
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Optional, Sequence, TypeVar

from vocli.errors import VocliError
from vocli.paths import write_error

J = TypeVar("J")
R = TypeVar("R")

#: ``progress(done, total)``: called with running counts of processed files.
Progress = Optional[Callable[[int, int], None]]


@dataclass(frozen=True)
class InvalidFile:
    """An input that could not be converted: which file and why."""

    path: str
    reason: str


def invalid_annotation(err) -> InvalidFile:
    """An ``AnnotationError`` as an ``InvalidFile`` (reason plus hint, without the repeated path)."""
    return InvalidFile(err.path, f"{err.reason} ({err.hint})" if err.hint else err.reason)


class ListsInvalid:
    """Mixin for converter results: ``ok`` when no input was invalid."""

    invalid: list[InvalidFile]

    @property
    def ok(self) -> bool:
        return not self.invalid


def resolve_workers(workers: Optional[int]) -> int:
    """``None`` -> all cores; otherwise at least 1."""
    if workers is None:
        return os.cpu_count() or 1
    if workers < 1:
        raise VocliError(f"--workers must be at least 1, got {workers}")
    return int(workers)


def chunked(items: Sequence[J], workers: int, smallest: int = 16, largest: int = 512) -> list[Sequence[J]]:
    """Split ``items`` into chunks: about 8 per worker so the pool stays balanced, within [smallest, largest]."""
    if not items:
        return []
    size = max(smallest, min(largest, -(-len(items) // (workers * 8))))
    return [items[i:i + size] for i in range(0, len(items), size)]


def _pool_context():
    # fork starts workers in milliseconds; spawn (other platforms) re-imports the package.
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def _start_worker() -> None:
    # Ctrl-C reaches the whole process group: the parent stops the pool and reports it
    # once, so the workers ignore it instead of each printing a traceback. SIGTERM, which
    # the parent uses to stop them, kills them (the CLI process itself turns it into an interrupt).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    gc.freeze()  # the worker's collections then skip the objects inherited from the parent


def run_chunks(fn: Callable[[J], R], jobs: Sequence[J], workers: int,
               sizes: Sequence[int], progress: Progress = None, interrupts=None,
               meanwhile: Optional[Callable[[], None]] = None) -> Iterator[R]:
    """Yield ``fn(job)`` for every job, in order, using up to ``workers`` processes.

    ``sizes[i]`` is the number of files in ``jobs[i]``, reported to ``progress``.
    ``meanwhile()``, if given, runs in this process once the jobs are handed to the pool
    (after its workers have forked, so no thread of the caller's is ever copied into them),
    before the first result is yielded: other work of the command, done while the pool works.
    One worker (or one job) runs in this process, with no pool to start, as does a call
    from a daemonic process (a pool's worker, say), which may not start processes.
    ``interrupts`` (a ``vocli.interrupts.DeferredSignals`` the caller holds): a job run in
    this process runs in its ``released()`` window, so Ctrl-C stops even a long job at once;
    while waiting for the pool its ``check()`` runs every ``POLL_SECONDS``. Either may raise
    to stop the run; the caller's own code between results stays deferred.
    """
    total = sum(sizes)
    done = 0
    if progress:
        progress(0, total)
    if workers <= 1 or len(jobs) <= 1 or multiprocessing.current_process().daemon:
        results: Iterable[R] = map(fn, jobs) if interrupts is None else _released(fn, jobs, interrupts)
        pool = None
    else:
        pool = _pool_context().Pool(min(workers, len(jobs)), initializer=_start_worker)
        results = (pool.imap(fn, jobs) if interrupts is None
                   else _waiting(pool.imap(fn, jobs), len(jobs), interrupts.check))
    try:
        if meanwhile is not None:
            meanwhile()
        for size, result in zip(sizes, results):
            done += size
            if progress:
                progress(done, total)
            yield result
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()


#: How often ``run_chunks`` checks for signals while it waits for the pool's next result.
POLL_SECONDS = 0.1


def _released(fn: Callable[[J], R], jobs: Sequence[J], interrupts) -> Iterator[R]:
    for job in jobs:
        with interrupts.released():
            result = fn(job)
        interrupts.check()  # a delivery Python lost inside the job
        yield result


def _waiting(results, count: int, poll: Callable[[], None]) -> Iterator:
    """The ``count`` results of a pool's ``imap``, calling ``poll`` every ``POLL_SECONDS`` while none is ready."""
    for _ in range(count):
        while True:
            poll()
            try:
                item = results.next(timeout=POLL_SECONDS)
            except multiprocessing.TimeoutError:
                continue
            break
        yield item


def image_file_name(filename: str, image_id: str) -> str:
    """The image's file name in JPEGImages: the annotation's ``<filename>`` when it names this id, else ``<id>.jpg``."""
    if filename and os.path.splitext(filename)[0] == image_id and "/" not in filename and "\\" not in filename:
        return filename
    return f"{image_id}.jpg"


_READ_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)
_FOLDER_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)


def _read_rest(fd: int, start: bytes) -> bytes:
    chunks = [start]
    while chunks[-1]:
        chunks.append(os.read(fd, 1 << 16))
    return b"".join(chunks)


def read_files(names: Sequence[str], dir_fd: int) -> tuple[list, list, dict[int, OSError]]:
    """Each named file of the folder ``dir_fd``, whole, with its stat: (datas, stats, errors by index).

    The stat is taken before reading, so a change during the run shows later. One call
    for a chunk of files, the loop kept free of Python calls but the system calls (the
    converters' hot loop). A file that cannot be read has None for its data and stat,
    and its error in ``errors``.
    """
    datas, stats, errors = [], [], {}
    open_, fstat, read, close, flags = os.open, os.fstat, os.read, os.close, _READ_FLAGS
    for i, name in enumerate(names):
        try:
            fd = open_(name, flags, dir_fd=dir_fd)
        except OSError as err:
            datas.append(None)
            stats.append(None)
            errors[i] = err
            continue
        try:
            stat = fstat(fd)
            data = read(fd, stat.st_size + 1)
            if len(data) > stat.st_size:
                data = _read_rest(fd, data)
        except OSError as err:
            data = stat = None
            errors[i] = err
        finally:
            close(fd)
        datas.append(data)
        stats.append(stat)
    return datas, stats, errors


@contextlib.contextmanager
def open_folder(path: str) -> Iterator[int]:
    """A folder's descriptor, for ``dir_fd`` arguments; closed on exit."""
    fd = os.open(path, _FOLDER_FLAGS)
    try:
        yield fd
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> os.stat_result:
    """Write all of ``data`` to ``fd`` (one call unless the write comes up short); the file's stat."""
    done = os.write(fd, data)
    if done < len(data):
        view = memoryview(data)[done:]
        while view:
            view = view[os.write(fd, view):]
    return os.fstat(fd)


def write_if_changed(path: str | os.PathLike, data: bytes) -> Optional[os.stat_result]:
    """Write ``data`` atomically unless the file already holds exactly it.

    Returns the new file's stat when written, None when the file was already right.
    """
    path = os.fspath(path)
    try:
        fd = os.open(path, _READ_FLAGS)
    except FileNotFoundError:
        pass
    else:
        try:
            same = os.read(fd, len(data) + 1) == data
        finally:
            os.close(fd)
        if same:
            return None
    # A fixed temp name per process keeps this hot loop to open/write/rename; mode 0o666 less the umask.
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, f".{name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, _WRITE_FLAGS, 0o666)
        try:
            stat = _write_all(fd, data)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        failure = write_error(path, err, creating=True)
        if failure is None:
            raise
        raise failure from None
    return stat


def write_new_files(names: Sequence[str], datas: Sequence[bytes], dir_fd: int) -> None:
    """Create each named file (which must not exist) in the folder ``dir_fd``, holding its data; in one call.

    For files inside a staging folder that is renamed into place whole, so no temp
    name per file is needed.
    """
    open_, write, close, flags = os.open, os.write, os.close, _NEW_FILE_FLAGS
    name, fd = "", -1
    try:
        for name, data in zip(names, datas):
            fd = -1
            fd = open_(name, flags, 0o666, dir_fd=dir_fd)
            try:
                done = write(fd, data)
                if done < len(data):  # a short write: finish it the slow way
                    _write_all(fd, data[done:])
            finally:
                close(fd)
    except OSError as err:
        if fd >= 0:  # created here and cut short: remove it (the staging folder goes as a whole anyway)
            with contextlib.suppress(OSError):
                os.unlink(name, dir_fd=dir_fd)
        failure = write_error(_folder_name(dir_fd, name), err, creating=True)
        if failure is None:
            raise
        raise failure from None


def _folder_name(dir_fd: int, name: str) -> str:
    """``name`` inside the folder open as ``dir_fd``, as a path for messages."""
    try:
        return os.path.join(os.readlink(f"/proc/self/fd/{dir_fd}"), name)
    except OSError:
        return name

"""Pieces shared by the dataset converters: invalid-file records, chunked process pools."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Optional, Sequence, TypeVar

from vocli.datasets.voc import Annotation
from vocli.errors import VocliError

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


def run_chunks(fn: Callable[[J], R], jobs: Sequence[J], workers: int,
               sizes: Sequence[int], progress: Progress = None) -> Iterator[R]:
    """Yield ``fn(job)`` for every job, in order, using up to ``workers`` processes.

    ``sizes[i]`` is the number of files in ``jobs[i]``, reported to ``progress``.
    One worker (or one job) runs in this process, with no pool to start.
    """
    total = sum(sizes)
    done = 0
    if progress:
        progress(0, total)
    if workers <= 1 or len(jobs) <= 1:
        results: Iterable[R] = map(fn, jobs)
        pool = None
    else:
        pool = _pool_context().Pool(min(workers, len(jobs)))
        results = pool.imap(fn, jobs)
    try:
        for size, result in zip(sizes, results):
            done += size
            if progress:
                progress(done, total)
            yield result
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()


def image_file_name(annotation: Annotation, image_id: str) -> str:
    """The image's file name in JPEGImages: ``<filename>`` when it names this id, else ``<id>.jpg``."""
    name = annotation.filename
    if name and os.path.splitext(name)[0] == image_id and "/" not in name and "\\" not in name:
        return name
    return f"{image_id}.jpg"


def write_if_changed(path: str | os.PathLike, data: bytes) -> bool:
    """Write ``data`` atomically unless the file already holds exactly it; True if written."""
    try:
        with open(path, "rb") as f:
            if f.read() == data:
                return False
    except FileNotFoundError:
        pass
    # A fixed temp name per process keeps this hot loop to open/write/rename.
    folder, name = os.path.split(os.fspath(path))
    tmp = os.path.join(folder, f".{name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return True

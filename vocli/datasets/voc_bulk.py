"""Many VOC annotations read at once: the one bulk reading behind every command that reads a tree.

``read_annotations(paths)`` cuts the files into chunks spread over ``workers`` processes
(the standard library's process pool, ``converters._common.run_chunks``). In each chunk
the numpy batch reader (``voc_batch.read_plain_batch``) reads every plain, valid file
at once; each file it leaves out is read by the checked lxml reading
(``voc.parse_annotation_bytes``), which reads it or says exactly why not. Together they
read what the checked reading alone reads, file by file (``tests/test_voc_batch.py``
holds them to it on the real sample, generated and fuzzed files), and reject the same
files. An invalid file never stops the reading: it is kept in ``AnnotationTable.errors``
for the caller to list (``--skip-invalid`` semantics) or raise.
"""

from __future__ import annotations

import os
from stat import S_ISDIR, S_ISREG
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np

from vocli.datasets.voc import Annotation, VocObject, parse_annotation_bytes, read_annotation_file
from vocli.datasets.voc_batch import read_plain_batch
from vocli.errors import AnnotationError

#: Fewer files than this are read in the calling process: starting workers costs more.
PARALLEL_MIN_FILES = 256


@dataclass
class AnnotationTable:
    """Annotations of F files by columns, O objects in all. Invalid files have no objects.

    paths: (F,) as given. errors: file index -> the ``AnnotationError`` of an invalid file.
    filenames: (F,) ``<filename>``, or ``<stem>.jpg`` when absent ("" for an invalid file).
    width, height, depth: (F,) int64. first: (F + 1,) int64, file i's objects are
    ``first[i]:first[i + 1]``. classes: the names ``class_ids`` index (the class list given,
    else the names found). class_ids: (O,) int64. boxes: (O, 4) float64 xmin, ymin, xmax,
    ymax as written (1-based inclusive pixels). difficult, truncated: (O,) bool.
    """

    paths: list[str]
    errors: dict[int, AnnotationError]
    filenames: list[str]
    width: np.ndarray
    height: np.ndarray
    depth: np.ndarray
    first: np.ndarray
    classes: tuple[str, ...]
    class_ids: np.ndarray
    boxes: np.ndarray
    difficult: np.ndarray
    truncated: np.ndarray
    poses: dict[int, str] = field(default_factory=dict)  # object -> <pose> where the checked reading read one

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def valid(self) -> np.ndarray:
        """(F,) bool: the files read."""
        ok = np.ones(len(self.paths), dtype=bool)
        ok[list(self.errors)] = False
        return ok

    @property
    def invalid(self) -> list[AnnotationError]:
        """The errors of the invalid files, in file order."""
        return [self.errors[i] for i in sorted(self.errors)]

    def counts(self) -> np.ndarray:
        """(F,) objects per file."""
        return np.diff(self.first)

    def object_file(self) -> np.ndarray:
        """(O,) the file of each object."""
        return np.repeat(np.arange(len(self.paths)), self.counts())

    def raise_first_error(self) -> None:
        if self.errors:
            raise self.errors[min(self.errors)]

    def annotation(self, i: int) -> Annotation:
        """File ``i`` as an ``Annotation`` (raises its error if invalid). ``pose`` is read only by the
        checked reading; files the batch reader read have "Unspecified"."""
        if i in self.errors:
            raise self.errors[i]
        start, end = int(self.first[i]), int(self.first[i + 1])
        objects = [VocObject(self.classes[c], *box, difficult=d, truncated=t, pose=self.poses.get(k, "Unspecified"))
                   for k, c, box, d, t in zip(range(start, end), self.class_ids[start:end].tolist(),
                                              self.boxes[start:end].tolist(), self.difficult[start:end].tolist(),
                                              self.truncated[start:end].tolist())]
        return Annotation(path=_as_path(self.paths[i]), filename=self.filenames[i], width=int(self.width[i]),
                          height=int(self.height[i]), depth=int(self.depth[i]), objects=objects)


def _as_path(path: str):
    from pathlib import Path

    return Path(path)


def read_annotation_bytes(datas: Sequence[Optional[bytes]], paths: Sequence[str],
                          classes: Optional[Sequence[str]] = None,
                          errors: Optional[dict[int, AnnotationError]] = None) -> AnnotationTable:
    """The table of files already read: ``datas[i]`` holds the bytes of ``paths[i]`` (None if unread,
    with its error in ``errors``). In this process: the batch reader, then the checked reading of
    each file it leaves out. ``classes``: the known names (an unknown one makes its file invalid)."""
    errors = dict(errors or {})
    count = len(paths)
    batch = read_plain_batch([d if d is not None else b"" for d in datas], classes)
    vocabulary = {name: i for i, name in enumerate(batch.classes)}
    counts = np.diff(batch.first)
    filenames = list(batch.filenames)
    width, height, depth = batch.width.copy(), batch.height.copy(), batch.depth.copy()
    extra: dict[int, list[VocObject]] = {}
    for i in np.flatnonzero(~batch.plain).tolist():
        if i in errors:
            continue
        try:
            ann = parse_annotation_bytes(datas[i], paths[i], classes)
        except AnnotationError as err:
            errors[i] = err
            continue
        filenames[i], width[i], height[i], depth[i] = ann.filename, ann.width, ann.height, ann.depth
        extra[i] = ann.objects
        counts[i] = len(ann.objects)
        for o in ann.objects:
            vocabulary.setdefault(o.name, len(vocabulary))
    for i in range(count):
        if batch.plain[i] and not filenames[i] and i not in errors:
            filenames[i] = os.path.splitext(os.path.basename(paths[i]))[0] + ".jpg"
    class_ids, boxes, difficult, truncated, poses = (batch.class_ids, batch.boxes, batch.difficult,
                                                     batch.truncated, {})
    if extra:
        # A file the batch left out has no objects there: its rows go in at that place.
        at = np.repeat(batch.first[list(extra)], [len(objs) for objs in extra.values()])
        objs = [o for objects in extra.values() for o in objects]
        new_first = np.concatenate([[0], np.cumsum(counts)])
        class_ids = np.insert(class_ids, at, np.array([vocabulary[o.name] for o in objs], dtype=np.int64))
        boxes = np.insert(boxes, at, np.array([o.bbox for o in objs], dtype=np.float64).reshape(-1, 4), axis=0)
        difficult = np.insert(difficult, at, np.array([o.difficult for o in objs], dtype=bool))
        truncated = np.insert(truncated, at, np.array([o.truncated for o in objs], dtype=bool))
        for i, objects in extra.items():
            poses.update((int(new_first[i]) + k, o.pose) for k, o in enumerate(objects) if o.pose != "Unspecified")
    for i in errors:
        counts[i], filenames[i], width[i], height[i], depth[i] = 0, "", 0, 0, 0
    first = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return AnnotationTable([os.fspath(p) for p in paths], errors, filenames, width, height, depth, first,
                           tuple(vocabulary), class_ids, boxes, difficult, truncated, poses)


def read_files_capped(paths: Sequence[str]) -> tuple[list[Optional[bytes]], dict[int, AnnotationError]]:
    """The bytes of each annotation (None where unreadable, its error in the dict), in one loop
    of system calls: each folder opened once, each file opened relative to it, its size taken
    first, so that a file over ``voc.MAX_ANNOTATION_BYTES`` is named and never read."""
    from vocli.datasets import voc

    datas: list[Optional[bytes]] = []
    errors: dict[int, AnnotationError] = {}
    flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
    folder_flags = flags | getattr(os, "O_DIRECTORY", 0)
    folders: dict[str, int] = {}
    open_, fstat, read, close = os.open, os.fstat, os.read, os.close
    try:
        for i, path in enumerate(paths):
            folder, name = os.path.split(path)
            try:
                folder_fd = folders.get(folder)
                if folder_fd is None:
                    folder_fd = folders[folder] = open_(folder or ".", folder_flags)
                fd = open_(name, flags, dir_fd=folder_fd)
                try:
                    stat = fstat(fd)
                    if not S_ISREG(stat.st_mode):
                        raise AnnotationError(path, "is a folder, not a file" if S_ISDIR(stat.st_mode)
                                              else "not a regular file")
                    size = stat.st_size
                    voc.check_annotation_size(path, size)
                    data = read(fd, size + 1)
                    while len(data) > size:  # grew since the stat: read the rest, within the limit
                        more = read(fd, 1 << 16)
                        if not more:
                            break
                        data += more
                        voc.check_annotation_size(path, len(data))
                finally:
                    close(fd)
            except AnnotationError as err:
                datas.append(None)
                errors[i] = err
                continue
            except OSError:
                datas.append(None)
                try:  # the checked reading words the error (file not found, a folder, no permission...)
                    read_annotation_file(path)
                    errors[i] = AnnotationError(path, "cannot read")
                except AnnotationError as err:
                    errors[i] = err
                continue
            datas.append(data)
    finally:
        for fd in folders.values():
            close(fd)
    return datas, errors


def _read_chunk(job: tuple[tuple[str, ...], Optional[tuple[str, ...]]]) -> "_Sendable":
    paths, classes = job
    datas, errors = read_files_capped(paths)
    return _Sendable.of(read_annotation_bytes(datas, paths, classes, errors))


@dataclass
class _Sendable:
    # AnnotationError does not survive pickling (its __init__ takes more than the message):
    # workers send its parts and the caller builds it again.
    table: AnnotationTable
    errors: dict[int, tuple[type, str, str, Optional[str]]]

    @staticmethod
    def of(table: AnnotationTable) -> "_Sendable":
        errors = {i: (type(e), os.fspath(e.path), e.reason, e.hint) for i, e in table.errors.items()}
        table.errors = {}
        return _Sendable(table, errors)

    def unpack(self) -> AnnotationTable:
        self.table.errors = {i: kind(path, reason, hint=hint) for i, (kind, path, reason, hint) in self.errors.items()}
        return self.table


def join_tables(tables: Sequence[AnnotationTable], classes: Optional[Sequence[str]] = None) -> AnnotationTable:
    """The tables one after the other, class ids mapped to one list (``classes``, else the names in order found)."""
    vocabulary = {name: i for i, name in enumerate(classes or ())}
    parts = []
    offset_files = offset_objects = 0
    errors, poses = {}, {}
    for t in tables:
        mapping = np.array([vocabulary.setdefault(name, len(vocabulary)) for name in t.classes], dtype=np.int64)
        parts.append(mapping[t.class_ids] if len(mapping) else t.class_ids)
        errors.update((offset_files + i, e) for i, e in t.errors.items())
        poses.update((offset_objects + k, p) for k, p in t.poses.items())
        offset_files += len(t.paths)
        offset_objects += len(t.class_ids)

    def cat(name, empty):
        arrays = [getattr(t, name) for t in tables]
        return np.concatenate(arrays) if arrays else empty

    counts = np.concatenate([np.diff(t.first) for t in tables]) if tables else np.zeros(0, np.int64)
    return AnnotationTable(
        [p for t in tables for p in t.paths], errors, [f for t in tables for f in t.filenames],
        cat("width", np.zeros(0, np.int64)), cat("height", np.zeros(0, np.int64)), cat("depth", np.zeros(0, np.int64)),
        np.concatenate([[0], np.cumsum(counts)]).astype(np.int64), tuple(vocabulary),
        np.concatenate(parts) if parts else np.zeros(0, np.int64), cat("boxes", np.zeros((0, 4))),
        cat("difficult", np.zeros(0, bool)), cat("truncated", np.zeros(0, bool)), poses)


def read_annotations(paths: Sequence[str | os.PathLike], classes: Optional[Sequence[str]] = None,
                     workers: Optional[int] = None, progress: Optional[Callable[[int], None]] = None,
                     meanwhile: Optional[Callable[[], None]] = None) -> AnnotationTable:
    """Every annotation of ``paths``, in order, read over ``workers`` processes (default: all cores).

    Invalid files (unreadable, not XML, over a limit of ``voc``, an unknown class when
    ``classes`` is given...) are in ``errors`` and read as empty; the others as the checked
    reading reads them. ``progress(n)`` is called with the number of files just read.
    ``meanwhile()``: other work of the caller, done in this process while the workers read
    (``converters._common.run_chunks``).
    """
    from converters._common import chunked, resolve_workers, run_chunks

    paths = [os.fspath(p) for p in paths]
    workers = resolve_workers(workers) if len(paths) >= PARALLEL_MIN_FILES else 1
    names = None if classes is None else tuple(classes)
    chunks = chunked(paths, workers, smallest=64, largest=2048)
    reported = 0

    def report(done: int, _total: int) -> None:
        nonlocal reported
        if progress is not None and done > reported:
            progress(done - reported)
        reported = done

    jobs = [(tuple(chunk), names) for chunk in chunks]
    tables = [sent.unpack() for sent in run_chunks(_read_chunk, jobs, workers, [len(c) for c in chunks], report,
                                                         meanwhile=meanwhile)]
    return join_tables(tables, names)

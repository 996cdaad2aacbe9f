"""VOC XML to darknet/YOLO labels, list files, ``.names`` and ``.data``.

VOC corners are 1-based inclusive pixel indices (``1 <= xmin <= xmax <= W``).
Two ways to turn them into normalised ``class cx cy w h`` lines:

``darknet`` (default): the numbers darknet's ``scripts/voc_label.py`` writes,
bit for bit (same float operations, Python's shortest ``repr``)::

    cx = ((xmin + xmax) / 2 - 1) * (1 / W)    w = (xmax - xmin) * (1 / W)
    cy = ((ymin + ymax) / 2 - 1) * (1 / H)    h = (ymax - ymin) * (1 / H)

  The centre moves to 0-based pixels, but the width is the difference of
  inclusive indices, one pixel less than the box covers.

``exact`` (``exact_pixels=True``): pixel ``i`` covers the continuous span
``[i - 1, i]``, so the box covers ``[xmin - 1, xmax]``::

    cx = (xmin - 1 + xmax) / 2 / W            w = (xmax - xmin + 1) / W

Both are clipped to [0, 1]; that only changes anything for 0-based trees
(``xmin = 0``), which real VOC never has.

Layout written (darknet's recipe): ``VOC<year>/labels/<id>.txt`` beside
``JPEGImages``; ``<year>_<split>.txt`` lists of absolute image paths;
``train.txt``, ``train.all.txt``, ``test.txt``; ``<name>.names``; ``<name>.data``.
With ``out``, lists go to ``out`` and labels to ``out/VOC<year>/labels`` next to
``out/VOC<year>/JPEGImages``, a symlink to the real image folder, so every
trainer that swaps ``JPEGImages`` for ``labels`` in a listed path finds them.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from converters.label_cache import (CACHE_NAME, CLOCK_SLACK_NS, COLUMNS, LabelRecords, cache_options, load_cache,
                                    still_valid, write_cache)
from converters._common import (InvalidFile, ListsInvalid, Progress, chunked, image_file_name, invalid_annotation,
                                open_folder, read_files, resolve_workers, run_chunks, write_if_changed,
                                write_new_files)
from vocli.datasets.voc import (VOC_CLASSES, VocSet, dataset_classes, devkit_dir, read_classes, resolve_sets,
                                split_entries)
from vocli.datasets.voc_bulk import read_annotation_bytes
from vocli.errors import DatasetNotFoundError, VocliError
from vocli.outputs import check_output_dir
from vocli.paths import atomic_write_text, data_root, remove_stale_temps, staged_folder



# --------------------------------------------------------------------------- label maths


def yolo_boxes(boxes: np.ndarray, widths: np.ndarray, heights: np.ndarray,
               exact_pixels: bool = False) -> np.ndarray:
    """VOC corners to normalised centre boxes (see the module docstring for both conventions).

    boxes: (N, 4) xmin, ymin, xmax, ymax, 1-based inclusive pixels; widths, heights: (N,)
    image sizes -> (N, 4) float64 cx, cy, w, h in [0, 1].
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    w = np.asarray(widths, dtype=np.float64)
    h = np.asarray(heights, dtype=np.float64)
    xmin, ymin, xmax, ymax = boxes.T
    if exact_pixels:
        x0, x1 = np.clip(xmin - 1, 0, w), np.clip(xmax, 0, w)
        y0, y1 = np.clip(ymin - 1, 0, h), np.clip(ymax, 0, h)
        out = np.stack([(x0 + x1) / 2 / w, (y0 + y1) / 2 / h, (x1 - x0) / w, (y1 - y0) / h], axis=1)
    else:
        # Same operations, in the same order, as voc_label.py (multiply by 1/W, not divide).
        dw, dh = 1.0 / w, 1.0 / h
        out = np.stack([((xmin + xmax) / 2.0 - 1) * dw, ((ymin + ymax) / 2.0 - 1) * dh,
                        (xmax - xmin) * dw, (ymax - ymin) * dh], axis=1)
    # "+ 0.0" turns a -0.0 into 0.0 (none arises from valid boxes; short_reprs relies on it).
    return np.clip(out, 0.0, 1.0) + 0.0


_SHORT_REPR: dict[float, str] = {}


def short_reprs(values: np.ndarray) -> list[str]:
    """``repr()`` of every value (flattened), remembered across calls.

    VOC boxes have integer corners and images few sizes, so the same values come
    back again and again: each distinct value of the call is looked up once (a
    dictionary of reprs made so far), then spread back in one array gather. The
    values must hold no -0.0 (``yolo_boxes`` never returns it): it equals 0.0 as a
    key but prints differently.
    """
    distinct, where = np.unique(np.asarray(values, dtype=np.float64).ravel(), return_inverse=True)
    distinct = distinct.tolist()
    cache = _SHORT_REPR
    new = [x for x in distinct if x not in cache]
    if new:
        if len(cache) + len(new) > 1 << 17:
            cache.clear()
            new = distinct
        cache.update((x, repr(x)) for x in new)
    text = np.array(list(map(cache.__getitem__, distinct)), dtype=object)
    return text[where.reshape(-1)].tolist()


def label_text(class_ids: Sequence[int], yolo: np.ndarray) -> tuple[bytes, np.ndarray]:
    """All boxes' ``class cx cy w h`` lines in one text and where each line ends.

    Floats in Python's shortest round-trip form, as darknet's script writes them.

    class_ids: (N,) ints; yolo: (N, 4) cx, cy, w, h -> (ASCII text, (N,) int64 offsets past each newline).
    One formatting call for all lines: a chunk of labels costs no Python call per box.
    """
    classes = np.asarray(class_ids).tolist()
    numbers = short_reprs(np.asarray(yolo, dtype=np.float64).reshape(-1, 4))
    parts: list = [None] * (5 * len(classes))
    parts[0::5] = classes
    for column in range(4):
        parts[column + 1::5] = numbers[column::4]
    text = (("%d %s %s %s %s\n" * len(classes)) % tuple(parts)).encode("ascii")
    return text, np.flatnonzero(np.frombuffer(text, dtype=np.uint8) == ord("\n")) + 1


def label_path_for(image_path: str | os.PathLike) -> Path:
    """The label file of an image: the last ``JPEGImages`` folder becomes ``labels``, the suffix ``.txt``.

    Falls back to the last ``images`` folder (the Ultralytics layout), then to the
    image's own folder.
    """
    path = Path(image_path)
    parts = list(path.parts)
    for folder in ("JPEGImages", "images"):
        if folder in parts[:-1]:
            i = len(parts) - 2 - parts[:-1][::-1].index(folder)
            parts[i] = "labels"
            return Path(*parts).with_suffix(".txt")
    return path.with_suffix(".txt")


# --------------------------------------------------------------------------- .data files


@dataclass(frozen=True)
class DataFile:
    """A darknet ``.data`` file: class count, list files, class names, backup folder."""

    classes: int
    train: Path
    valid: Path
    names: tuple[str, ...]
    backup: Path
    path: Optional[Path] = None


def read_data_file(path: str | os.PathLike) -> DataFile:
    """Read a darknet ``.data`` file (``key = value`` lines).

    Relative paths are taken relative to the ``.data`` file's folder. ``names``
    is read into the class names; their count must equal ``classes``.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DatasetNotFoundError(f"{path}: .data file not found", hint="run `vocli convert yolo` first") from None
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise VocliError(f"{path}:{number}: expected `key = value`, got {line!r}")
        values[key.strip()] = value.strip()
    missing = [k for k in ("classes", "train", "names") if k not in values]
    if missing:
        raise VocliError(f"{path}: missing {', '.join(missing)}",
                         hint="a .data file needs classes, train, valid, names")
    try:
        classes = int(values["classes"])
    except ValueError:
        raise VocliError(f"{path}: classes = {values['classes']!r} is not a whole number") from None

    def resolve(value: str) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else path.parent / p

    names = read_classes(resolve(values["names"]))
    if len(names) != classes:
        raise VocliError(f"{path}: classes = {classes} but {values['names']} lists {len(names)} names")
    train = resolve(values["train"])
    return DataFile(classes=classes, train=train, valid=resolve(values.get("valid", values["train"])),
                    names=names, backup=resolve(values.get("backup", "backup")), path=path)


def write_data_file(path: Path, classes: int, train: Path, valid: Path, names: Path, backup: Path) -> None:
    atomic_write_text(path, f"classes = {classes}\ntrain = {train}\nvalid = {valid}\n"
                            f"names = {names}\nbackup = {backup}/\n")


# --------------------------------------------------------------------------- results


@dataclass
class SetSummary:
    """One converted ``<year>/<split>``: images listed (valid ones), boxes written, its list file."""

    name: str
    images: int
    objects: int
    list_file: Path
    missing_images: int = 0  # listed images without a file in JPEGImages/


@dataclass
class YoloConvertResult(ListsInvalid):
    out: Path
    convention: str  # "darknet" or "exact"
    classes: tuple[str, ...]
    sets: list[SetSummary]
    labels_written: int  # new or changed label files
    labels_unchanged: int  # parsed, identical content already on disk
    labels_cached: int  # skipped without parsing: annotation and label unchanged since last run
    invalid: list[InvalidFile]
    train_list: Path
    train_all_list: Path
    test_list: Path
    names_file: Path
    data_file: Path
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    missing_images: int = 0  # images the lists name that are not there (each counted once)
    missing_image_files: list[str] = field(default_factory=list)  # the first few of them

# --------------------------------------------------------------------------- worker


@dataclass(frozen=True)
class _Job:
    voc_dir: str
    labels_dir: str
    ids: tuple[str, ...]
    classes: tuple[str, ...]
    exact_pixels: bool
    include_difficult: bool
    fresh: bool  # labels_dir is a new staging folder: create files, nothing to compare with


@dataclass
class _Done:
    records: LabelRecords
    written: int
    unchanged: int
    invalid: list[InvalidFile]


def _write_labels(job: _Job, ids: list[str], texts: list[bytes]) -> tuple[list[list[int]], int]:
    """Write each label; ([not before], [not after]) its mtime, per label, and how many were already right."""
    if job.fresh:
        # New files in a staging folder: their mtimes fall between these two clock readings.
        not_before = time.time_ns() - CLOCK_SLACK_NS
        with open_folder(job.labels_dir) as folder:
            write_new_files([f"{i}.txt" for i in ids], texts, folder)
        return [[not_before] * len(ids), [time.time_ns()] * len(ids)], 0
    mtimes, unchanged = [], 0
    for image_id, data in zip(ids, texts):
        label = os.path.join(job.labels_dir, f"{image_id}.txt")
        ls = write_if_changed(label, data)
        if ls is None:
            unchanged += 1
            ls = os.stat(label)
        mtimes.append(ls.st_mtime_ns)
    return [mtimes, mtimes], unchanged


def _convert_chunk(job: _Job) -> _Done:
    # One phase at a time over the whole chunk: all reads, one bulk reading (voc_bulk: the batch
    # reader, then the checked reading of the files it leaves out), one vectorised conversion,
    # all writes.
    annotations = os.path.join(job.voc_dir, "Annotations") + os.sep
    if not os.path.isdir(annotations):
        return _Done(LabelRecords(), 0, 0, [InvalidFile(f"{annotations}{i}.xml", "file not found") for i in job.ids])
    with open_folder(annotations) as folder:
        datas, stats, errors = read_files([f"{i}.xml" for i in job.ids], folder)
    ids, invalid = list(job.ids), []
    if errors:
        for i, err in errors.items():
            reason = "file not found" if isinstance(err, FileNotFoundError) else f"cannot read ({err.strerror})"
            invalid.append(InvalidFile(f"{annotations}{ids[i]}.xml", reason))
        ids, datas, stats = ([x for i, x in enumerate(column) if i not in errors] for column in (ids, datas, stats))

    table = read_annotation_bytes(datas, [f"{annotations}{i}.xml" for i in ids], job.classes)
    invalid.extend(invalid_annotation(err) for err in table.invalid)
    counts, filenames, widths, heights = table.counts(), table.filenames, table.width, table.height
    class_ids, boxes, difficult = table.class_ids, table.boxes, table.difficult
    counts[list(table.errors)] = -1

    # One vectorised conversion for every kept box of the chunk, one text for all its labels.
    object_file = np.repeat(np.arange(len(ids)), np.maximum(counts, 0))
    keep = np.ones(len(class_ids), dtype=bool) if job.include_difficult else ~difficult
    kept_file = object_file[keep]
    text, line_ends = label_text(class_ids[keep], yolo_boxes(boxes[keep], widths[kept_file], heights[kept_file],
                                                            job.exact_pixels))
    kept = np.bincount(kept_file, minlength=len(ids))
    ends = np.concatenate([[0], line_ends])[np.cumsum(kept)].tolist()
    kept = kept.tolist()

    records = LabelRecords()
    valid = [i for i, n in enumerate(counts.tolist()) if n >= 0]
    records.ids = [ids[i] for i in valid]
    texts = [text[start:end] for start, end in zip([0] + ends[:-1], ends)]
    texts = [texts[i] for i in valid]
    written_when, unchanged = _write_labels(job, records.ids, texts)
    xml_stats = [stats[i] for i in valid]
    records.numbers = np.array([[s.st_mtime_ns for s in xml_stats], [s.st_size for s in xml_stats],
                                list(map(len, texts)), [kept[i] for i in valid], *written_when],
                               dtype=np.int64).reshape(COLUMNS, -1).T.copy()
    names, usual_names = [filenames[i] for i in valid], [f"{image_id}.jpg" for image_id in records.ids]
    if names != usual_names:  # a few files name their image otherwise
        for image_id, name, usual in zip(records.ids, names, usual_names):
            if name != usual and image_file_name(name, image_id) != usual:
                records.images[image_id] = name
    return _Done(records, len(records.ids) - unchanged, unchanged, invalid)


# --------------------------------------------------------------------------- layout


def _image_dir_for_lists(voc_dir: Path, out: Optional[Path]) -> tuple[Path, Path]:
    """(folder the lists name images in, labels folder) for one ``VOC<year>`` folder."""
    if out is None:
        return voc_dir / "JPEGImages", voc_dir / "labels"
    base = out / voc_dir.name
    images = base / "JPEGImages"
    real = (voc_dir / "JPEGImages").resolve()
    if images.is_symlink() or images.exists():
        if images.resolve() != real:
            raise VocliError(f"{images} exists and is not a link to {real}",
                             hint="remove it or choose another --out")
    else:
        base.mkdir(parents=True, exist_ok=True)
        try:
            os.symlink(real, images, target_is_directory=True)
        except OSError as err:
            raise VocliError(f"cannot link {images} -> {real} ({err.strerror})",
                             hint="convert without --out to write labels beside the images") from None
    return images, base / "labels"


def _list_text(image_prefix: str, ids: Sequence[str], records: LabelRecords) -> str:
    """A list file's text: each id's image path on a line (``<id>.jpg`` unless its record names another file)."""
    if not ids:
        return ""
    if records.images:
        return "".join(f"{image_prefix}{records.image(i)}\n" for i in ids)
    return image_prefix + f".jpg\n{image_prefix}".join(ids) + ".jpg\n"


def _combined(texts: Sequence[str], overlap: bool) -> str:
    """The lists' texts one after the other; with ``overlap``, each path once."""
    if not overlap:
        return "".join(texts)
    lines = dict.fromkeys(line for text in texts if text for line in text[:-1].split("\n"))
    return "".join(f"{line}\n" for line in lines)


def _write_list(path: Path, text: str) -> Path:
    atomic_write_text(path, text)
    return path


# --------------------------------------------------------------------------- entry point


def convert_yolo(
    root: str | os.PathLike | None = None,
    sets: str | Sequence[str] | None = None,
    out: str | os.PathLike | None = None,
    classes: Sequence[str] | str | os.PathLike | None = None,
    name: Optional[str] = None,
    exact_pixels: bool = False,
    include_difficult: bool = False,
    workers: Optional[int] = None,
    progress: Progress = None,
) -> YoloConvertResult:
    """Convert VOC sets under ``root`` to darknet/YOLO labels and lists (``vocli convert yolo``).

    ``sets``: ``"2007/train,2007/test"`` or a list (default: the standard VOC sets
    present, else every split found). ``classes``: names or a class-list file
    (default: the ``classes.txt`` the VOC folders carry, as ``VOCshapes`` does, else
    the 20 VOC classes); ``name`` names the ``.names``/``.data`` files (default
    ``voc``, the class file's stem, or the folder's year for its ``classes.txt``). Invalid annotations are listed in
    ``result.invalid`` and left out of every list; all others are converted.
    Label files whose annotation and label are unchanged since the last run with
    the same options are not parsed again.
    """
    started = time.perf_counter()
    root = Path(root).expanduser() if root is not None else data_root()
    devkit = devkit_dir(root)
    voc_sets = resolve_sets(root, sets)
    if classes is None:
        class_names, default_name = dataset_classes(voc_sets) or (VOC_CLASSES, "voc")
    elif isinstance(classes, (str, os.PathLike)):
        class_names, default_name = read_classes(classes), Path(classes).stem
    else:
        class_names, default_name = tuple(classes), "custom"
    name = name or default_name
    out_dir = Path(out).expanduser().resolve() if out is not None else devkit.parent.resolve()
    # The lists, .names and .data are ours to replace on every run, but never over an input
    # (``--out VOCdevkit/VOC2007/ImageSets/Main`` would write train.txt over the split list).
    planned = [out_dir / f"{vs.year}_{vs.split}.txt" for vs in voc_sets] + [
        out_dir / n for n in ("train.txt", "train.all.txt", "test.txt", f"{name}.names", f"{name}.data")]
    # (--classes X.names may be the .names it writes: the same names back, so it is no clash.)
    check_output_dir(out_dir, [vs.split_file for vs in voc_sets], planned, overwrite=True)
    workers = resolve_workers(workers)
    options = cache_options(class_names, exact_pixels, include_difficult)

    # Each VOC folder once, each id once, whatever the overlap between sets.
    folders: dict[Path, dict] = {}
    set_ids: list[tuple[VocSet, Path, list[str]]] = []
    bad_entries: list[InvalidFile] = []
    for vs in voc_sets:
        ids, bad = split_entries(vs.split_file)
        bad_entries += [InvalidFile(str(vs.split_file), f"entry {entry!r} {reason}") for entry, reason in bad]
        voc_dir = vs.dir.resolve()
        set_ids.append((vs, voc_dir, ids))
        if voc_dir not in folders:
            images, labels = _image_dir_for_lists(voc_dir, None if out is None else out_dir)
            for folder in (labels, labels.parent):  # a killed run's .<id>.txt.<pid>.tmp and staging folder
                remove_stale_temps(folder)
            folders[voc_dir] = {"images": images, "labels": labels, "ids": {},
                                "cache": load_cache(labels, options), "done": []}
        folders[voc_dir]["ids"].update(dict.fromkeys(ids))

    with contextlib.ExitStack() as staging:
        jobs, sizes, cached = [], [], 0
        for voc_dir, f in folders.items():
            # A first run fills a staging folder that becomes labels/ in one rename at the end.
            stage = staging.enter_context(staged_folder(f["labels"]))  # None: labels/ has files already
            f["write_to"] = stage or f["labels"]
            todo, still = [], []
            xml_prefix, label_prefix = f"{voc_dir}{os.sep}Annotations{os.sep}", f"{f['labels']}{os.sep}"
            cache, cache_rows = f["cache"], f["cache"].rows()
            known = cache.numbers.tolist()
            if not cache_rows:  # nothing known: every file to convert
                todo = list(f["ids"])
            else:
                for image_id in f["ids"]:
                    r = cache_rows.get(image_id)
                    if r is not None and still_valid(known[r], f"{xml_prefix}{image_id}.xml",
                                                      f"{label_prefix}{image_id}.txt"):
                        still.append(r)
                    else:
                        todo.append(image_id)
            f["done"] = [cache.select(still)]
            cached += len(still)
            for chunk in chunked(todo, workers):
                jobs.append(_Job(str(voc_dir), str(f["write_to"]), tuple(chunk), class_names,
                                 exact_pixels, include_difficult, stage is not None))
                sizes.append(len(chunk))

        written = unchanged = 0
        invalid: list[InvalidFile] = bad_entries
        for job, done in zip(jobs, run_chunks(_convert_chunk, jobs, workers, sizes, progress)):
            folders[Path(job.voc_dir)]["done"].append(done.records)
            written += done.written
            unchanged += done.unchanged
            invalid.extend(done.invalid)
        for f in folders.values():
            f["done"] = records = LabelRecords.join(f["done"])
            # Keep what earlier runs learnt about ids outside these sets; records are re-checked by stat anyway.
            outside = [r for r, i in enumerate(f["cache"].ids) if i not in f["ids"]]
            if outside:
                records = LabelRecords.join([f["cache"].select(outside), records])
            write_cache(f["write_to"] / CACHE_NAME, options, records)
            f["rows"] = f["done"].rows()
            f["objects"] = f["done"].numbers[:, 3]

    # Each list as its text; the combined lists join the texts, each path once if sets share images.
    summaries, train, train_all, test, val = [], [], [], [], []
    missing_files: dict[str, None] = {}
    for vs, voc_dir, ids in set_ids:
        f = folders[voc_dir]
        rows, done = f["rows"], f["done"]
        if len(rows) < len(f["ids"]):  # some annotations were invalid: they are left out
            ids = [i for i in ids if i in rows]
        text = _list_text(f"{f['images']}{os.sep}", ids, done)
        list_file = _write_list(out_dir / f"{vs.year}_{vs.split}.txt", text)
        at = np.fromiter(map(rows.__getitem__, ids), dtype=np.int64, count=len(ids))
        objects = int(f["objects"][at].sum())
        missing = _missing_images(f, ids, done)
        summaries.append(SetSummary(vs.name, len(ids), objects, list_file, len(missing)))
        for image in missing:
            missing_files.setdefault(image, None)
        train_all.append(text)
        (test if vs.split == "test" else val if vs.split == "val" else train).append(text)

    notes = []
    if test:
        valid_lists, train_lists = test, train + val
    elif val:
        # No test set: validate on val and keep it out of train, unless nothing else is left.
        valid_lists, train_lists = val, train or val
        notes.append("no test set converted: test.txt holds the val sets" +
                     ("" if train else ", which are also the only training sets"))
    else:
        valid_lists = train_lists = train
        notes.append("no test or val set converted: test.txt repeats the training images")
    # Sets that share ids (train and trainval, say) would list an image twice: once is enough.
    overlap = sum(len(ids) for _, _, ids in set_ids) > sum(len(f["ids"]) for f in folders.values())
    train_list = _write_list(out_dir / "train.txt", _combined(train_lists, overlap))
    train_all_list = _write_list(out_dir / "train.all.txt", _combined(train_all, overlap))
    test_list = _write_list(out_dir / "test.txt", _combined(valid_lists, overlap))
    names_file = out_dir / f"{name}.names"
    atomic_write_text(names_file, "".join(f"{c}\n" for c in class_names))
    data_file = out_dir / f"{name}.data"
    write_data_file(data_file, len(class_names), train_list, test_list, names_file, out_dir / "backup")

    return YoloConvertResult(
        out=out_dir, convention="exact" if exact_pixels else "darknet", classes=class_names,
        sets=summaries, labels_written=written, labels_unchanged=unchanged, labels_cached=cached,
        invalid=invalid, train_list=train_list, train_all_list=train_all_list, test_list=test_list,
        names_file=names_file, data_file=data_file, seconds=time.perf_counter() - started, notes=notes,
        missing_images=len(missing_files), missing_image_files=list(missing_files)[:MISSING_LISTED],
    )


MISSING_LISTED = 5  # missing images named in a result (the count covers them all)


def _missing_images(folder: dict, ids: Sequence[str], records: LabelRecords) -> list[str]:
    """The image paths, in list order, of ``ids`` whose file is not in the folder's JPEGImages/.

    The folder is listed once (one directory read, not a stat per image) and kept in ``folder``.
    """
    if "present" not in folder:
        try:
            folder["present"] = set(os.listdir(folder["images"]))
        except OSError:  # no JPEGImages folder at all: every image is missing
            folder["present"] = set()
    present = folder["present"]
    return [os.path.join(folder["images"], name) for name in map(records.image, ids) if name not in present]

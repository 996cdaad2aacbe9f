"""Is a fetched dataset complete? Tar checksums, split lists, annotations and images on disk.

Also keeps the small record of what `vocli fetch` put under a data root
(``<root>/.vocli-fetch.json``), which `verify` and `datasets` read.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from vocli.datasets import registry
from vocli.datasets.download import Progress, cached_digests, check_file, file_lock
from vocli.datasets.registry import DatasetSpec, FolderCount, RemoteFile, SplitCount
from vocli.datasets.voc import SPLITS, devkit_dir, read_split
from vocli.errors import DatasetNotFoundError
from vocli.paths import atomic_write_text, data_root, weights_dir

STATE_NAME = ".vocli-fetch.json"
MAX_EXAMPLES = 5


# --------------------------------------------------------------------------- fetch record


def load_state(root: Path) -> dict:
    try:
        state = json.loads((root / STATE_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def update_state(root: Path, name: str, record: Optional[dict]) -> None:
    """Set (or with ``None`` drop) one entry, read-modify-write under a lock."""
    path = root / STATE_NAME
    with file_lock(root / "vocli-fetch"):
        state = load_state(root)
        if record is None:
            state.pop(name, None)
        else:
            state[name] = record
        atomic_write_text(path, json.dumps(state, indent=1, sort_keys=True) + "\n")


def recorded_splits(record: dict) -> tuple[SplitCount, ...]:
    return tuple(SplitCount(v, s, int(n)) for v, s, n in record.get("splits", ()))


def file_location(spec: DatasetSpec, remote: RemoteFile, root: Path) -> Path:
    """Weights live in the weights folder of the data home; tars under the data root."""
    return (weights_dir() if spec.kind == "weights" else root) / remote.filename


# --------------------------------------------------------------------------- tree checks


@dataclass
class SplitCheck:
    """One split list and the files it names."""

    set: str  # "VOC2007/trainval"
    expected: Optional[int]
    listed: int
    missing_annotations: int = 0
    missing_images: int = 0
    examples: list[str] = field(default_factory=list)  # a few missing paths, relative to VOCdevkit
    ok: bool = True


def _count_files(folder: Path) -> int:
    try:
        with os.scandir(folder) as it:
            return sum(1 for e in it if e.is_file())
    except FileNotFoundError:
        return 0


def check_split(devkit: Path, split: SplitCount | tuple[str, str, Optional[int]], full: bool = True) -> SplitCheck:
    """Count the ids of a split list; with ``full``, also stat each id's XML and JPEG."""
    voc_dir, name, expected = (split.voc_dir, split.split, split.images) if isinstance(split, SplitCount) else split
    voc = devkit / voc_dir
    list_file = voc / "ImageSets" / "Main" / f"{name}.txt"
    if not list_file.is_file():
        return SplitCheck(f"{voc_dir}/{name}", expected, 0, examples=[f"{voc_dir}/ImageSets/Main/{name}.txt"], ok=False)
    ids = read_split(list_file)
    check = SplitCheck(f"{voc_dir}/{name}", expected, len(ids))
    if full:
        for image_id in ids:
            for folder, ext, attr in (("Annotations", "xml", "missing_annotations"), ("JPEGImages", "jpg", "missing_images")):
                if not (voc / folder / f"{image_id}.{ext}").is_file():
                    setattr(check, attr, getattr(check, attr) + 1)
                    if len(check.examples) < MAX_EXAMPLES:
                        check.examples.append(f"{voc_dir}/{folder}/{image_id}.{ext}")
    check.ok = (expected is None or len(ids) == expected) and not check.missing_annotations and not check.missing_images
    return check


def tree_complete(root: Path, splits: Sequence[SplitCount], folders: Sequence[FolderCount] = ()) -> bool:
    """Cheap check (list lengths and folder sizes, no per-file stat) used to skip re-extraction."""
    devkit = root / "VOCdevkit"
    if not splits:
        return False
    if not all(check_split(devkit, s, full=False).ok for s in splits):
        return False
    return all(_count_files(devkit / f.voc_dir / f.folder) >= f.files for f in folders)


# --------------------------------------------------------------------------- verify


@dataclass
class VerifyItem:
    name: str
    ok: bool
    tar: Optional[Path] = None
    tar_status: str = ""  # "ok", "absent", or what is wrong
    tree: Optional[Path] = None
    splits: list[SplitCheck] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


@dataclass
class VerifyResult:
    root: Path
    ok: bool
    items: list[VerifyItem]

    def summary(self) -> str:
        """One line naming what is wrong (for the CLI error)."""
        bad = [f"{i.name}: {i.problems[0]}" + (f" (+{len(i.problems) - 1} more)" if len(i.problems) > 1 else "")
               for i in self.items if not i.ok]
        return "; ".join(bad)


def _check_tar(item: VerifyItem, path: Path, remote: RemoteFile | None, required: bool, progress: Progress) -> None:
    item.tar = path
    if not path.exists():
        item.tar_status = "absent"
        if required:
            item.problems.append(f"{path} is missing")
        return
    size, md5, sha256 = (remote.size, remote.md5, remote.sha256) if remote else (None, None, None)
    ok, digests, reason = check_file(path, size, md5, sha256, use_cache=False, progress=progress)
    if not remote or not (size or md5 or sha256):
        item.tar_status = f"no published checksum; md5 {digests.get('md5')}"
    elif ok:
        item.tar_status = "ok"
    else:
        item.tar_status = reason
        item.problems.append(f"{path.name}: {reason}")


def _check_tree(item: VerifyItem, root: Path, splits: Sequence[SplitCount], folders: Sequence[FolderCount]) -> None:
    devkit = root / "VOCdevkit"
    item.tree = devkit / splits[0].voc_dir if splits else devkit
    for split in splits:
        check = check_split(devkit, split)
        item.splits.append(check)
        if check.listed == 0 and check.examples:
            item.problems.append(f"{check.examples[0]} is missing")
            continue
        if check.expected is not None and check.listed != check.expected:
            item.problems.append(f"{check.set} lists {check.listed} images, expected {check.expected}")
        missing = check.missing_annotations + check.missing_images
        if missing:
            item.problems.append(f"{check.set}: {check.missing_annotations} annotation(s) and "
                                 f"{check.missing_images} image(s) missing, e.g. {', '.join(check.examples[:3])}")
    for folder in folders:
        found = _count_files(devkit / folder.voc_dir / folder.folder)
        if found < folder.files:
            item.problems.append(f"{folder.voc_dir}/{folder.folder} holds {found} files, expected at least {folder.files}")


def _verify_spec(spec: DatasetSpec, root: Path, state: dict, progress: Progress) -> VerifyItem:
    item = VerifyItem(spec.name, ok=True)
    record = state.get(spec.name, {})
    if spec.kind == "generated":
        if not record:
            item.problems.append(f"not fetched under {root}")
        else:
            files = record.get("files", {})
            remote = next((RemoteFile(n, f.get("size"), (), f.get("md5"), f.get("sha256")) for n, f in files.items()), None)
            if remote:
                _check_tar(item, root / remote.filename, remote, required=False, progress=progress)
            _check_tree(item, root, recorded_splits(record), ())
    else:
        for remote in spec.files:
            _check_tar(item, file_location(spec, remote, root), remote, required=spec.kind == "weights", progress=progress)
        if spec.kind == "dataset":
            _check_tree(item, root, spec.splits, spec.folders)
    item.ok = not item.problems
    return item


def _verify_path(path: Path, root: Path, state: dict, progress: Progress) -> VerifyItem:
    item = VerifyItem(str(path), ok=True)
    if path.is_file():
        spec = registry.spec_for_filename(path.name)
        remote = next((f for f in spec.files if f.filename == path.name), None) if spec else None
        if remote is None:
            for record in state.values():
                f = record.get("files", {}).get(path.name)
                if f:
                    remote = RemoteFile(path.name, f.get("size"), (), f.get("md5"), f.get("sha256"))
        _check_tar(item, path, remote, required=True, progress=progress)
    elif path.is_dir():
        devkit = devkit_dir(path)
        known = {(s.voc_dir, s.split): s.images for spec in registry.all_specs() for s in spec.splits}
        for record in state.values():
            known.update({(s.voc_dir, s.split): s.images for s in recorded_splits(record)})
        splits = [SplitCount(v.name, s, known.get((v.name, s)))
                  for v in sorted(p for p in devkit.iterdir() if p.is_dir() and p.name.startswith("VOC"))
                  for s in SPLITS if (v / "ImageSets" / "Main" / f"{s}.txt").is_file()]
        if not splits:
            item.problems.append(f"{devkit}: no ImageSets/Main/<split>.txt lists found")
        _check_tree(item, devkit.parent, splits, ())
    else:
        item.problems.append(f"{path} does not exist")
    item.ok = not item.problems
    return item


def verify(names: Sequence[str] = (), root: str | os.PathLike | None = None, progress: Progress = None) -> VerifyResult:
    """Re-check tars (full checksum, no cache) and extracted trees (every listed id has its XML and JPEG).

    ``names``: registry names, tar paths or folders; empty means every dataset
    fetched under ``root`` or whose tree is there.
    """
    root = Path(root).expanduser() if root is not None else data_root()
    state = load_state(root)
    items: list[VerifyItem] = []
    targets = list(names) or _present_names(root, state)
    if not targets:
        raise DatasetNotFoundError(f"{root}: nothing fetched here to verify", hint="run `vocli fetch NAME` or pass --root")
    for name in targets:
        if registry.is_known(name):
            items.extend(_verify_spec(spec, root, state, progress) for spec in registry.expand([name]))
        elif os.sep in name or "/" in name or Path(name).exists():
            items.append(_verify_path(Path(name).expanduser(), root, state, progress))
        else:
            items.append(_verify_spec(registry.get_spec(name), root, state, progress))  # raises: unknown name
    return VerifyResult(root, all(i.ok for i in items), items)


def _present_names(root: Path, state: dict) -> list[str]:
    out = [n for n in state if registry.is_known(n)]
    for spec in registry.all_specs():
        if spec.kind == "dataset" and spec.name not in out and spec.splits:
            if (root / "VOCdevkit" / spec.splits[0].voc_dir / "ImageSets" / "Main" / f"{spec.splits[0].split}.txt").is_file():
                out.append(spec.name)
    return out


# --------------------------------------------------------------------------- list


@dataclass
class FileStatus:
    filename: str
    path: Path
    size: Optional[int]  # published size (None when unknown)
    present: bool
    verified: bool  # digests remembered from an earlier check match (no re-hashing here)


@dataclass
class DatasetStatus:
    name: str
    kind: str
    description: str
    files: list[FileStatus]
    extracted: bool
    tree: Optional[Path] = None
    members: list[str] = field(default_factory=list)


@dataclass
class DatasetList:
    root: Path
    weights_dir: Path
    datasets: list[DatasetStatus]


def _file_status(remote: RemoteFile, path: Path) -> FileStatus:
    present = path.is_file()
    verified = False
    if present and (remote.size is None or path.stat().st_size == remote.size):
        cached = cached_digests(path)
        checks = [(a, v) for a, v in (("md5", remote.md5), ("sha256", remote.sha256)) if v]
        verified = bool(cached) and all(cached.get(a) == v for a, v in checks)
    return FileStatus(remote.filename, path, remote.size, present, verified)


def list_datasets(root: str | os.PathLike | None = None) -> DatasetList:
    """Every known name: published files, whether present and verified, and whether extracted (no hashing)."""
    root = Path(root).expanduser() if root is not None else data_root()
    state = load_state(root)
    out = []
    for spec in registry.all_specs():
        files = [_file_status(f, file_location(spec, f, root)) for f in spec.files]
        extracted, tree = False, None
        if spec.kind == "dataset":
            extracted = tree_complete(root, spec.splits, spec.folders)
            tree = root / "VOCdevkit" / spec.splits[0].voc_dir
        elif spec.kind == "generated" and spec.name in state:
            record = state[spec.name]
            files = [_file_status(RemoteFile(n, f.get("size"), (), f.get("md5"), f.get("sha256")), root / n)
                     for n, f in record.get("files", {}).items()]
            extracted = tree_complete(root, recorded_splits(record))
            tree = root / "VOCdevkit" / "VOCshapes"
        elif spec.kind == "weights":
            extracted = False
        out.append(DatasetStatus(spec.name, spec.kind, spec.description, files, extracted, tree, list(spec.members)))
    return DatasetList(root, weights_dir(), out)


"""`vocli fetch`: names, URLs or local tars -> verified files under the data root, extracted safely.

Every source goes through one path: ``download_file`` (mirrors, resume,
checksum, atomic rename; local tars and the generated shapes tar come in as
``file://`` mirrors) then ``safe_extract`` (checked members, temp folder,
merge). What was fetched is recorded in ``<root>/.vocli-fetch.json`` so a
second run skips finished work without re-hashing or re-extracting.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional, Sequence

from vocli.datasets import registry
from vocli.datasets.download import (DownloadConfig, MirrorAttempt, Progress, ProgressEvent, check_url,
                                     download_file, file_lock, hash_file, sidecar_path)
from vocli.datasets.extract import pack_tree, safe_extract
from vocli.datasets.registry import DatasetSpec, FolderCount, RemoteFile, SplitCount
from vocli.datasets.verify import check_split, load_state, recorded_splits, tree_complete, update_state
from vocli.datasets.voc import SPLITS, read_split
from vocli.errors import DatasetNotFoundError, VocliError
from vocli.paths import check_free_space, data_root, weights_dir

TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")


@dataclass
class FetchedFile:
    filename: str
    path: Optional[Path]  # None once --delete-tar removed it
    size: int
    md5: Optional[str]
    sha256: Optional[str]
    source: Optional[str]  # the URL that delivered it; None when it was already here
    skipped: bool  # already present and verified (or already extracted)
    bytes_received: int
    resumed_from: int
    attempts: list[MirrorAttempt] = field(default_factory=list)
    extracted: bool = False
    members: int = 0
    deleted: bool = False


@dataclass
class FetchedItem:
    name: str
    kind: str  # "dataset" | "weights" | "generated" | "url" | "tar"
    files: list[FetchedFile]
    tree: Optional[Path] = None  # the extracted VOC<year> folder, when there is one
    splits: dict[str, int] = field(default_factory=dict)  # "VOC2007/trainval" -> images listed
    replaced: Optional[str] = None  # what an extraction replaced, said in words (a shapes set of other parameters)


@dataclass
class FetchResult:
    root: Path
    items: list[FetchedItem]
    seconds: float
    bytes_received: int


@dataclass
class _Job:
    name: str
    kind: str
    remote: RemoteFile
    urls: list[str]
    dest: Path
    splits: tuple[SplitCount, ...] = ()
    folders: tuple[FolderCount, ...] = ()
    replace: tuple[str, ...] = ()  # folders (relative to root) replaced, not merged, on extraction
    params: dict = field(default_factory=dict)


def user_mirrors(mirrors: Sequence[str] = ()) -> tuple[str, ...]:
    """``--mirror`` values, then ``$VOCLI_MIRRORS`` (comma or space separated); tried before built-ins."""
    env = [m for m in re.split(r"[,\s]+", os.environ.get("VOCLI_MIRRORS", "")) if m]
    out: list[str] = []
    for base in (*mirrors, *env):
        if base not in out:
            out.append(check_url(base))
    return tuple(out)


def _looks_like_url(name: str) -> bool:
    return "://" in name


def _looks_like_tar(name: str) -> bool:
    return name.lower().endswith(TAR_SUFFIXES) or os.sep in name or "/" in name


def _tar_job(path: Path, root: Path, names: list[str], md5: Optional[str], sha256: Optional[str]) -> _Job:
    """Import a tar the user already has: the registry's checksum when we know the file."""
    path = path.expanduser().resolve()
    if not path.is_file():
        raise DatasetNotFoundError(f"{path}: tar file not found", hint="check the --tar path")
    spec = registry.expand(names)[0] if names else registry.spec_for_filename(path.name)
    if spec is not None and spec.files:
        remote = spec.files[0]
        return _Job(spec.name, spec.kind, remote, [path.as_uri()], _dest(spec, remote, root), spec.splits, spec.folders)
    remote = RemoteFile(path.name, None, (), md5=md5, sha256=sha256)
    return _Job(path.name, "tar", remote, [path.as_uri()], root / path.name)


def _url_job(url: str, root: Path, mirrors: tuple[str, ...], md5: Optional[str], sha256: Optional[str]) -> _Job:
    check_url(url)
    filename = Path(urllib.parse.unquote(urllib.parse.urlsplit(url).path)).name
    if not filename:
        raise VocliError(f"{url}: the URL names no file", hint="give the URL of the .tar itself")
    spec = registry.spec_for_filename(filename)
    if spec is not None:
        remote = next(f for f in spec.files if f.filename == filename)
        urls = [url] + [u for u in remote.urls(mirrors) if u != url]
        return _Job(spec.name, spec.kind, remote, urls, _dest(spec, remote, root), spec.splits, spec.folders)
    if not (md5 or sha256):
        raise VocliError(f"{url}: unknown file, refusing to fetch it unchecked",
                         hint="pass --md5 HEX or --sha256 HEX with the URL")
    return _Job(filename, "url", RemoteFile(filename, None, (), md5=md5, sha256=sha256), [url], root / filename)


def _dest(spec: DatasetSpec, remote: RemoteFile, root: Path) -> Path:
    return (weights_dir() if spec.kind == "weights" else root) / remote.filename


def _plan(names: Sequence[str], root: Path, mirrors: tuple[str, ...], md5: Optional[str], sha256: Optional[str],
          tar: Optional[str | os.PathLike]) -> list[_Job | DatasetSpec]:
    """Jobs (one file each) in order; the generated shapes set stays a spec, built at run time."""
    names = [n for n in names if n and n.strip()]
    if tar is not None:
        if len(names) > 1 or any(not registry.is_known(n) for n in names):
            raise VocliError("--tar imports one file: give at most one dataset name with it",
                             hint="e.g. vocli fetch voc2007 --tar ~/Downloads/VOCtrainval_06-Nov-2007.tar")
        jobs: list = [_tar_job(Path(tar), root, names, md5, sha256)]
    else:
        if not names:
            raise VocliError("nothing to fetch", hint=f"give a name ({', '.join(registry.names())}), a URL or a tar path")
        jobs = []
        for name in names:
            if _looks_like_url(name):
                jobs.append(_url_job(name, root, mirrors, md5, sha256))
            elif not registry.is_known(name) and (Path(name).expanduser().is_file() or _looks_like_tar(name)):
                jobs.append(_tar_job(Path(name), root, [], md5, sha256))
            else:
                for spec in registry.expand([name]):
                    if spec.kind == "generated":
                        jobs.append(spec)
                        continue
                    for remote in spec.files:
                        jobs.append(_Job(spec.name, spec.kind, remote, remote.urls(mirrors), _dest(spec, remote, root),
                                         spec.splits, spec.folders))
    if md5 or sha256:
        real = [j for j in jobs if isinstance(j, _Job)]
        if len(real) != 1:
            raise VocliError("--md5/--sha256 apply to exactly one file", hint="fetch one name, URL or tar at a time")
        job = real[0]
        if (md5 and md5.lower() != (job.remote.md5 or "").lower()) or (sha256 and sha256.lower() != (job.remote.sha256 or "").lower()):
            job.remote = replace(job.remote, md5=md5 or None, sha256=sha256 or None, size=None)
    return jobs


def fetch(names: Sequence[str] = (), root: str | os.PathLike | None = None, mirrors: Sequence[str] = (),
          md5: Optional[str] = None, sha256: Optional[str] = None, tar: str | os.PathLike | None = None,
          force: bool = False, extract: bool = True, keep_tar: bool = True, progress: Progress = None,
          images: int = 1000, size: int = 256, seed: int = 0, config: Optional[DownloadConfig] = None) -> FetchResult:
    """Fetch datasets or weights by name (``voc2007``, ``voc0712``, ``shapes``, ``yolov3.weights``), URL or tar path.

    Datasets are extracted under ``root`` (default ``$VOCLI_HOME/data``) as
    ``VOCdevkit/VOC<year>``; weights go to ``vocli.paths.weights_dir()``.
    ``images``/``size``/``seed`` shape the generated ``shapes`` set.
    Raises ``DownloadError`` (every mirror listed), ``ChecksumMismatch`` or ``UnsafeArchiveError``.
    """
    started = time.perf_counter()
    root = (Path(root).expanduser() if root is not None else data_root()).resolve()
    root.mkdir(parents=True, exist_ok=True)
    jobs = _plan(names, root, user_mirrors(mirrors), md5, sha256, tar)
    items: list[FetchedItem] = []
    for job in jobs:
        if isinstance(job, DatasetSpec):
            items.append(_fetch_shapes(root, images, size, seed, force, extract, keep_tar, config, progress))
        else:
            items.append(_run(job, root, force, extract, keep_tar, config, progress))
    received = sum(f.bytes_received for i in items for f in i.files)
    return FetchResult(root, items, time.perf_counter() - started, received)


def _extracted_already(job: _Job, root: Path, record: dict) -> bool:
    done = record.get("extracted", {}).get(job.remote.filename)
    if not isinstance(done, dict) or not done:
        return False
    expected = {a: v.lower() for a, v in (("md5", job.remote.md5), ("sha256", job.remote.sha256)) if v}
    if any(done.get(a) != v for a, v in expected.items()):
        return False
    if job.splits:
        return tree_complete(root, job.splits, job.folders)
    return bool(record.get("top_level")) and all((root / t).exists() for t in record["top_level"])


def _split_counts(root: Path, splits: Sequence[SplitCount]) -> dict[str, int]:
    return {f"{s.voc_dir}/{s.split}": check_split(root / "VOCdevkit", s, full=False).listed for s in splits}


def _run(job: _Job, root: Path, force: bool, extract: bool, keep_tar: bool,
         config: Optional[DownloadConfig], progress: Progress) -> FetchedItem:
    extractable = extract and job.kind != "weights"
    tree = root / "VOCdevkit" / job.splits[0].voc_dir if job.splits else None
    if extractable and not force and _extracted_already(job, root, load_state(root).get(job.name, {})):
        present = job.dest if job.dest.is_file() else None
        file = FetchedFile(job.remote.filename, present, job.remote.size or 0, job.remote.md5, job.remote.sha256,
                           None, skipped=True, bytes_received=0, resumed_from=0, extracted=True)
        return FetchedItem(job.name, job.kind, [file], tree, _split_counts(root, job.splits))
    _check_room(job)
    result = download_file(job.urls, job.dest, size=job.remote.size, md5=job.remote.md5, sha256=job.remote.sha256,
                           force=force, config=config, progress=progress)
    file = FetchedFile(job.remote.filename, result.path, result.size, result.digests.get("md5"),
                       result.digests.get("sha256"), result.url, result.skipped, result.bytes_received,
                       result.resumed_from, result.attempts)
    item = FetchedItem(job.name, job.kind, [file], tree)
    if job.kind == "weights":
        return item
    record_file = {"size": result.size, **result.digests}
    if not extractable:
        _record(root, job, {"files": {job.remote.filename: record_file}})
        return item
    with file_lock(root / "vocli-extract", progress):
        record = load_state(root).get(job.name, {})
        if force or not _extracted_already(job, root, record):
            extracted = safe_extract(job.dest, root, progress, replace=job.replace)
            file.members = extracted.members
            _record(root, job, {"files": {job.remote.filename: record_file},
                                "extracted": {job.remote.filename: result.digests},
                                "top_level": extracted.top_level})
    file.extracted = True
    if job.splits:
        item.splits = _split_counts(root, job.splits)
    if not keep_tar:
        job.dest.unlink(missing_ok=True)
        sidecar_path(job.dest).unlink(missing_ok=True)
        file.path, file.deleted = None, True
    return item


def _check_room(job: _Job) -> None:
    """Refuse, before the first byte, a download of known size that cannot fit beside ``job.dest``."""
    if not job.remote.size or job.dest.exists():
        return
    part = job.dest.with_name(job.dest.name + ".part")
    have = part.stat().st_size if part.is_file() else 0
    check_free_space(job.dest, job.remote.size - have)


def _record(root: Path, job: _Job, fields: dict) -> None:
    record = {"kind": job.kind, "splits": [[s.voc_dir, s.split, s.images] for s in job.splits], **fields}
    if job.params:
        record["params"] = job.params
    if not job.kind == "generated":
        record["source"] = job.urls[0]
    update_state(root, job.name, record)


# --------------------------------------------------------------------------- generated shapes


def _fetch_shapes(root: Path, images: int, size: int, seed: int, force: bool, extract: bool, keep_tar: bool,
                  config: Optional[DownloadConfig], progress: Progress) -> FetchedItem:
    """Generate the shapes tree, pack it like an official VOC tar, then fetch that tar like any download."""
    if images < 1 or size < 32:
        raise VocliError(f"shapes: --images must be >= 1 and --size >= 32 (got {images}, {size})")
    params = {"images": images, "size": size, "seed": seed}
    record = load_state(root).get("shapes", {})
    if not force and extract and record.get("params") == params:
        job = _shapes_job(root, record, params, tar_uri=None)
        if _extracted_already(job, root, record):
            return _run(job, root, False, True, keep_tar, config, progress)
    from vocli.datasets.shapes import generate_shapes

    staging = Path(tempfile.mkdtemp(prefix=".vocli-shapes-", dir=root))
    try:
        if progress:
            progress(ProgressEvent("generate", "shapes", 0, images, message=f"generating {images} images"))
        generate_shapes(staging, images=images, size=size, seed=seed)
        tar_path = pack_tree(staging, "VOCdevkit", staging / registry.SHAPES_TAR)
        digests = hash_file(tar_path, ("md5", "sha256"))
        voc = staging / "VOCdevkit" / "VOCshapes"
        splits = [["VOCshapes", s, len(read_split(voc / "ImageSets" / "Main" / f"{s}.txt"))]
                  for s in SPLITS if (voc / "ImageSets" / "Main" / f"{s}.txt").is_file()]
        new_record = {"files": {registry.SHAPES_TAR: {"size": tar_path.stat().st_size, **digests}}, "splits": splits}
        job = _shapes_job(root, new_record, params, tar_uri=tar_path.as_uri())
        item = _run(job, root, force, extract, keep_tar, config, progress)
        for file in item.files:
            file.source = f"generated (images={images}, size={size}, seed={seed})"
        old = record.get("params")
        if extract and old and old != params and (root / "VOCdevkit" / "VOCshapes").is_dir():
            was = ", ".join(f"{k}={old[k]}" for k in params if k in old)
            item.replaced = f"replaced the shapes set generated with {was} by this one of {images} images " \
                            f"(size {size}, seed {seed})"
        return item
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _shapes_job(root: Path, record: dict, params: dict, tar_uri: Optional[str]) -> _Job:
    info = record.get("files", {}).get(registry.SHAPES_TAR, {})
    remote = RemoteFile(registry.SHAPES_TAR, info.get("size"), (), md5=info.get("md5"), sha256=info.get("sha256"))
    return _Job("shapes", "generated", remote, [tar_uri] if tar_uri else [], root / registry.SHAPES_TAR,
                recorded_splits(record), (), replace=("VOCdevkit/VOCshapes",), params=params)

"""Safe tar extraction (and the deterministic packer used for the generated shapes tar).

Every member is checked before anything is written: no absolute paths, no
``..``, no links leading outside the target or writes through a link, no
devices, FIFOs or other special files. The archive is then extracted with
tarfile's ``data`` filter (a second line of defence) into a temporary folder
beside the destination and merged into place, so an interrupted extraction
leaves no half-written tree at the final path, and two tars sharing a folder
(VOC2007 trainval and test both fill ``VOCdevkit/VOC2007``) merge.
"""

from __future__ import annotations

import errno
import lzma
import os
import posixpath
import re
import shutil
import tarfile
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from vocli.datasets.download import Progress, ProgressEvent
from vocli.errors import UnsafeArchiveError, VocliError
from vocli.paths import atomic_path, free_bytes, write_error

_DRIVE = re.compile(r"^[A-Za-z]:")
#: What a damaged or cut archive raises while it is read (gzip ends early: EOFError; bad deflate: zlib.error).
_DAMAGED = (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError)
#: Timestamp stamped on every member of a packed tar, so the same tree packs to the same bytes.
PACK_MTIME = 1_700_000_000


@dataclass
class ExtractResult:
    dest: Path
    members: int
    files: int
    bytes: int
    top_level: list[str] = field(default_factory=list)  # first path components, e.g. ["VOCdevkit"]


def _one_line(err: BaseException, limit: int = 200) -> str:
    """An error's text on one line (tarfile lists every method it tried, one per line)."""
    text = " ".join(str(err).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _unsafe(tar_path: Path, member: str, why: str) -> UnsafeArchiveError:
    return UnsafeArchiveError(
        f"{tar_path}: refusing to extract {member!r}: {why}",
        hint="the archive is damaged or malicious; nothing was extracted",
    )


def _escapes(path: str) -> bool:
    """True when a normalised archive-relative path climbs out of the root."""
    return path == ".." or path.startswith("../")


#: Symlink hops followed when resolving one path (Linux gives up at 40 too).
_MAX_HOPS = 40


def _resolve(path: str, symlinks: dict[str, str]) -> str | None:
    """Where an archive-relative path lands once the archive's symlinks are followed.

    Resolves one component at a time, as the OS does, so ``up/..`` with ``up -> ..`` climbs
    twice. None when the path leaves the root, meets an absolute link, or loops.
    """
    parts: list[str] = []
    pending = path.split("/")
    hops = 0
    while pending:
        part = pending.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                return None
            parts.pop()
            continue
        parts.append(part)
        target = symlinks.get("/".join(parts))
        if target is None:
            continue
        hops += 1
        if hops > _MAX_HOPS or target.startswith(("/", "\\")) or _DRIVE.match(target):
            return None
        parts.pop()  # a link's target is relative to the folder holding it
        pending = target.split("/") + pending
    return "/".join(parts)


def check_members(tar_path: Path, members: list[tarfile.TarInfo]) -> None:
    """Raise ``UnsafeArchiveError`` for the first member that could write outside the target.

    Complete on its own (Pythons before 3.9.17 / 3.10.12 / 3.11.4 have no ``data`` filter):
    every link target is resolved through all of the archive's symlinks, wherever in the
    archive they come, so a chain such as ``a/up -> ..`` then ``a/y -> up/..`` is caught.
    """
    symlinks = {posixpath.normpath(m.name): m.linkname for m in members if m.issym()}
    links: set[str] = set()
    for m in members:
        name = m.name
        if name.startswith(("/", "\\")) or _DRIVE.match(name):
            raise _unsafe(tar_path, name, "absolute path")
        if ".." in re.split(r"[/\\]", name):
            raise _unsafe(tar_path, name, "'..' in the path")
        norm = posixpath.normpath(name)
        if _escapes(norm):
            raise _unsafe(tar_path, name, "path leaves the target folder")
        parents = norm.split("/")
        for i in range(1, len(parents)):
            if "/".join(parents[:i]) in links or "/".join(parents[:i]) in symlinks:
                raise _unsafe(tar_path, name, f"writes through the link {'/'.join(parents[:i])!r}")
        if m.issym():
            target = m.linkname
            if target.startswith(("/", "\\")) or _DRIVE.match(target):
                raise _unsafe(tar_path, name, f"symlink to the absolute path {target!r}")
            if _resolve(posixpath.join(posixpath.dirname(norm), target), symlinks) is None:
                raise _unsafe(tar_path, name, f"symlink to {target!r} points outside the target folder")
            links.add(norm)
        elif m.islnk():
            target = m.linkname
            if (target.startswith(("/", "\\")) or _DRIVE.match(target) or _escapes(posixpath.normpath(target))
                    or _resolve(target, symlinks) is None):
                raise _unsafe(tar_path, name, f"hard link to {target!r} outside the target folder")
            links.add(norm)
        elif not (m.isfile() or m.isdir()):
            kind = "device" if (m.ischr() or m.isblk()) else "FIFO" if m.isfifo() else "special file"
            raise _unsafe(tar_path, name, f"{kind} entries are not allowed")


#: Space kept free beyond the members' bytes (file system blocks, folders, the state file).
FREE_SPACE_MARGIN = 16 * 1024 * 1024


def _vocli_owned(norm: str, tar_path: Path, dest: Path) -> str | None:
    """Why writing archive path ``norm`` would touch one of vocli's own files under ``dest``; None if not."""
    parts = norm.split("/")
    if any(p.startswith(".vocli") for p in parts):
        return "names one of vocli's own files (.vocli*)"
    if len(parts) == 1:
        top = parts[0]
        if top.startswith(".") and top.endswith((".lock", ".verified.json")):
            return "names one of vocli's lock or checksum files"
        if top.endswith(".part"):
            return "names a download in progress (.part)"
        if tar_path.parent.resolve() == dest.resolve() and top in (tar_path.name, f".{tar_path.name}.lock"):
            return "would replace the archive being extracted"
    return None


def check_archive_end(tar_path: Path, tar: tarfile.TarFile) -> None:
    """Raise unless the archive ends with tar's end-of-archive marker (two zero blocks) and, when
    compressed, a complete stream: a tar cut short at a member boundary is not imported."""
    fileobj = tar.fileobj
    cut = VocliError(f"{tar_path}: the archive is cut short (no end-of-archive marker after its last member)",
                     hint="the download or copy is incomplete; fetch it again with --force")
    try:
        fileobj.seek(tar.offset)
        marker = fileobj.read(2 * tarfile.BLOCKSIZE)
        while fileobj.read(1 << 16):  # the rest (padding): a compressed stream checks its trailer at the end
            pass
    except (*_DAMAGED, OSError, ValueError) as err:
        raise VocliError(f"{tar_path}: the archive is cut short or damaged ({type(err).__name__}: {err})",
                         hint="the download or copy is incomplete; fetch it again with --force") from None
    except Exception as err:  # noqa: BLE001 - zlib/lzma/bz2 errors of a damaged stream
        raise VocliError(f"{tar_path}: damaged compressed stream ({type(err).__name__})",
                         hint="fetch it again with --force") from None
    if len(marker) < 2 * tarfile.BLOCKSIZE or marker.count(0) != len(marker):
        raise cut


def _check_merge(tar_path: Path, members: list[tarfile.TarInfo], dest: Path, replace: tuple[str, ...]) -> None:
    """Raise before anything is written when a member would meet a file where it needs a folder, or
    a folder where it brings a file (the conflicts ``_merge`` would otherwise meet half way)."""
    owned = tuple(posixpath.normpath(r) + "/" for r in replace)
    checked: set[str] = set()
    # A folder the archive owns replaces what is there only when that is a folder: a file at its
    # place, or on its way, would stop the final move half way.
    for rel in owned:
        parts = rel.rstrip("/").split("/")
        for i in range(1, len(parts) + 1):
            where = dest.joinpath(*parts[:i])
            if (where.exists() or where.is_symlink()) and not where.is_dir():
                raise VocliError(f"{where}: the archive {tar_path.name} holds a folder there but a file is in the way",
                                 hint="move it away or fetch into another --root; nothing was extracted")
    for m in members:
        norm = posixpath.normpath(m.name)
        if norm == "." or (norm + "/").startswith(owned):
            continue
        parts = norm.split("/")
        for i in range(1, len(parts)):  # every folder on the way must be a folder (or absent)
            parent = "/".join(parts[:i])
            if parent in checked:
                continue
            checked.add(parent)
            where = dest / parent
            if (where.exists() or where.is_symlink()) and not where.is_dir():
                raise VocliError(f"{where}: the archive {tar_path.name} holds a folder there but a file is in the way",
                                 hint="move it away or fetch into another --root; nothing was extracted")
        where = dest / norm
        if m.isdir():
            if (where.exists() or where.is_symlink()) and not where.is_dir():
                raise VocliError(f"{where}: the archive {tar_path.name} holds a folder there but a file is in the way",
                                 hint="move it away or fetch into another --root; nothing was extracted")
        elif where.is_dir():
            raise VocliError(f"{where}: the archive {tar_path.name} holds a file there but a folder is in the way",
                             hint="move it away or fetch into another --root; nothing was extracted")


def _check_space(tar_path: Path, members: list[tarfile.TarInfo], dest: Path) -> int:
    """The members' total size; raise when ``dest``'s file system has less free space than that."""
    total = sum(m.size for m in members if m.isfile())
    free = free_bytes(dest)
    if free is not None and total + FREE_SPACE_MARGIN > free:
        raise VocliError(f"{tar_path}: its members hold {total:,} bytes but {dest} has {free:,} bytes free "
                         f"(needs {total + FREE_SPACE_MARGIN - free:,} more)",
                         hint="free some space or fetch into another --root; nothing was extracted")
    return total


def _merge(src: Path, dst: Path) -> None:
    """Move ``src``'s contents into ``dst``: whole subtrees in one rename where ``dst`` lacks them."""
    # Folders already in ``dst`` may be the user's symlinks to another disk; they are followed.
    for entry in sorted(src.iterdir()):
        target = dst / entry.name
        entry_is_dir = entry.is_dir() and not entry.is_symlink()
        if entry_is_dir and target.is_dir():
            _merge(entry, target)
            continue
        if target.is_dir() or (entry_is_dir and (target.exists() or target.is_symlink())):
            raise VocliError(f"{target}: the archive holds a {'folder' if entry_is_dir else 'file'} there "
                             f"but a {'folder' if target.is_dir() else 'file'} is in the way",
                             hint="move it away or fetch into another --root")
        try:
            os.replace(entry, target)
        except OSError as err:
            if err.errno != errno.EXDEV:
                raise
            shutil.move(os.fspath(entry), os.fspath(target))  # target folder lives on another disk


def safe_extract(tar_path: str | os.PathLike, dest: str | os.PathLike, progress: Progress = None,
                 replace: tuple[str, ...] = ()) -> ExtractResult:
    """Extract ``tar_path`` under ``dest`` (created if needed), merging with what is there.

    ``replace``: folders (relative to ``dest``) the archive owns outright; an
    old copy is removed just before the new one moves in instead of merged.
    """
    tar_path, dest = Path(tar_path), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    try:
        tar = tarfile.open(tar_path, "r:*")
    except (*_DAMAGED, OSError) as err:
        raise VocliError(f"{tar_path}: not a readable tar archive ({_one_line(err)})", hint="re-fetch it with --force") from None
    tmp = Path(tempfile.mkdtemp(prefix=".vocli-extract-", dir=dest))
    try:
        with tar:
            try:
                members = tar.getmembers()
            except _DAMAGED as err:
                raise VocliError(f"{tar_path}: damaged tar archive ({_one_line(err)})", hint="re-fetch it with --force") from None
            check_members(tar_path, members)
            for m in members:
                why = _vocli_owned(posixpath.normpath(m.name), tar_path, dest)
                if why is not None:
                    raise _unsafe(tar_path, m.name, why)
            _check_merge(tar_path, members, dest, replace)
            _check_space(tar_path, members, dest)
            use_filter = hasattr(tarfile, "data_filter")
            files = size = 0
            for i, member in enumerate(members, start=1):
                try:
                    if use_filter:
                        tar.extract(member, tmp, set_attrs=not member.isdir(), filter="data")
                    else:  # pragma: no cover - Pythons without extraction filters rely on check_members
                        tar.extract(member, tmp, set_attrs=not member.isdir())
                except tarfile.FilterError as err:
                    raise _unsafe(tar_path, member.name, str(err)) from None
                except _DAMAGED as err:
                    raise VocliError(f"{tar_path}: damaged tar member {member.name!r} ({_one_line(err)})",
                                     hint="re-fetch it with --force") from None
                except OSError as err:  # disk full or read-only: one line naming the place (tmp is removed)
                    failure = write_error(dest / member.name, err, creating=True)
                    if failure is None:
                        raise
                    raise failure from None
                if member.isfile():
                    files += 1
                    size += member.size
                if progress and (i % 500 == 0 or i == len(members)):
                    progress(ProgressEvent("extract", tar_path.name, i, len(members)))
            # Checked after the members (the stream reads on forward, no second decompression);
            # nothing has reached ``dest`` yet.
            check_archive_end(tar_path, tar)
        top = sorted({posixpath.normpath(m.name).split("/")[0] for m in members} - {"."})
        for rel in replace:
            if (tmp / rel).is_dir() and (dest / rel).is_dir():
                shutil.rmtree(dest / rel)
        _merge(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return ExtractResult(dest, len(members), files, size, top)


def pack_tree(root: str | os.PathLike, folder: str, tar_path: str | os.PathLike) -> Path:
    """Write ``root/folder`` into an uncompressed tar (members named ``folder/...``), byte-for-byte reproducible.

    Members are sorted, owned by 0:0 and stamped ``PACK_MTIME``, so the same
    tree always gives the same md5.
    """
    root, tar_path = Path(root), Path(tar_path)
    base = root / folder
    if not base.is_dir():
        raise VocliError(f"{base}: nothing to pack (folder missing)")

    def info(path: Path, arcname: str) -> tarfile.TarInfo:
        ti = tarfile.TarInfo(arcname)
        ti.mtime = PACK_MTIME
        ti.uid = ti.gid = 0
        ti.uname = ti.gname = ""
        if path.is_dir():
            ti.type, ti.mode = tarfile.DIRTYPE, 0o755
        else:
            ti.type, ti.mode, ti.size = tarfile.REGTYPE, 0o644, path.stat().st_size
        return ti

    paths = [base, *sorted(base.rglob("*"), key=lambda p: p.relative_to(root).as_posix())]
    with atomic_path(tar_path) as tmp:
        with tarfile.open(tmp, "w", format=tarfile.GNU_FORMAT) as tar:
            for path in paths:
                if path.is_symlink() or not (path.is_dir() or path.is_file()):
                    continue
                ti = info(path, path.relative_to(root).as_posix())
                if ti.isdir():
                    tar.addfile(ti)
                else:
                    with open(path, "rb") as f:
                        tar.addfile(ti, f)
    return tar_path

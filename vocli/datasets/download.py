"""Resumable, checksummed, mirror-aware downloads.

A file is streamed to ``<name>.part`` beside its destination, hashed while it
streams (after a resume the bytes already on disk are hashed first, never
fetched again), checked for size and checksum, then renamed into place. Each
mirror gets a few retries with backoff for drops, timeouts and 5xx answers; a
wrong checksum moves on to the next mirror. A lock file keeps two processes
from writing the same ``.part``. Once a file has been verified its digests are
remembered beside it, keyed by size and mtime, so the next run skips it
without re-reading gigabytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import queue
import re
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional

from vocli.errors import ChecksumMismatch, DownloadError, VocliError
from vocli.paths import atomic_write_text

try:  # POSIX advisory locks; elsewhere downloads simply run unlocked.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

ALLOWED_SCHEMES = ("http", "https", "file")
RETRYABLE_STATUS = {408, 425, 429, 500, 502, 503, 504}


@dataclass(frozen=True)
class ProgressEvent:
    """What the library reports while it works. ``done``/``total`` are absolute (bytes or items)."""

    stage: str  # "lock" | "hash" | "download" | "retry" | "mirror" | "extract" | "generate" | "pack"
    label: str
    done: int = 0
    total: Optional[int] = None
    message: str = ""


Progress = Optional[Callable[[ProgressEvent], None]]


@dataclass
class DownloadConfig:
    """Network knobs. ``retries`` counts consecutive tries without new bytes, per mirror."""

    connect_timeout: float = 15.0
    read_timeout: float = 60.0
    retries: int = 5
    backoff: float = 1.0
    backoff_max: float = 30.0
    chunk_size: int = 1 << 20


@dataclass
class MirrorAttempt:
    """One mirror tried: ``reason`` says why it failed (empty when it delivered)."""

    url: str
    ok: bool
    reason: str = ""
    tries: int = 0
    bytes_received: int = 0


@dataclass
class DownloadResult:
    path: Path
    url: Optional[str]  # None when the file was already present and verified
    size: int
    digests: dict[str, str]  # algorithm -> hex digest ("md5", "sha256")
    skipped: bool
    bytes_received: int  # body bytes read from the network (all mirrors, all tries)
    resumed_from: int  # bytes of an earlier .part reused instead of fetched
    attempts: list[MirrorAttempt] = field(default_factory=list)


def check_url(url: str) -> str:
    """Accept only http(s) and file URLs; anything else is a usage error."""
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        raise VocliError(f"unsupported URL {url!r}", hint="only http://, https:// and file:// URLs are fetched")
    return url


def file_url_path(url: str) -> Path:
    return Path(urllib.request.url2pathname(urllib.parse.urlsplit(url).path))


# --------------------------------------------------------------------------- checksums


class _Hasher:
    """Hashes chunks on a background thread (hashlib releases the GIL), overlapping network reads."""

    def __init__(self, algorithms: tuple[str, ...]):
        self._hashes = {a: hashlib.new(a) for a in algorithms}
        self._queue: queue.Queue = queue.Queue(maxsize=32)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (chunk := self._queue.get()) is not None:
            for h in self._hashes.values():
                h.update(chunk)

    def update(self, chunk: bytes) -> None:
        self._queue.put(chunk)

    def hexdigests(self) -> dict[str, str]:
        self._queue.put(None)
        self._thread.join()
        return {a: h.hexdigest() for a, h in self._hashes.items()}


def algorithms_for(md5: Optional[str], sha256: Optional[str]) -> tuple[str, ...]:
    """The digests worth computing: those we can check, else md5 to record what was fetched."""
    algos = tuple(a for a, v in (("md5", md5), ("sha256", sha256)) if v)
    return algos or ("md5",)


def _hash_into(hasher: _Hasher, path: Path, limit: int, chunk_size: int, label: str, progress: Progress) -> None:
    done = 0
    with open(path, "rb") as f:
        while done < limit:
            chunk = f.read(min(chunk_size, limit - done))
            if not chunk:
                break
            hasher.update(chunk)
            done += len(chunk)
            if progress:
                progress(ProgressEvent("hash", label, done, limit))


def hash_file(path: Path, algorithms: tuple[str, ...] = ("md5",), progress: Progress = None,
              chunk_size: int = 1 << 20) -> dict[str, str]:
    hasher = _Hasher(algorithms)
    _hash_into(hasher, path, path.stat().st_size, chunk_size, path.name, progress)
    return hasher.hexdigests()


def sidecar_path(path: Path) -> Path:
    """Where a file's verified digests are remembered: ``.<name>.verified.json`` beside it."""
    return path.with_name(f".{path.name}.verified.json")


def remember_digests(path: Path, digests: dict[str, str]) -> None:
    st = path.stat()
    record = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, **digests}
    atomic_write_text(sidecar_path(path), json.dumps(record, sort_keys=True) + "\n")


def cached_digests(path: Path) -> dict[str, str]:
    """Digests remembered for ``path`` if its size and mtime are unchanged, else {}."""
    try:
        record = json.loads(sidecar_path(path).read_text(encoding="utf-8"))
        st = path.stat()
    except (OSError, ValueError):
        return {}
    if record.get("size") != st.st_size or record.get("mtime_ns") != st.st_mtime_ns:
        return {}
    return {a: record[a] for a in ("md5", "sha256") if isinstance(record.get(a), str)}


def check_file(path: Path, size: Optional[int] = None, md5: Optional[str] = None, sha256: Optional[str] = None,
               use_cache: bool = True, progress: Progress = None) -> tuple[bool, dict[str, str], str]:
    """(ok, digests, reason) for a file on disk against the expected size/checksums.

    Uses the remembered digests when size and mtime are unchanged, so checking a
    verified 2 GB tar costs one ``stat``. Fresh digests are remembered.
    """
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        return False, {}, f"size is {actual_size:,} bytes, expected {size:,}"
    wanted = algorithms_for(md5, sha256)
    digests = cached_digests(path) if use_cache else {}
    if not all(a in digests for a in wanted):
        digests = {**digests, **hash_file(path, wanted, progress)}
        remember_digests(path, digests)
    for algo, expected in (("md5", md5), ("sha256", sha256)):
        if expected and digests[algo] != expected.lower():
            return False, digests, f"{algo} is {digests[algo]}, expected {expected.lower()}"
    return True, digests, ""


# --------------------------------------------------------------------------- locking


@contextlib.contextmanager
def file_lock(target: Path, progress: Progress = None) -> Iterator[None]:
    """Exclusive advisory lock on ``.<name>.lock`` beside ``target`` (blocks until free)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    lock_path = target.with_name(f".{target.name}.lock")
    with open(lock_path, "a+b") as handle:
        if fcntl is not None:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if progress:
                    progress(ProgressEvent("lock", target.name, message=f"waiting for another vocli using {target.name}"))
                fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(handle, fcntl.LOCK_UN)


# --------------------------------------------------------------------------- one mirror


class _Retry(Exception):
    """A transient failure: try this mirror again (resuming)."""


class _MirrorFailed(Exception):
    """This mirror cannot deliver the file: move to the next one."""


_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


class _PartFile:
    """The ``.part`` being written and the running digests of its bytes."""

    def __init__(self, path: Path, algorithms: tuple[str, ...], config: DownloadConfig, progress: Progress,
                 label: str, total: Optional[int]):
        self.path, self.algorithms, self.config = path, algorithms, config
        self.progress, self.label, self.total = progress, label, total
        self.hasher = _Hasher(algorithms)
        self.offset = 0
        self.received = 0  # body bytes read from the network, all tries (dropped streams included)

    def resume(self) -> int:
        """Hash the bytes already on disk; drop a part longer than the file can be."""
        if not self.path.exists():
            self.path.touch()
        size = self.path.stat().st_size
        if self.total is not None and size > self.total:
            self.restart()
            return 0
        _hash_into(self.hasher, self.path, size, self.config.chunk_size, self.label, self.progress)
        self.offset = size
        return size

    def restart(self) -> None:
        self.hasher.hexdigests()  # stop the old thread
        self.hasher = _Hasher(self.algorithms)
        self.path.write_bytes(b"")
        self.offset = 0

    def write_stream(self, chunks: Iterator[bytes]) -> None:
        """Append chunks, hashing as they come."""
        with open(self.path, "ab") as f:
            for chunk in chunks:
                if not chunk:
                    continue
                f.write(chunk)
                self.hasher.update(chunk)
                self.received += len(chunk)
                self.offset += len(chunk)
                if self.total is not None and self.offset > self.total:
                    raise _MirrorFailed(f"sent more than the expected {self.total:,} bytes")
                if self.progress:
                    self.progress(ProgressEvent("download", self.label, self.offset, self.total))

    def finish(self) -> dict[str, str]:
        with open(self.path, "rb+") as f:
            os.fsync(f.fileno())
        return self.hasher.hexdigests()


def _stream_file_url(url: str, part: _PartFile, chunk_size: int) -> None:
    source = file_url_path(url)
    try:
        src_size = source.stat().st_size
        if part.total is not None and src_size != part.total:
            raise _MirrorFailed(f"{source} is {src_size:,} bytes, expected {part.total:,}")
        if part.offset > src_size:
            part.restart()
        with open(source, "rb") as f:
            f.seek(part.offset)
            part.write_stream(iter(lambda: f.read(chunk_size), b""))
    except FileNotFoundError:
        raise _MirrorFailed(f"{source} not found") from None
    except IsADirectoryError:
        raise _MirrorFailed(f"{source} is a folder, not a file") from None
    except PermissionError:
        raise _MirrorFailed(f"{source}: permission denied") from None


def _stream_http(url: str, part: _PartFile, session, config: DownloadConfig) -> None:
    """One HTTP request continuing ``part`` from its offset."""
    import requests

    headers = {"Accept-Encoding": "identity"}
    if part.offset > 0:
        headers["Range"] = f"bytes={part.offset}-"
    try:
        response = session.get(url, headers=headers, stream=True,
                               timeout=(config.connect_timeout, config.read_timeout))
    except requests.exceptions.SSLError as err:
        raise _MirrorFailed(f"TLS error ({_short(err)})") from None
    except (requests.exceptions.InvalidURL, requests.exceptions.InvalidSchema,
            requests.exceptions.MissingSchema) as err:
        raise _MirrorFailed(f"bad URL ({_short(err)})") from None
    except requests.exceptions.RequestException as err:
        raise _Retry(_describe_network_error(err)) from None
    with response:
        status = response.status_code
        if status == 416:
            # Our offset is at or past the end: complete if it equals the true size, else start over.
            match = re.search(r"/(\d+)", response.headers.get("Content-Range", ""))
            true_size = int(match.group(1)) if match else part.total
            if true_size is not None and part.offset == true_size:
                return
            part.restart()
            raise _Retry("HTTP 416 (range not satisfiable), restarting from byte 0")
        if status in RETRYABLE_STATUS:
            raise _Retry(f"HTTP {status} {response.reason or ''}".strip())
        if status not in (200, 206):
            raise _MirrorFailed(f"HTTP {status} {response.reason or ''}".strip())
        if status == 206:
            match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != part.offset:
                part.restart()  # a range we did not ask for: start clean
                raise _Retry("server answered with a different range, restarting from byte 0")
            full = None if match.group(3) == "*" else int(match.group(3))
        else:
            if part.offset > 0:
                part.restart()  # server ignored Range and sends the whole file
            length = response.headers.get("Content-Length")
            full = int(length) if length and length.isdigit() else None
        if full is not None and part.total is not None and full != part.total:
            raise _MirrorFailed(f"server has {full:,} bytes, expected {part.total:,} (a different file)")
        import urllib3

        try:
            part.write_stream(_body_chunks(response, config.chunk_size))
        except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError) as err:
            raise _Retry(_describe_network_error(err)) from None


def _body_chunks(response, chunk_size: int) -> Iterator[bytes]:
    """The body as it arrives. ``read1`` hands over every byte that arrived before a drop;
    ``read(n)`` (behind ``iter_content``) discards a partly filled chunk when the connection dies."""
    read1 = getattr(response.raw, "read1", None)
    if read1 is None:  # urllib3 < 2.3
        yield from response.iter_content(chunk_size)
        return
    while chunk := read1(chunk_size):
        yield chunk


def _short(err: BaseException) -> str:
    text = str(err)
    return text if len(text) <= 120 else text[:117] + "..."


def _describe_network_error(err: BaseException) -> str:
    import requests

    if isinstance(err, requests.exceptions.ConnectTimeout):
        return "connect timed out"
    if isinstance(err, (requests.exceptions.ReadTimeout,)) or "Read timed out" in str(err):
        return "read timed out"
    if isinstance(err, requests.exceptions.ChunkedEncodingError) or "IncompleteRead" in repr(err):
        return "connection dropped mid-file"
    if "Connection refused" in str(err):
        return "connection refused"
    if "Name or service not known" in str(err) or "Failed to resolve" in str(err):
        return "host name not found"
    if "reset" in str(err).lower() or "aborted" in str(err).lower():
        return "connection reset"
    return f"network error ({_short(err)})"


def _try_mirror(url: str, part: _PartFile, session, config: DownloadConfig, size: Optional[int],
                expected: dict[str, str], progress: Progress, label: str) -> tuple[MirrorAttempt, Optional[dict]]:
    """Fetch through one mirror; (attempt, digests) where digests is None on failure."""
    attempt = MirrorAttempt(url, ok=False)
    best = part.offset
    failures = 0
    restarted_after_mismatch = False
    received_before = part.received
    while True:
        attempt.tries += 1
        try:
            if url.lower().startswith("file:"):
                _stream_file_url(url, part, config.chunk_size)
            else:
                _stream_http(url, part, session, config)
            if size is not None and part.offset < size:
                raise _Retry(f"stream ended at byte {part.offset:,} of {size:,}")
        except _Retry as err:
            attempt.bytes_received = part.received - received_before
            if part.offset > best:
                best, failures = part.offset, 0  # progress: the retry budget is for stuck mirrors
            else:
                failures += 1
            if failures > config.retries:
                attempt.reason = f"{err} (gave up after {attempt.tries} {'try' if attempt.tries == 1 else 'tries'})"
                return attempt, None
            if progress:
                progress(ProgressEvent("retry", label, part.offset, size, message=f"{url}: {err}; retrying"))
            if failures:
                time.sleep(min(config.backoff * 2 ** (failures - 1), config.backoff_max))
            continue
        except _MirrorFailed as err:
            attempt.bytes_received = part.received - received_before
            attempt.reason = str(err)
            return attempt, None
        except OSError as err:  # local disk trouble is not the mirror's fault
            raise VocliError(f"{part.path}: cannot write ({err.strerror or err})", hint="check free space and permissions") from None
        attempt.bytes_received = part.received - received_before
        digests = part.finish()
        bad = [f"{a} {digests[a]} != expected {v}" for a, v in expected.items() if digests[a] != v]
        if not bad:
            attempt.ok = True
            return attempt, digests
        if not restarted_after_mismatch and part_started_before(attempt, part):
            # The bytes kept from an earlier run may be the bad ones: one clean try on this mirror.
            restarted_after_mismatch = True
            part.restart()
            continue
        attempt.reason = "checksum mismatch: " + "; ".join(bad)
        part.restart()
        return attempt, None


def part_started_before(attempt: MirrorAttempt, part: _PartFile) -> bool:
    """True when some of the part's bytes did not come from this mirror in this run."""
    return attempt.bytes_received < part.offset


# --------------------------------------------------------------------------- the downloader


def download_file(urls: list[str] | tuple[str, ...], dest: str | os.PathLike, size: Optional[int] = None,
                  md5: Optional[str] = None, sha256: Optional[str] = None, force: bool = False,
                  config: Optional[DownloadConfig] = None, session=None, progress: Progress = None) -> DownloadResult:
    """Put the file at ``dest``, trying ``urls`` in order; verified by size/md5/sha256 when given.

    Skips instantly when ``dest`` is already present and verified. Raises
    ``DownloadError`` listing every mirror and why it failed.
    """
    dest = Path(dest)
    urls = [check_url(u) for u in urls]
    if not urls:
        raise DownloadError(f"no URL to fetch {dest.name} from", hint="pass --mirror BASE_URL or --tar PATH")
    config = config or DownloadConfig()
    expected = {a: v.lower() for a, v in (("md5", md5), ("sha256", sha256)) if v}
    algorithms = algorithms_for(md5, sha256)
    part_path = dest.with_name(dest.name + ".part")
    with file_lock(dest, progress):
        source = _local_source_at(urls, dest)
        if source is not None:  # importing a tar that already lies at dest: never delete or rewrite it
            return _verify_source_in_place(dest, source, size, md5, sha256, force, progress)
        if force:
            for stale in (dest, part_path, sidecar_path(dest)):
                stale.unlink(missing_ok=True)
        elif dest.exists():
            ok, digests, _ = check_file(dest, size, md5, sha256, progress=progress)
            if ok:
                return DownloadResult(dest, None, dest.stat().st_size, digests, skipped=True,
                                      bytes_received=0, resumed_from=0)
            dest.unlink()  # present but wrong: fetch it again
        own_session = session is None
        if own_session:
            session = _new_session()
        try:
            part = _PartFile(part_path, algorithms, config, progress, dest.name, size)
            resumed_from = part.resume()
            attempts: list[MirrorAttempt] = []
            for url in urls:
                if progress:
                    progress(ProgressEvent("mirror", dest.name, part.offset, size, message=url))
                attempt, digests = _try_mirror(url, part, session, config, size, expected, progress, dest.name)
                attempts.append(attempt)
                if digests is not None:
                    os.replace(part_path, dest)
                    remember_digests(dest, digests)
                    return DownloadResult(dest, url, dest.stat().st_size, digests, skipped=False,
                                          bytes_received=sum(a.bytes_received for a in attempts),
                                          resumed_from=resumed_from, attempts=attempts)
                if progress:
                    progress(ProgressEvent("mirror", dest.name, part.offset, size,
                                           message=f"{url} failed: {attempt.reason}; trying the next mirror"))
            part.hasher.hexdigests()
        finally:
            if own_session:
                session.close()
            _drop_empty_part(part_path)
    tried = "; ".join(f"{a.url}: {a.reason}" for a in attempts)
    error = DownloadError(
        f"could not fetch {dest.name} from any of {len(attempts)} mirror(s): {tried}",
        hint="pass --mirror BASE_URL (or set VOCLI_MIRRORS) for another copy, or --tar PATH for a file you already have",
    )
    error.attempts = attempts
    raise error


def _local_source_at(urls: list[str], dest: Path) -> Optional[str]:
    """The ``file://`` URL among ``urls`` that names ``dest`` itself (same file), if any."""
    if not dest.exists():
        return None
    for url in urls:
        if urllib.parse.urlsplit(url).scheme == "file":
            with contextlib.suppress(OSError):
                if os.path.samefile(file_url_path(url), dest):
                    return url
    return None


def _verify_source_in_place(dest: Path, url: str, size: Optional[int], md5: Optional[str], sha256: Optional[str],
                            force: bool, progress: Progress) -> DownloadResult:
    """Check the file the user gave, which already lies at ``dest``; it is theirs: never deleted."""
    ok, digests, reason = check_file(dest, size, md5, sha256, use_cache=not force, progress=progress)
    if not ok:
        raise ChecksumMismatch(f"{dest}: {reason}", hint="the file is your source and was left as it is; "
                                                         "fetch a good copy into another place")
    return DownloadResult(dest, url, dest.stat().st_size, digests, skipped=True, bytes_received=0, resumed_from=0)


def _drop_empty_part(part_path: Path) -> None:
    """An empty ``.part`` holds nothing to resume from; leave none behind."""
    with contextlib.suppress(OSError):
        if part_path.stat().st_size == 0:
            part_path.unlink()


def _new_session():
    import requests

    from vocli import __version__

    session = requests.Session()
    session.headers["User-Agent"] = f"vocli/{__version__} (+python-requests)"
    return session

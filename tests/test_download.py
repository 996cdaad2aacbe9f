"""Downloader against a local HTTP server with injected faults (no network)."""

from __future__ import annotations

import hashlib
import multiprocessing
import random
import threading

import pytest
from fetch_server import Fault, FileServer, closed_port_url
from helpers import md5

from vocli.datasets import download as dl
from vocli.datasets.download import DownloadConfig, ProgressEvent, check_file, download_file, sidecar_path
from vocli.errors import DownloadError, VocliError

SIZE = 300_000
FAST = DownloadConfig(connect_timeout=2, read_timeout=2, retries=2, backoff=0.0, chunk_size=16 * 1024)


@pytest.fixture(scope="module")
def payload() -> bytes:
    return random.Random(7).randbytes(SIZE)


@pytest.fixture
def server(payload):
    with FileServer({"/f.tar": payload}, chunk=16 * 1024) as srv:
        yield srv


def fetch(server, tmp_path, payload, urls=None, config=FAST, **kw):
    urls = urls or [server.url("/f.tar")]
    return download_file(urls, tmp_path / "f.tar", size=len(payload), md5=md5(payload), config=config, **kw)


def test_plain_download_is_verified_and_then_skipped(server, tmp_path, payload):
    result = fetch(server, tmp_path, payload)
    assert (tmp_path / "f.tar").read_bytes() == payload
    assert not result.skipped and result.bytes_received == SIZE and result.digests["md5"] == md5(payload)
    assert not (tmp_path / "f.tar.part").exists() and sidecar_path(tmp_path / "f.tar").is_file()
    requests_before = len(server.requests)
    again = fetch(server, tmp_path, payload)
    assert again.skipped and again.bytes_received == 0 and len(server.requests) == requests_before


def test_connection_dropped_several_times_resumes_with_range(server, tmp_path, payload):
    server.add_faults("/f.tar", Fault("drop", after=50_000), Fault("drop", after=50_000), Fault("drop", after=50_000))
    result = fetch(server, tmp_path, payload)
    assert (tmp_path / "f.tar").read_bytes() == payload
    ranges = [r for _, r, _ in server.requests]
    assert ranges[0] is None and len(ranges) == 4
    offsets = [int(r.split("=")[1].rstrip("-")) for r in ranges[1:]]
    assert offsets == sorted(offsets) and offsets[0] > 0  # every retry continued where the last stopped
    assert result.bytes_received == SIZE  # nothing fetched twice
    assert result.attempts[0].tries == 4


def test_clean_closes_every_60kb_cost_no_byte_twice(server, tmp_path, payload):
    server.drop_every, server.drop_mode = 60_000, "close"
    result = fetch(server, tmp_path, payload)
    assert (tmp_path / "f.tar").read_bytes() == payload
    assert len(server.requests) == 5 and server.bytes_sent == SIZE and result.bytes_received == SIZE


def test_503_then_success(server, tmp_path, payload):
    server.add_faults("/f.tar", Fault("status", status=503), Fault("status", status=503))
    result = fetch(server, tmp_path, payload)
    assert result.attempts[0].ok and result.attempts[0].tries == 3
    assert (tmp_path / "f.tar").read_bytes() == payload


def test_persistent_503_gives_up_after_bounded_retries(server, tmp_path, payload):
    server.add_faults("/f.tar", *[Fault("status", status=503)] * 10)
    with pytest.raises(DownloadError) as err:
        fetch(server, tmp_path, payload)
    assert "HTTP 503" in str(err.value) and "gave up after 3 tries" in str(err.value)
    assert len(server.requests) == 3  # retries=2 -> 3 tries


def test_one_try_is_said_in_the_singular(server, tmp_path, payload):
    server.add_faults("/f.tar", Fault("status", status=503))
    with pytest.raises(DownloadError) as err:
        fetch(server, tmp_path, payload, config=DownloadConfig(connect_timeout=2, read_timeout=2, retries=0,
                                                               backoff=0.0, chunk_size=16 * 1024))
    assert "gave up after 1 try)" in str(err.value)


def test_404_on_first_mirror_moves_to_next(server, tmp_path, payload):
    events: list[ProgressEvent] = []
    result = fetch(server, tmp_path, payload, urls=[server.url("/missing.tar"), server.url("/f.tar")],
                   progress=events.append)
    assert result.url == server.url("/f.tar")
    assert not result.attempts[0].ok and "404" in result.attempts[0].reason and result.attempts[0].tries == 1
    assert any("trying the next mirror" in e.message for e in events)


def test_wrong_bytes_fail_checksum_and_next_mirror_delivers(tmp_path, payload):
    corrupt = bytearray(payload)
    corrupt[1234] ^= 0xFF
    with FileServer({"/f.tar": bytes(corrupt)}) as bad, FileServer({"/f.tar": payload}) as good:
        result = fetch(bad, tmp_path, payload, urls=[bad.url("/f.tar"), good.url("/f.tar")])
    assert result.url == good.url("/f.tar")
    assert "checksum mismatch" in result.attempts[0].reason and md5(bytes(corrupt)) in result.attempts[0].reason
    assert (tmp_path / "f.tar").read_bytes() == payload


def test_only_mirror_with_wrong_bytes_is_an_error_and_nothing_lands(tmp_path, payload):
    with FileServer({"/f.tar": payload[::-1]}) as bad:
        with pytest.raises(DownloadError, match="checksum mismatch"):
            fetch(bad, tmp_path, payload, urls=[bad.url("/f.tar")])
    assert not (tmp_path / "f.tar").exists()


def test_server_ignoring_range_restarts_cleanly(server, tmp_path, payload):
    server.add_faults("/f.tar", Fault("drop", after=100_000))
    server.honour_range = False
    result = fetch(server, tmp_path, payload)
    assert (tmp_path / "f.tar").read_bytes() == payload
    assert server.requests[1][1] is not None  # we asked for a range, got the whole file (200)
    assert result.bytes_received >= SIZE + 1  # the first partial stream was thrown away


def test_slow_server_short_read_timeout_retries(server, tmp_path, payload):
    server.add_faults("/f.tar", Fault("slow", delay=1.0))
    config = DownloadConfig(connect_timeout=2, read_timeout=0.2, retries=2, backoff=0.0)
    result = fetch(server, tmp_path, payload, config=config)
    assert result.attempts[0].tries == 2 and (tmp_path / "f.tar").read_bytes() == payload


def test_always_slow_server_reports_read_timeout(server, tmp_path, payload):
    server.add_faults("/f.tar", *[Fault("slow", delay=0.6)] * 3)
    config = DownloadConfig(connect_timeout=2, read_timeout=0.15, retries=1, backoff=0.0)
    with pytest.raises(DownloadError, match="read timed out"):
        fetch(server, tmp_path, payload, config=config)


def test_interrupted_download_resumes_where_it_stopped(server, tmp_path, payload):
    def interrupt(event: ProgressEvent) -> None:
        if event.stage == "download" and event.done >= 120_000:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fetch(server, tmp_path, payload, progress=interrupt)
    kept = (tmp_path / "f.tar.part").stat().st_size
    assert 120_000 <= kept < SIZE and not (tmp_path / "f.tar").exists()
    result = fetch(server, tmp_path, payload)
    assert result.resumed_from == kept and result.bytes_received == SIZE - kept
    assert server.requests[-1][1] == f"bytes={kept}-"
    assert (tmp_path / "f.tar").read_bytes() == payload


def test_part_already_complete_gets_416_and_finishes(server, tmp_path, payload):
    (tmp_path / "f.tar.part").write_bytes(payload)
    result = fetch(server, tmp_path, payload, urls=[server.url("/f.tar")])
    assert result.bytes_received == 0 and result.resumed_from == SIZE
    assert (tmp_path / "f.tar").read_bytes() == payload


def test_stale_bad_part_is_redone_once_on_mismatch(server, tmp_path, payload):
    (tmp_path / "f.tar.part").write_bytes(b"x" * 1000)  # garbage left by some other run
    result = fetch(server, tmp_path, payload)
    assert (tmp_path / "f.tar").read_bytes() == payload and result.attempts[0].ok


def test_all_mirrors_failing_lists_each_one(server, tmp_path, payload):
    with closed_port_url("/f.tar") as refused, pytest.raises(DownloadError) as err:
        urls = [refused, server.url("/gone.tar")]
        fetch(server, tmp_path, payload, urls=urls, config=DownloadConfig(connect_timeout=1, retries=0, backoff=0))
    text = str(err.value)
    assert refused in text and "connection refused" in text
    assert server.url("/gone.tar") in text and "HTTP 404" in text
    assert "--mirror" in text and "--tar" in text
    assert [a.url for a in err.value.attempts] == urls


def test_size_from_server_disagrees_means_other_file(tmp_path, payload):
    with FileServer({"/f.tar": payload + b"extra"}) as other, FileServer({"/f.tar": payload}) as good:
        result = fetch(other, tmp_path, payload, urls=[other.url("/f.tar"), good.url("/f.tar")])
    assert "a different file" in result.attempts[0].reason and result.attempts[0].bytes_received == 0


def test_file_url_and_bad_scheme(tmp_path, payload):
    src = tmp_path / "src.bin"
    src.write_bytes(payload)
    (tmp_path / "out").mkdir()
    result = download_file([src.as_uri()], tmp_path / "out" / "f.tar", size=SIZE, md5=md5(payload))
    assert (tmp_path / "out" / "f.tar").read_bytes() == payload and result.url == src.as_uri()
    with pytest.raises(VocliError, match="only http"):
        download_file(["ftp://example.org/f.tar"], tmp_path / "x.tar")


def test_sha256_checked(server, tmp_path, payload):
    good = hashlib.sha256(payload).hexdigest()
    result = download_file([server.url("/f.tar")], tmp_path / "f.tar", sha256=good, config=FAST)
    assert result.digests == {"sha256": good}
    with pytest.raises(DownloadError, match="sha256"):
        download_file([server.url("/f.tar")], tmp_path / "g.tar", sha256="0" * 64, config=FAST)


def test_verified_cache_keyed_by_size_and_mtime(server, tmp_path, payload, monkeypatch):
    fetch(server, tmp_path, payload)
    path = tmp_path / "f.tar"

    def no_hashing(*a, **k):
        raise AssertionError("should not re-hash a file whose size and mtime are unchanged")

    monkeypatch.setattr(dl, "hash_file", no_hashing)
    assert check_file(path, SIZE, md5(payload))[0]
    monkeypatch.undo()
    corrupt = bytearray(payload)
    corrupt[0] ^= 1
    path.write_bytes(bytes(corrupt))  # same size, new mtime
    ok, digests, reason = check_file(path, SIZE, md5(payload))
    assert not ok and digests["md5"] == md5(bytes(corrupt)) and "md5" in reason
    again = fetch(server, tmp_path, payload)  # present but wrong -> fetched again
    assert not again.skipped and path.read_bytes() == payload


def test_concurrent_threads_do_not_corrupt(server, tmp_path, payload):
    server.add_faults("/f.tar", Fault("slow", delay=0.3))
    results, errors = [], []

    def worker():
        try:
            results.append(fetch(server, tmp_path, payload))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and (tmp_path / "f.tar").read_bytes() == payload
    assert sorted(r.skipped for r in results) == [False, True, True]
    assert len(server.requests) == 1


def _child(url: str, dest: str, size: int, digest: str, queue) -> None:
    try:
        r = download_file([url], dest, size=size, md5=digest, config=FAST)
        queue.put(("ok", r.skipped))
    except Exception as exc:  # noqa: BLE001
        queue.put(("error", repr(exc)))


def test_concurrent_processes_share_the_lock(server, tmp_path, payload):
    server.add_faults("/f.tar", Fault("slow", delay=0.3))
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_child, args=(server.url("/f.tar"), str(tmp_path / "f.tar"), SIZE, md5(payload), queue))
             for _ in range(2)]
    for p in procs:
        p.start()
    outcomes = [queue.get(timeout=30) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    assert sorted(outcomes) == [("ok", False), ("ok", True)]
    assert (tmp_path / "f.tar").read_bytes() == payload and len(server.requests) == 1

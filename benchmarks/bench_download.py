"""Benchmark `vocli fetch`'s downloader against a bare `requests` stream of the same file, same run.

A ~200 MB file is served from 127.0.0.1 by a server in its own process (so it does not
share the client's interpreter). Measured:
  * bare requests stream to disk (reference), MB/s
  * vocli download_file (md5 while streaming, .part, fsync, atomic rename), MB/s and ratio
  * vocli with the server closing the connection every 20 MB: MB/s, ratio, resumes, and
    redundant bytes = bytes the server sent beyond the file size (i.e. sent twice);
  * the same with TCP resets instead of clean closes: bytes lost in flight, which the
    client cannot have received and so re-requests (kernel socket buffers, not vocli).
Goals (issue 3): throughput ratio >= 0.8, redundant bytes <= 1%.

Usage: python benchmarks/bench_download.py [--mb 200] [--drop-mb 20] [--repeat 3]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the tests' local file server

import requests  # noqa: E402
from fetch_server import FileServer  # noqa: E402

from vocli.datasets.download import DownloadConfig, download_file  # noqa: E402


def bare_stream(url: str, dest: Path, chunk: int) -> int:
    with requests.get(url, stream=True, timeout=(15, 60)) as r, open(dest, "wb") as f:
        r.raise_for_status()
        n = 0
        for block in r.iter_content(chunk):
            f.write(block)
            n += len(block)
    return n


def serve(data: bytes, chunk: int, conn) -> None:
    with FileServer({"/big.tar": data}, chunk=chunk) as server:
        conn.send(server.base)
        conn.recv()  # parent says stop


def control(base: str, **settings) -> dict:
    query = "&".join(f"{k}={v}" for k, v in settings.items())
    return json.loads(requests.get(f"{base}/_control?{query}", timeout=10).content)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--drop-mb", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    size = args.mb * 1_000_000
    chunk = 1 << 20
    data = os.urandom(size)
    digest = hashlib.md5(data).hexdigest()
    tmp = Path(tempfile.mkdtemp(prefix="vocli-bench-"))
    config = DownloadConfig(retries=3, backoff=0.0, chunk_size=chunk)
    bare, plain = [], []
    dropped = {"close": [], "reset": []}
    redundant = {"close": [], "reset": []}
    resumes = {"close": [], "reset": []}
    ctx = multiprocessing.get_context("fork")
    parent_end, child_end = ctx.Pipe()
    proc = ctx.Process(target=serve, args=(data, chunk, child_end), daemon=True)
    proc.start()
    base = parent_end.recv()
    url = base + "/big.tar"
    try:
        for rep in range(args.repeat):
            dest = tmp / "bare.bin"
            t = time.perf_counter()
            assert bare_stream(url, dest, chunk) == size
            bare.append(size / (time.perf_counter() - t) / 1e6)
            dest.unlink()

            dest = tmp / "plain.tar"
            t = time.perf_counter()
            download_file([url], dest, size=size, md5=digest, config=config, force=True)
            plain.append(size / (time.perf_counter() - t) / 1e6)
            dest.unlink()

            for mode in ("close", "reset"):
                dest = tmp / f"{mode}.tar"
                before = control(base, drop_every=args.drop_mb * 1_000_000, drop_mode=mode)
                t = time.perf_counter()
                result = download_file([url], dest, size=size, md5=digest, config=config, force=True)
                elapsed = time.perf_counter() - t
                after = control(base, drop_every=0)
                dropped[mode].append(size / elapsed / 1e6)
                redundant[mode].append((after["bytes_sent"] - before["bytes_sent"] - size) / size)
                resumes[mode].append(after["requests"] - before["requests"] - 1)  # minus the first GET
                assert result.digests["md5"] == digest and result.bytes_received == size
                dest.unlink()
    finally:
        parent_end.send("stop")
        proc.join(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)

    med = statistics.median
    print(f"file: {args.mb} MB from 127.0.0.1 (server in its own process), {args.repeat} runs each (median), 1 MiB chunks")
    print(f"bare requests stream:           {med(bare):8.1f} MB/s (reference)")
    print(f"vocli download (md5, .part):    {med(plain):8.1f} MB/s  ratio {med(plain) / med(bare):.2f}  (goal >= 0.8)")
    for mode, what in (("close", "closed"), ("reset", "reset (RST)")):
        print(f"vocli, {what} every {args.drop_mb} MB: {med(dropped[mode]):8.1f} MB/s  ratio "
              f"{med(dropped[mode]) / med(bare):.2f}  resumes {med(resumes[mode]):.0f}  "
              f"redundant bytes {100 * max(redundant[mode]):.3f}% (worst run)")
    print("goal: redundant bytes <= 1%; with resets the excess is data the kernel dropped in flight, "
          "never received by the client (client re-fetched 0 bytes it already had)")

if __name__ == "__main__":
    main()

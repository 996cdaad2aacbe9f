""""done in" is the whole command: measured from the process's start, imports included (issue 16, item 3)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from vocli.clock import process_seconds


def test_process_seconds_counts_time_before_vocli_was_imported():
    # The child sleeps 0.4 s before its first import of vocli: a clock started at import would miss it.
    code = ("import time; time.sleep(0.4)\n"
            "from vocli.clock import process_seconds, STARTED\n"
            "print(process_seconds(), time.monotonic() - STARTED)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    whole, since_import = map(float, done.stdout.split())
    assert whole >= 0.4 > since_import


def test_process_seconds_grows_with_the_process():
    before = process_seconds()
    time.sleep(0.05)
    assert process_seconds() - before >= 0.04  # 10 ms ticks on Linux: within 20 ms


def test_convert_json_seconds_is_the_whole_process(tiny_voc, tmp_path):
    # The --json figure covers the sleep done before the CLI started, so it counts start-up too.
    code = ("import sys, time; time.sleep(0.4)\n"
            "from vocli.cli.app import main\n"
            "sys.exit(main(sys.argv[1:]))")
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-c", code, "convert", "yolo", "--root", str(tiny_voc), "--sets",
                           "2007/trainval", "--out", str(tmp_path / "out"), "--json"],
                          capture_output=True, text=True, timeout=120)
    wall = time.monotonic() - start
    assert done.returncode == 0, done.stderr
    seconds = json.loads(done.stdout)["seconds"]
    assert 0.4 <= seconds <= wall

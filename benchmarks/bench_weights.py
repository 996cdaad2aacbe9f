"""Benchmark: full-size yolov3.weights -> .pt against the floor of reading and saving the same bytes.

Writes a random 248,007,048-byte yolov3.weights (62,001,757 floats, 20-byte header) to a
temp folder, then runs each step in its own subprocess so each reports its own peak RSS:

    floor    np.fromfile(file, offset=20) + torch.save of those bytes as one tensor
    convert  converters.darknet_weights.convert_weights(file, cfg="yolov3") -> .pt
    export   .pt -> .weights (and a byte-for-byte comparison with the original)
    imports  importing torch, numpy and the converter only (the RSS every step starts from)

Usage: python benchmarks/bench_weights.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

FLOATS = 62_001_757
SIZE = 248_007_048
REPO = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, resource, sys, time
import numpy as np, torch
from converters.darknet_weights import convert_weights, export_weights
step, src, out = sys.argv[1:4]
torch.set_num_threads(1)
t0 = time.perf_counter()
if step == "floor":
    data = torch.from_numpy(np.fromfile(src, dtype="<f4", offset=20))
    torch.save({"data": data}, out)
elif step == "convert":
    convert_weights(src, cfg="yolov3", out=out)
elif step == "export":
    export_weights(src, out)
elapsed = time.perf_counter() - t0
print(json.dumps({"seconds": elapsed, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run_step(step: str, src: Path, out: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-c", CHILD, step, str(src), str(out)], check=True,
                          capture_output=True, text=True, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])


def write_random_weights(path: Path, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    with open(path, "wb") as f:
        f.write(struct.pack("<3iq", 0, 2, 0, 32_013_312))
        left = FLOATS
        while left:
            n = min(left, 1 << 23)
            rng.standard_normal(n, dtype=np.float32).astype("<f4").tofile(f)
            left -= n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="use this folder and keep the files")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="vocli-bench-weights-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        src = folder / "yolov3.weights"
        write_random_weights(src)
        assert src.stat().st_size == SIZE, src.stat().st_size
        src.read_bytes()  # warm the page cache so every step reads from memory
        imports = run_step("imports", src, folder / "none")
        floor = run_step("floor", src, folder / "floor.pt")
        convert = run_step("convert", src, folder / "yolov3.pt")
        export = run_step("export", folder / "yolov3.pt", folder / "back.weights")
        identical = filecmp.cmp(src, folder / "back.weights", shallow=False)
        size_mb = SIZE / 2**20
        print(f"file: yolov3.weights {SIZE:,} bytes ({size_mb:.1f} MiB), {FLOATS:,} floats")
        print(f"floor   (np.fromfile + torch.save): {floor['seconds']:.3f} s, peak RSS {floor['peak_rss_mb']:.0f} MiB")
        print(f"convert (.weights -> .pt):          {convert['seconds']:.3f} s, peak RSS {convert['peak_rss_mb']:.0f} MiB")
        print(f"export  (.pt -> .weights):          {export['seconds']:.3f} s, peak RSS {export['peak_rss_mb']:.0f} MiB")
        print(f"imports only (torch, numpy, converter): peak RSS {imports['peak_rss_mb']:.0f} MiB")
        ratio = convert["seconds"] / floor["seconds"]
        extra = convert["peak_rss_mb"] - imports["peak_rss_mb"]
        print(f"convert / floor time: {ratio:.2f}x (goal <= 1.5x)")
        print(f"convert peak RSS above imports: {extra:.0f} MiB = {extra / size_mb:.2f}x the file "
              f"(total {convert['peak_rss_mb'] / size_mb:.2f}x; goal < 2x)")
        print(f"round trip byte-identical: {identical}")
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()

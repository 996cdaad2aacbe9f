"""Shapes generator and ``vocli stats`` speed, each beside a floor/reference measured in the same run.

* generate_shapes (1000 images at 256 px) vs. the I/O floor: encoding and saving
  the same 1000 images as JPEG with the same settings (no drawing at all).
* dataset_stats on that tree vs. a plain ElementTree loop that only counts
  <object> elements per split (the independent count used by the tests).

Usage: python benchmarks/bench_shapes.py [--images 1000] [--size 256]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from PIL import Image

from vocli.datasets.shapes import JPEG_QUALITY, generate_shapes
from vocli.stats import dataset_stats


def _timed(fn):
    """(wall seconds, value); the CPU seconds of the last call are kept in ``_timed.cpu``."""
    start, cpu = time.perf_counter(), time.process_time()
    value = fn()
    _timed.cpu = time.process_time() - cpu
    return time.perf_counter() - start, value


def _plain_count(voc: Path) -> dict[str, int]:
    counts = {}
    for split in ("train", "val", "trainval", "test"):
        ids = (voc / "ImageSets" / "Main" / f"{split}.txt").read_text().split()
        counts[split] = sum(len(ET.parse(voc / "Annotations" / f"{i}.xml").getroot().findall("object")) for i in ids)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t_gen, result = _timed(lambda: generate_shapes(tmp / "gen", images=args.images, size=args.size, seed=0))
        cpu_gen = _timed.cpu
        voc = result.root
        frames = []
        for p in sorted((voc / "JPEGImages").glob("*.jpg")):
            with Image.open(p) as im:
                frames.append(im.convert("RGB"))
        (tmp / "floor").mkdir()

        def save_all():
            for k, im in enumerate(frames):
                im.save(tmp / "floor" / f"{k:06d}.jpg", format="JPEG", quality=JPEG_QUALITY, subsampling=0)

        t_floor, _ = _timed(save_all)
        cpu_floor = _timed.cpu
        t_stats, stats = _timed(lambda: dataset_stats(tmp / "gen"))
        t_plain, plain = _timed(lambda: _plain_count(voc))
        assert {s.name.split("/")[1]: s.objects for s in stats.splits} == plain

    print(f"generate_shapes: {args.images} images at {args.size} px, {result.objects} objects")
    print(f"  vocli generate_shapes     {t_gen:7.2f} s wall  {cpu_gen:6.2f} s CPU  ({args.images / t_gen:5.0f} images/s)")
    print(f"  JPEG encode+save only     {t_floor:7.2f} s wall  {cpu_floor:6.2f} s CPU  ({args.images / t_floor:5.0f} images/s)")
    print(f"  ratio generate / floor    {t_gen / t_floor:7.2f} x wall {cpu_gen / cpu_floor:6.2f} x CPU")
    print(f"dataset_stats on the same tree ({sum(plain.values())} objects over 4 splits)")
    print(f"  vocli dataset_stats       {t_stats:7.2f} s")
    print(f"  plain ElementTree count   {t_plain:7.2f} s")
    print(f"  ratio stats / plain count {t_stats / t_plain:7.2f} x")


if __name__ == "__main__":
    main()

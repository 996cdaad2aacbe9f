"""Benchmark `vocli convert yolo` and `vocli convert ssd` on generated VOC-like annotations.

Usage: python benchmarks/bench_convert.py [--files 20000] [--workers N] [--repeat 3] [--dir /tmp] [--floor]
                                        [--from VOC_ROOT]

Generates VOC-shaped XML files (1-4 objects, 500x375-like sizes, full VOC
fields) in a temp folder under --dir, or with --from copies the real annotations
of a VOC tree there (cycled under new ids up to --files), then measures, in the same run:
  * a straightforward xml.etree loop doing darknet's voc_label.py conversion
    one file at a time (the reference), and checks its bytes equal ours;
  * convert_yolo's first run (no labels yet), alternating with the reference
    --repeat times, since this shared machine's speed drifts by tens of percent
    within a minute: the best and the median of each are printed;
  * convert_yolo's re-run on unchanged input;
  * with --floor, the reads and writes alone (every XML read with its stat, every
    label created), in --workers processes: the most any per-file converter can gain;
  * build_ssd_targets (SSD300): images/s, time for VOC07+12 trainval's 16,551
    images, HDF5 bytes per image.
The folder is deleted at the end.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import statistics
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from converters._common import open_folder, read_files, write_new_files
from converters.voc_to_yolo import convert_yolo
from vocli.datasets.voc import VOC_CLASSES

SIZES = [(500, 375), (375, 500), (500, 333), (333, 500), (500, 400), (486, 500)]
VOC0712_TRAINVAL = 16551


def generate(root: Path, count: int, seed: int = 0) -> dict[str, list[str]]:
    rng = np.random.default_rng(seed)
    voc = root / "VOCdevkit" / "VOC2007"
    (voc / "Annotations").mkdir(parents=True)
    ids = [f"{i:06d}" for i in range(1, count + 1)]
    for image_id in ids:
        w, h = SIZES[int(rng.integers(len(SIZES)))]
        objects = []
        for _ in range(int(rng.integers(1, 5))):
            x1, x2 = sorted(rng.integers(1, w + 1, size=2).tolist())
            y1, y2 = sorted(rng.integers(1, h + 1, size=2).tolist())
            objects.append(
                f"\t<object>\n\t\t<name>{VOC_CLASSES[int(rng.integers(20))]}</name>\n\t\t<pose>Left</pose>\n"
                f"\t\t<truncated>{int(rng.integers(2))}</truncated>\n\t\t<difficult>{int(rng.random() < 0.1)}"
                f"</difficult>\n\t\t<bndbox>\n\t\t\t<xmin>{x1}</xmin>\n\t\t\t<ymin>{y1}</ymin>\n"
                f"\t\t\t<xmax>{x2}</xmax>\n\t\t\t<ymax>{y2}</ymax>\n\t\t</bndbox>\n\t</object>\n")
        (voc / "Annotations" / f"{image_id}.xml").write_text(
            f"<annotation>\n\t<folder>VOC2007</folder>\n\t<filename>{image_id}.jpg</filename>\n"
            f"\t<source>\n\t\t<database>The VOC2007 Database</database>\n\t\t<annotation>PASCAL VOC2007"
            f"</annotation>\n\t\t<image>flickr</image>\n\t\t<flickrid>{rng.integers(1e9)}</flickrid>\n"
            f"\t</source>\n\t<owner>\n\t\t<flickrid>someone</flickrid>\n\t\t<name>Someone</name>\n\t</owner>\n"
            f"\t<size>\n\t\t<width>{w}</width>\n\t\t<height>{h}</height>\n\t\t<depth>3</depth>\n\t</size>\n"
            f"\t<segmented>0</segmented>\n{''.join(objects)}</annotation>\n")
    return _split(root, ids)


def _split(root: Path, ids: list[str]) -> dict[str, list[str]]:
    """train / val / test lists of ``ids`` (a half, a quarter, a quarter) under ``root``'s VOC2007."""
    count = len(ids)
    split = {"train": ids[: count // 2], "val": ids[count // 2: 3 * count // 4], "test": ids[3 * count // 4:]}
    main = root / "VOCdevkit" / "VOC2007" / "ImageSets" / "Main"
    main.mkdir(parents=True, exist_ok=True)
    for name, members in split.items():
        (main / f"{name}.txt").write_text("".join(f"{i}\n" for i in members))
    return split


def copy_real(root: Path, count: int, source: Path) -> dict[str, list[str]]:
    """``count`` annotation files taken in turn from ``source``'s VOC folders (real layouts and values)."""
    datas = [p.read_bytes() for p in sorted(source.glob("**/VOC*/Annotations/*.xml"))]
    if not datas:
        raise SystemExit(f"--from {source}: no VOC*/Annotations/*.xml below it")
    annotations = root / "VOCdevkit" / "VOC2007" / "Annotations"
    annotations.mkdir(parents=True)
    ids = [f"{i:06d}" for i in range(1, count + 1)]
    for k, image_id in enumerate(ids):
        (annotations / f"{image_id}.xml").write_bytes(datas[k % len(datas)])
    return _split(root, ids)


def etree_reference(root: Path, split: dict[str, list[str]], labels: Path) -> int:
    """darknet's voc_label.py, statement for statement: one file at a time, xml.etree, str() floats.

    Like the script: string paths, the XML opened in text mode and handed to ET.parse,
    the label file opened before parsing.
    """
    voc = f"{root}/VOCdevkit/VOC2007"
    labels.mkdir()
    files = 0
    for name, ids in split.items():
        list_file = open(f"{root}/ref_2007_{name}.txt", "w")
        for image_id in ids:
            list_file.write("%s/JPEGImages/%s.jpg\n" % (voc, image_id))
            in_file = open("%s/Annotations/%s.xml" % (voc, image_id))
            out_file = open("%s/%s.txt" % (labels, image_id), "w")
            tree = ET.parse(in_file)
            root_el = tree.getroot()
            size = root_el.find("size")
            w = int(size.find("width").text)
            h = int(size.find("height").text)
            for obj in root_el.iter("object"):
                difficult = obj.find("difficult").text
                cls = obj.find("name").text
                if cls not in VOC_CLASSES or int(difficult) == 1:
                    continue
                cls_id = VOC_CLASSES.index(cls)
                box = obj.find("bndbox")
                b = (float(box.find("xmin").text), float(box.find("xmax").text),
                     float(box.find("ymin").text), float(box.find("ymax").text))
                dw, dh = 1.0 / w, 1.0 / h
                bb = (((b[0] + b[1]) / 2.0 - 1) * dw, ((b[2] + b[3]) / 2.0 - 1) * dh,
                      (b[1] - b[0]) * dw, (b[3] - b[2]) * dh)
                out_file.write(str(cls_id) + " " + " ".join([str(a) for a in bb]) + "\n")
            in_file.close()
            out_file.close()
            files += 1
        list_file.close()
    return files


def _io_only(job: tuple[str, str, list[str]]) -> None:
    annotations, labels, ids = job
    text = b"14 0.511 0.4706666666666667 0.394 0.7866666666666666\n8 0.313 0.5053333333333333 0.31 0.69\n"
    with open_folder(annotations) as folder:
        read_files([f"{i}.xml" for i in ids], folder)
    with open_folder(labels) as folder:
        write_new_files([f"{i}.txt" for i in ids], [text] * len(ids), folder)


def io_floor(root: Path, split: dict[str, list[str]], labels: Path, workers: int) -> float:
    """Seconds for what every per-file converter must do: read each XML (with its stat), create each label.

    With convert_yolo's own I/O helpers, so the floor is that of its reads and writes.
    """
    labels.mkdir()
    ids = [i for members in split.values() for i in members]
    annotations = f"{root}/VOCdevkit/VOC2007/Annotations"
    t = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        pool.map(_io_only, [(annotations, str(labels), ids[k:k + 1000]) for k in range(0, len(ids), 1000)])
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20000)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--dir", default="/tmp",
                        help="where to generate the files (e.g. /dev/shm to leave the disk out)")
    parser.add_argument("--repeat", type=int, default=3, help="alternating runs of the reference and convert_yolo")
    parser.add_argument("--skip-ssd", action="store_true")
    parser.add_argument("--from", dest="source", type=Path,
                        help="a folder holding VOCdevkit/VOC*/Annotations: copy its real files instead of generating")
    parser.add_argument("--floor", action="store_true",
                        help="also time the reads and writes alone (parse and text free) in --workers processes")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="vocli-bench-convert-", dir=args.dir))
    try:
        print(f"cores: {os.cpu_count()}, workers: {args.workers}, load average before: "
              f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        t = time.perf_counter()
        if args.source:
            split = copy_real(tmp, args.files, args.source)
            made = f"copied {args.files} annotation files from {args.source}"
        else:
            split = generate(tmp, args.files)
            made = f"generated {args.files} VOC-like XML files"
        print(f"{made} in {time.perf_counter() - t:.1f} s ({tmp})")

        labels = tmp / "VOCdevkit" / "VOC2007" / "labels"
        ref_times, first_times = [], []
        for _ in range(args.repeat):
            shutil.rmtree(tmp / "ref_labels", ignore_errors=True)
            t = time.perf_counter()
            n_ref = etree_reference(tmp, split, tmp / "ref_labels")
            ref_times.append(time.perf_counter() - t)
            shutil.rmtree(labels, ignore_errors=True)
            t = time.perf_counter()
            first = convert_yolo(tmp, workers=args.workers)
            first_times.append(time.perf_counter() - t)
        t = time.perf_counter()
        again = convert_yolo(tmp, workers=args.workers)
        again_s = time.perf_counter() - t
        mismatched = sum((labels / p.name).read_bytes() != p.read_bytes() for p in (tmp / "ref_labels").iterdir())
        n = first.labels_written
        ref_s, first_s = min(ref_times), min(first_times)
        ref_med, first_med = statistics.median(ref_times), statistics.median(first_times)
        print("each run (s), reference:", " ".join(f"{t:.2f}" for t in ref_times),
              "| convert yolo:", " ".join(f"{t:.2f}" for t in first_times))
        print(f"xml.etree loop (reference): {n_ref / ref_s:9.0f} files/s  (best {ref_s:.2f} s, "
              f"median {ref_med:.2f} s of {args.repeat}, {n_ref} files)")
        print(f"convert yolo, first run:    {n / first_s:9.0f} files/s  (best {first_s:.2f} s, "
              f"median {first_med:.2f} s)  ratio {ref_s / first_s:.2f}x best, {ref_med / first_med:.2f}x median")
        print(f"convert yolo, re-run:       {n / again_s:9.0f} files/s  ({again_s:.2f} s, "
              f"{again.labels_cached} cached)  ratio {ref_s / again_s:.2f}x")
        print(f"label files differing from the reference: {mismatched} of {n_ref}")
        if args.floor:
            floor_s = io_floor(tmp, split, tmp / "floor", args.workers)
            print(f"reads and writes alone, {args.workers} processes: {floor_s:.2f} s, "
                  f"{ref_s / floor_s:.1f}x the reference's best: the most any per-file loop can gain")

        if args.skip_ssd:
            return
        # Imported only now: it brings torch, whose hundreds of MB in this process would slow the
        # forks of convert_yolo's workers above (the CLI's `convert yolo` never imports it).
        from converters.ssd_targets import build_ssd_targets
        t = time.perf_counter()
        ssd = build_ssd_targets(tmp, out=tmp / "ssd", workers=args.workers)
        ssd_s = time.perf_counter() - t
        images = sum(f.images for f in ssd.files)
        size = sum(f.bytes for f in ssd.files)
        print(f"convert ssd (SSD300, {ssd.num_priors} priors): {images / ssd_s:.0f} images/s ({images} in "
              f"{ssd_s:.2f} s); {VOC0712_TRAINVAL} images would take {VOC0712_TRAINVAL / (images / ssd_s):.1f} s")
        print(f"HDF5: {size / images / 1024:.2f} KiB per image ({size / 2**20:.1f} MiB total, gzip)")
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

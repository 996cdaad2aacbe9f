"""Whole-process benchmarks: cold ``python -m vocli ...`` against the references, as a user runs them.

Usage: python benchmarks/bench_whole.py [--from ../shared/data/voc-sample] [--repeat 5] [--dir /tmp]
                                        [--only anchors,evaluate,stats,help,convert]

Builds a VOC-size tree in a temp folder under --dir: VOC2007 trainval (5,011) and test
(4,952), VOC2012 trainval (11,540), i.e. 16,551 trainval + 4,952 test = 21,503 annotation
files, each a real annotation of --from taken in turn under a new id (as
``bench_convert.py --from`` does), plus seeded comp4 detections for 2007/test (50 per image,
247,600 in all). Then times each command as a fresh process (``subprocess`` of
``sys.executable``, so imports count), alternating with its reference in the same run,
--repeat times each; prints every run, the best and the median, and checks the results:

* ``vocli anchors --k 9 --sets 2007/trainval,2012/trainval`` against keras-yolo3's clustering:
  its annotation reading (``voc_annotation.py``: each XML parsed, difficult objects skipped;
  here with lxml) and its ``YOLO_Kmeans`` loop, re-implemented statement for statement below
  (the repository cannot be installed), on the same relative box shapes x 416 that vocli
  clusters, seeded. Mean IoU of both anchor sets on the same boxes.
* ``vocli evaluate --detections D --sets 2007/test --metric voc07|voc12`` against
  py-faster-rcnn's ``voc_eval`` (re-implemented statement for statement: one call per class,
  annotations from its pickle cache, which exists before the timing as after a first run).
  Every class's AP is compared (must agree to 1e-9).
* ``vocli stats`` on the whole tree, ``vocli --help`` and ``vocli convert yolo`` (against
  darknet's ``voc_label.py`` loop) as whole processes.
The folder is deleted at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO.parent / "shared" / "data" / "voc-sample"
SETS = {("2007", "trainval"): 5011, ("2007", "test"): 4952, ("2012", "trainval"): 11540}
VOC_CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
               "train", "tvmonitor")
DETECTIONS_PER_IMAGE = 50

KERAS_REFERENCE = r'''
import sys, json
import numpy as np
from lxml import etree

# keras-yolo3 voc_annotation.py: every listed file parsed, difficult objects skipped.
root, sets, size = sys.argv[1], sys.argv[2].split(","), 416.0
boxes = []
for s in sets:
    year, split = s.split("/")
    base = f"{root}/VOCdevkit/VOC{year}"
    for image_id in open(f"{base}/ImageSets/Main/{split}.txt").read().split():
        tree = etree.parse(f"{base}/Annotations/{image_id}.xml")
        r = tree.getroot()
        w, h = float(r.find("size").find("width").text), float(r.find("size").find("height").text)
        for obj in r.iter("object"):
            difficult = obj.find("difficult").text
            if int(difficult) == 1:
                continue
            b = obj.find("bndbox")
            x1, y1, x2, y2 = (float(b.find(t).text) for t in ("xmin", "ymin", "xmax", "ymax"))
            # the shapes vocli clusters: inclusive pixels, relative to the image, at 416
            boxes.append([(x2 - x1 + 1) / w * size, (y2 - y1 + 1) / h * size])
boxes = np.array(boxes)


class YOLO_Kmeans:  # keras-yolo3 kmeans.py, statement for statement (file reading aside)
    def __init__(self, cluster_number):
        self.cluster_number = cluster_number

    def iou(self, boxes, clusters):  # 1 box -> k clusters
        n = boxes.shape[0]
        k = self.cluster_number
        box_area = boxes[:, 0] * boxes[:, 1]
        box_area = box_area.repeat(k)
        box_area = np.reshape(box_area, (n, k))
        cluster_area = clusters[:, 0] * clusters[:, 1]
        cluster_area = np.tile(cluster_area, [1, n])
        cluster_area = np.reshape(cluster_area, (n, k))
        box_w_matrix = np.reshape(boxes[:, 0].repeat(k), (n, k))
        cluster_w_matrix = np.reshape(np.tile(clusters[:, 0], (1, n)), (n, k))
        min_w_matrix = np.minimum(cluster_w_matrix, box_w_matrix)
        box_h_matrix = np.reshape(boxes[:, 1].repeat(k), (n, k))
        cluster_h_matrix = np.reshape(np.tile(clusters[:, 1], (1, n)), (n, k))
        min_h_matrix = np.minimum(cluster_h_matrix, box_h_matrix)
        inter_area = np.multiply(min_w_matrix, min_h_matrix)
        result = inter_area / (box_area + cluster_area - inter_area)
        return result

    def avg_iou(self, boxes, clusters):
        accuracy = np.mean([np.max(self.iou(boxes, clusters), axis=1)])
        return accuracy

    def kmeans(self, boxes, k, dist=np.median):
        box_number = boxes.shape[0]
        distances = np.empty((box_number, k))
        last_nearest = np.zeros((box_number,))
        np.random.seed(0)  # keras seeds from the clock; fixed here to be reproducible
        clusters = boxes[np.random.choice(box_number, k, replace=False)]  # init k clusters
        while True:
            distances = 1 - self.iou(boxes, clusters)
            current_nearest = np.argmin(distances, axis=1)
            if (last_nearest == current_nearest).all():
                break  # clusters won't change
            for cluster in range(k):
                clusters[cluster] = dist(  # update clusters
                    boxes[current_nearest == cluster], axis=0)
            last_nearest = current_nearest
        return clusters


km = YOLO_Kmeans(9)
result = km.kmeans(boxes, k=9)
result = result[np.lexsort(result.T[0, None])]
print(json.dumps({"boxes": len(boxes), "mean_iou": float(km.avg_iou(boxes, result))}))
'''

VOC_EVAL_REFERENCE = r'''
import sys, os, json, pickle
import numpy as np
import xml.etree.ElementTree as ET


def parse_rec(filename):  # py-faster-rcnn lib/datasets/voc_eval.py
    tree = ET.parse(filename)
    objects = []
    for obj in tree.findall("object"):
        obj_struct = {}
        obj_struct["name"] = obj.find("name").text
        obj_struct["pose"] = obj.find("pose").text
        obj_struct["truncated"] = int(obj.find("truncated").text)
        obj_struct["difficult"] = int(obj.find("difficult").text)
        bbox = obj.find("bndbox")
        obj_struct["bbox"] = [int(bbox.find("xmin").text), int(bbox.find("ymin").text),
                              int(bbox.find("xmax").text), int(bbox.find("ymax").text)]
        objects.append(obj_struct)
    return objects


def voc_ap(rec, prec, use_07_metric=False):
    if use_07_metric:
        ap = 0.
        for t in np.arange(0., 1.1, 0.1):
            if np.sum(rec >= t) == 0:
                p = 0
            else:
                p = np.max(prec[rec >= t])
            ap = ap + p / 11.
    else:
        mrec = np.concatenate(([0.], rec, [1.]))
        mpre = np.concatenate(([0.], prec, [0.]))
        for i in range(mpre.size - 1, 0, -1):
            mpre[i - 1] = np.maximum(mpre[i - 1], mpre[i])
        i = np.where(mrec[1:] != mrec[:-1])[0]
        ap = np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1])
    return ap


def voc_eval(detpath, annopath, imagesetfile, classname, cachedir, ovthresh=0.5, use_07_metric=False):
    if not os.path.isdir(cachedir):
        os.mkdir(cachedir)
    cachefile = os.path.join(cachedir, "annots.pkl")
    with open(imagesetfile, "r") as f:
        lines = f.readlines()
    imagenames = [x.strip() for x in lines]
    if not os.path.isfile(cachefile):
        recs = {}
        for i, imagename in enumerate(imagenames):
            recs[imagename] = parse_rec(annopath.format(imagename))
        with open(cachefile, "wb") as f:
            pickle.dump(recs, f)
    else:
        with open(cachefile, "rb") as f:
            recs = pickle.load(f)
    class_recs = {}
    npos = 0
    for imagename in imagenames:
        R = [obj for obj in recs[imagename] if obj["name"] == classname]
        bbox = np.array([x["bbox"] for x in R])
        difficult = np.array([x["difficult"] for x in R]).astype(bool)
        det = [False] * len(R)
        npos = npos + sum(~difficult)
        class_recs[imagename] = {"bbox": bbox, "difficult": difficult, "det": det}
    detfile = detpath.format(classname)
    with open(detfile, "r") as f:
        lines = f.readlines()
    splitlines = [x.strip().split(" ") for x in lines]
    image_ids = [x[0] for x in splitlines]
    confidence = np.array([float(x[1]) for x in splitlines])
    BB = np.array([[float(z) for z in x[2:]] for x in splitlines])
    sorted_ind = np.argsort(-confidence)
    BB = BB[sorted_ind, :]
    image_ids = [image_ids[x] for x in sorted_ind]
    nd = len(image_ids)
    tp = np.zeros(nd)
    fp = np.zeros(nd)
    for d in range(nd):
        R = class_recs[image_ids[d]]
        bb = BB[d, :].astype(float)
        ovmax = -np.inf
        BBGT = R["bbox"].astype(float)
        if BBGT.size > 0:
            ixmin = np.maximum(BBGT[:, 0], bb[0])
            iymin = np.maximum(BBGT[:, 1], bb[1])
            ixmax = np.minimum(BBGT[:, 2], bb[2])
            iymax = np.minimum(BBGT[:, 3], bb[3])
            iw = np.maximum(ixmax - ixmin + 1., 0.)
            ih = np.maximum(iymax - iymin + 1., 0.)
            inters = iw * ih
            uni = ((bb[2] - bb[0] + 1.) * (bb[3] - bb[1] + 1.) +
                   (BBGT[:, 2] - BBGT[:, 0] + 1.) * (BBGT[:, 3] - BBGT[:, 1] + 1.) - inters)
            overlaps = inters / uni
            ovmax = np.max(overlaps)
            jmax = np.argmax(overlaps)
        if ovmax > ovthresh:
            if not R["difficult"][jmax]:
                if not R["det"][jmax]:
                    tp[d] = 1.
                    R["det"][jmax] = 1
                else:
                    fp[d] = 1.
        else:
            fp[d] = 1.
    fp = np.cumsum(fp)
    tp = np.cumsum(tp)
    rec = tp / float(npos)
    prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    ap = voc_ap(rec, prec, use_07_metric)
    return rec, prec, ap


root, dets, cache, metric = sys.argv[1:5]
base = f"{root}/VOCdevkit/VOC2007"
aps = {}
for cls in CLASSES:
    _, _, ap = voc_eval(dets + "/comp4_det_test_{}.txt", base + "/Annotations/{}.xml",
                        base + "/ImageSets/Main/test.txt", cls, cache, 0.5, metric == "voc07")
    aps[cls] = float(ap)
print(json.dumps({"aps": aps, "map": float(np.mean(list(aps.values())))}))
'''.replace("CLASSES", repr(VOC_CLASSES))

VOC_LABEL_REFERENCE = r'''
import sys, os
import xml.etree.ElementTree as ET
# darknet scripts/voc_label.py, statement for statement (sets and classes from the arguments)
root = sys.argv[1]
sets = [tuple(s.split("/")) for s in sys.argv[2].split(",")]
classes = CLASSES

def convert(size, box):
    dw = 1. / size[0]
    dh = 1. / size[1]
    x = (box[0] + box[1]) / 2.0 - 1
    y = (box[2] + box[3]) / 2.0 - 1
    w = box[1] - box[0]
    h = box[3] - box[2]
    x = x * dw
    w = w * dw
    y = y * dh
    h = h * dh
    return (x, y, w, h)

def convert_annotation(year, image_id):
    in_file = open('%s/VOCdevkit/VOC%s/Annotations/%s.xml' % (root, year, image_id))
    out_file = open('%s/VOCdevkit/VOC%s/labels/%s.txt' % (root, year, image_id), 'w')
    tree = ET.parse(in_file)
    r = tree.getroot()
    size = r.find('size')
    w = int(size.find('width').text)
    h = int(size.find('height').text)
    for obj in r.iter('object'):
        difficult = obj.find('difficult').text
        cls = obj.find('name').text
        if cls not in classes or int(difficult) == 1:
            continue
        cls_id = classes.index(cls)
        xmlbox = obj.find('bndbox')
        b = (float(xmlbox.find('xmin').text), float(xmlbox.find('xmax').text), float(xmlbox.find('ymin').text),
             float(xmlbox.find('ymax').text))
        bb = convert((w, h), b)
        out_file.write(str(cls_id) + " " + " ".join([str(a) for a in bb]) + '\n')

for year, image_set in sets:
    os.makedirs('%s/VOCdevkit/VOC%s/labels/' % (root, year), exist_ok=True)
    image_ids = open('%s/VOCdevkit/VOC%s/ImageSets/Main/%s.txt' % (root, year, image_set)).read().strip().split()
    list_file = open('%s/%s_%s.txt' % (root, year, image_set), 'w')
    for image_id in image_ids:
        list_file.write('%s/VOCdevkit/VOC%s/JPEGImages/%s.jpg\n' % (root, year, image_id))
        convert_annotation(year, image_id)
    list_file.close()
'''.replace("CLASSES", repr(list(VOC_CLASSES)))


def build_tree(root: Path, source: Path) -> None:
    """The VOC-size tree: real annotations of ``source`` taken in turn under new ids."""
    datas = [p.read_bytes() for p in sorted(source.glob("**/VOC*/Annotations/*.xml"))]
    if not datas:
        raise SystemExit(f"--from {source}: no VOC*/Annotations/*.xml below it")
    k = 0
    for (year, split), count in SETS.items():
        voc = root / "VOCdevkit" / f"VOC{year}"
        (voc / "Annotations").mkdir(parents=True, exist_ok=True)
        (voc / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
        ids = [f"{year}_{split}_{i:06d}" for i in range(count)]
        for image_id in ids:
            (voc / "Annotations" / f"{image_id}.xml").write_bytes(datas[k % len(datas)])
            k += 1
        (voc / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))


def make_detections(root: Path, out: Path, seed: int = 0) -> int:
    """comp4 files for 2007/test: per image, jittered copies of its objects and random boxes (seeded)."""
    import xml.etree.ElementTree as ET

    rng = np.random.default_rng(seed)
    voc = root / "VOCdevkit" / "VOC2007"
    lines: dict[str, list[str]] = {c: [] for c in VOC_CLASSES}
    for image_id in (voc / "ImageSets" / "Main" / "test.txt").read_text().split():
        r = ET.parse(voc / "Annotations" / f"{image_id}.xml").getroot()
        w, h = int(r.find("size/width").text), int(r.find("size/height").text)
        made = 0
        for obj in r.iter("object"):
            b = [float(obj.find(f"bndbox/{t}").text) for t in ("xmin", "ymin", "xmax", "ymax")]
            for _ in range(3):
                jitter = rng.normal(0, 0.08, 4) * np.array([b[2] - b[0], b[3] - b[1]] * 2)
                x1, y1, x2, y2 = np.array(b) + jitter
                x1, x2 = sorted((float(np.clip(x1, 1, w)), float(np.clip(x2, 1, w))))
                y1, y2 = sorted((float(np.clip(y1, 1, h)), float(np.clip(y2, 1, h))))
                cls = obj.find("name").text if rng.random() < 0.9 else VOC_CLASSES[int(rng.integers(20))]
                lines[cls].append(f"{image_id} {rng.random()!r} {x1:.1f} {y1:.1f} {x2:.1f} {y2:.1f}\n")
                made += 1
        for _ in range(max(0, DETECTIONS_PER_IMAGE - made)):
            x1, x2 = sorted(rng.uniform(1, w, 2).tolist())
            y1, y2 = sorted(rng.uniform(1, h, 2).tolist())
            lines[VOC_CLASSES[int(rng.integers(20))]].append(
                f"{image_id} {rng.random() * 0.5!r} {x1:.1f} {y1:.1f} {x2:.1f} {y2:.1f}\n")
    out.mkdir(parents=True, exist_ok=True)
    for cls, rows in lines.items():
        (out / f"comp4_det_test_{cls}.txt").write_text("".join(rows))
    return sum(len(rows) for rows in lines.values())


CPU: dict[int, float] = {}  # id of a run's time -> its CPU seconds


def timed(argv: list[str], cwd: Path | None = None) -> tuple[float, str]:
    """Wall time of one fresh process, and its stdout; fails loudly on a non-zero exit.

    Its CPU time (user + system, the process and the workers it waited for) goes to ``CPU``:
    on a shared machine, wall times measure the neighbours too; CPU times much less so.
    """
    env = dict(os.environ, PYTHONPATH=str(REPO))
    # An installed package has its bytecode; without this, a shell that sets it would time
    # the compiling of every vocli module edited since its .pyc was written.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise SystemExit(f"{' '.join(map(str, argv))} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    seconds = Seconds(seconds)
    CPU[id(seconds)] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return seconds, done.stdout


class Seconds(float):
    """A wall time (a float), told apart from equal ones so that ``CPU`` can key on it."""


def vocli(*args) -> list[str]:
    return [sys.executable, "-m", "vocli", *map(str, args)]


def script(path: Path, *args) -> list[str]:
    return [sys.executable, str(path), *map(str, args)]


def alternate(name: str, ours: list[str], reference: list[str] | None, repeat: int,
              before=None) -> tuple[list[float], list[float], str, str]:
    """Run ours and the reference in turn ``repeat`` times; print each run, best and median."""
    mine, theirs, out, ref_out = [], [], "", ""
    for argv in (ours, reference):  # untimed: writes the bytecode and fills the file cache for both
        if argv is not None:
            timed(argv)
    for _ in range(repeat):
        if before:
            before()
        t, out = timed(ours)
        mine.append(t)
        if reference is not None:
            if before:
                before()
            t, ref_out = timed(reference)
            theirs.append(t)
    line = f"{name}: vocli best {min(mine):.2f} s, median {statistics.median(mine):.2f} s"
    if theirs:
        line += (f" | reference best {min(theirs):.2f} s, median {statistics.median(theirs):.2f} s"
                 f" | ratio {min(theirs) / min(mine):.2f}x best, "
                 f"{statistics.median(theirs) / statistics.median(mine):.2f}x median")
    print(line)
    print("   runs (s): vocli", " ".join(f"{t:.2f}" for t in mine),
          *(["| reference", " ".join(f"{t:.2f}" for t in theirs)] if theirs else []))
    cpu_mine, cpu_theirs = [CPU[id(t)] for t in mine], [CPU[id(t)] for t in theirs]
    line = f"   CPU (user + system, s): vocli best {min(cpu_mine):.2f}, median {statistics.median(cpu_mine):.2f}"
    if theirs:
        line += (f" | reference best {min(cpu_theirs):.2f}, median {statistics.median(cpu_theirs):.2f}"
                 f" | ratio {min(cpu_theirs) / min(cpu_mine):.2f}x best")
    print(line, flush=True)
    return mine, theirs, out, ref_out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="source", type=Path, default=SAMPLE)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--dir", default="/tmp")
    parser.add_argument("--only", default="help,stats,anchors,evaluate,convert")
    args = parser.parse_args()
    only = set(args.only.split(","))
    tmp = Path(tempfile.mkdtemp(prefix="vocli-bench-whole-", dir=args.dir))
    try:
        print(f"cores: {os.cpu_count()}, python {sys.version.split()[0]}, load average before: "
              f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        t = time.perf_counter()
        build_tree(tmp, args.source)
        print(f"tree: {sum(SETS.values())} annotation files from {args.source} in {time.perf_counter() - t:.1f} s")
        refs = tmp / "refs"
        refs.mkdir()
        (refs / "keras_kmeans.py").write_text(KERAS_REFERENCE)
        (refs / "voc_eval.py").write_text(VOC_EVAL_REFERENCE)
        (refs / "voc_label.py").write_text(VOC_LABEL_REFERENCE)

        if "help" in only:
            alternate("vocli --help", vocli("--help"), None, args.repeat)
        if "stats" in only:
            _, _, out, _ = alternate("vocli stats (21,503 files)", vocli("stats", "--root", tmp, "--json"), None,
                                     args.repeat)
            print(f"   stats: {json.loads(out)['total']['objects']} objects")
        if "anchors" in only:
            sets = "2007/trainval,2012/trainval"
            _, _, out, ref_out = alternate(
                "anchors k=9 on 07+12 trainval", vocli("anchors", "--k", 9, "--sets", sets, "--root", tmp, "--json"),
                script(refs / "keras_kmeans.py", tmp, sets), args.repeat)
            ours, theirs = json.loads(out), json.loads(ref_out)
            print(f"   boxes: vocli {ours['boxes']}, keras {theirs['boxes']}; mean IoU: vocli "
                  f"{ours['metrics']['mean_iou']:.4f}, keras {theirs['mean_iou']:.4f}")
        if "evaluate" in only:
            t = time.perf_counter()
            count = make_detections(tmp, tmp / "dets")
            print(f"   detections: {count} for 2007/test in {time.perf_counter() - t:.1f} s")
            cache = tmp / "voc_eval_cache"
            timed(script(refs / "voc_eval.py", tmp, tmp / "dets", cache, "voc07"))  # fills the cache
            for metric in ("voc07", "voc12"):
                _, _, out, ref_out = alternate(
                    f"evaluate --detections 07 test, {metric}",
                    vocli("evaluate", "--detections", tmp / "dets", "--sets", "2007/test", "--root", tmp,
                          "--metric", metric, "--json"),
                    script(refs / "voc_eval.py", tmp, tmp / "dets", cache, metric), args.repeat)
                ours = {c["name"]: c["ap"] for c in json.loads(out)["per_class"]}
                theirs = json.loads(ref_out)["aps"]
                worst = max(abs(ours[c] - theirs[c]) for c in VOC_CLASSES)
                print(f"   mAP vocli {json.loads(out)['map']:.6f}, voc_eval {json.loads(ref_out)['map']:.6f}; "
                      f"largest AP difference {worst:.1e}")
        if "convert" in only:
            sets = "2007/trainval,2007/test,2012/trainval"

            def clean() -> None:
                for year in ("2007", "2012"):
                    shutil.rmtree(tmp / "VOCdevkit" / f"VOC{year}" / "labels", ignore_errors=True)

            alternate("convert yolo (21,503 files)", vocli("convert", "yolo", "--root", tmp, "--sets", sets, "--json"),
                      script(refs / "voc_label.py", tmp, sets), args.repeat, before=clean)
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

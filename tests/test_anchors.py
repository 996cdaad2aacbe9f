"""vocli anchors: IoU distance, k-means recovery, determinism, metrics, inputs, cfg rewriting, CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from vocli.anchors import (
    STOCK_YOLOV3_ANCHORS, _lloyd, anchor_masks, anchor_metrics, compute_anchors, format_cfg_anchors,
    iou_distance, kmeans_iou, write_cfg_anchors,
)
from vocli.cli.app import main
from vocli.datasets.box_shapes import hdf5_shapes, voc_shapes, yolo_list_shapes
from vocli.errors import AnchorError, AnnotationError, DarknetFormatError


SHIPPED_VOC_CFG = Path(__file__).resolve().parents[1] / "vocli" / "darknet" / "cfg" / "yolov3-voc.cfg"


def three_groups(n_per_group: int, seed: int = 0):
    """Three tight clusters of shapes around known centres; returns (wh, group id, centres)."""
    centres = np.array([[0.05, 0.08], [0.30, 0.60], [0.80, 0.40]])
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(3), n_per_group)
    wh = centres[groups] * np.exp(rng.normal(0, 0.02, (len(groups), 2)))
    return wh, groups, centres


# --------------------------------------------------------------------------- distance


def test_iou_distance_hand_worked_pairs():
    a = np.array([[2.0, 2.0], [2.0, 1.0]])
    b = np.array([[1.0, 1.0], [1.0, 2.0]])
    # (2,2)-(1,1): inter 1, union 4 -> IoU 1/4.  (2,2)-(1,2): inter 2, union 4 -> 1/2.
    # (2,1)-(1,1): inter 1, union 2 -> 1/2.      (2,1)-(1,2): inter 1, union 3 -> 1/3.
    expected_iou = np.array([[0.25, 0.5], [0.5, 1 / 3]])
    np.testing.assert_allclose(iou_distance(a, b), 1 - expected_iou, rtol=0, atol=1e-12)
    assert iou_distance(a, a)[0, 0] == 0.0


def test_wh_iou_aligned_matches_rows():
    import torch

    from vocli.boxes import wh_iou_aligned

    a = np.array([[2.0, 2.0], [2.0, 1.0]])
    b = np.array([[1.0, 1.0], [1.0, 2.0]])
    np.testing.assert_allclose(wh_iou_aligned(a, b), [0.25, 1 / 3], atol=1e-12)
    assert torch.allclose(wh_iou_aligned(torch.tensor(a), torch.tensor(b)), torch.tensor([0.25, 1 / 3], dtype=torch.float64))


# --------------------------------------------------------------------------- clustering


@pytest.mark.parametrize("n_per_group", [40, 2000])  # 6000 boxes also exercises the restart subsample
def test_three_tight_groups_recovered(n_per_group):
    wh, groups, centres = three_groups(n_per_group)
    result = kmeans_iou(wh, 3, restarts=5, seed=1)
    assert result.converged
    # Sorted by area the groups are 0, 1, 2; Lloyd lands on the per-axis medians and
    # the polish moves each centre at most a little from there, towards more IoU.
    medians = np.array([np.median(wh[groups == g], axis=0) for g in range(3)])
    np.testing.assert_allclose(result.centres, medians, rtol=0.01)
    np.testing.assert_allclose(result.centres, centres, rtol=0.02)
    assert result.mean_iou >= mean_best_iou(wh, medians)
    assert result.mean_iou > 0.95


def mean_best_iou(wh, centres):
    """Independent objective: mean over boxes of the best shape IoU, by explicit loops."""
    total = 0.0
    for w, h in wh:
        total += max(min(w, cw) * min(h, ch) / (w * h + cw * ch - min(w, cw) * min(h, ch)) for cw, ch in centres)
    return total / len(wh)


def test_single_anchor_is_a_local_optimum_of_mean_iou():
    rng = np.random.default_rng(3)
    wh = rng.uniform(0.05, 0.9, (301, 2))
    result = kmeans_iou(wh, 1, restarts=3)
    score = mean_best_iou(wh, result.centres)
    assert result.mean_iou == pytest.approx(score, abs=1e-12)
    assert score >= mean_best_iou(wh, np.median(wh, axis=0, keepdims=True))
    for factor in ([1.02, 1], [1 / 1.02, 1], [1, 1.02], [1, 1 / 1.02]):
        assert mean_best_iou(wh, result.centres * factor) <= score


def test_empty_cluster_moves_to_the_worst_fitting_box():
    small = np.full((10, 2), 0.1) * np.linspace(0.98, 1.02, 10)[:, None]
    large = np.full((10, 2), 0.5) * np.linspace(0.98, 1.02, 10)[:, None]
    wh = np.concatenate([small, large]).astype(np.float32)
    wh = wh[np.lexsort((wh[:, 1], wh[:, 0]))]
    # Centre 1 at (5, 5) wins no box (IoU 0.01 < 0.04), so it is moved onto a large box.
    start = np.array([[[0.1, 0.1], [5.0, 5.0]]], dtype=np.float32)
    centres, iterations, done = _lloyd(wh, start, 100, "median")
    assert done[0]
    np.testing.assert_allclose(np.sort(centres[0], axis=0), [np.median(small, 0), np.median(large, 0)], rtol=1e-5)


def test_rare_shape_missing_from_the_restart_subsample_is_still_found():
    shapes = np.array([[0.05, 0.05], [0.1, 0.2], [0.2, 0.1], [0.3, 0.3], [0.5, 0.2], [0.2, 0.5],
                       [0.6, 0.6], [0.9, 0.5], [0.95, 0.95]])
    wh = np.repeat(shapes, [10000, 8000, 8000, 6000, 4000, 2000, 1000, 997, 3], axis=0)
    result = kmeans_iou(wh, 9, restarts=2)
    assert result.mean_iou == 1.0
    assert sorted(map(tuple, result.centres.tolist())) == sorted(map(tuple, shapes.tolist()))


def test_same_seed_same_anchors_whatever_the_input_order():
    wh, _, _ = three_groups(300, seed=5)
    wh = np.concatenate([wh, np.random.default_rng(9).uniform(0.02, 1.0, (500, 2))])
    first = kmeans_iou(wh, 9, restarts=4, seed=7)
    again = kmeans_iou(wh, 9, restarts=4, seed=7)
    shuffled = kmeans_iou(wh[np.random.default_rng(1).permutation(len(wh))], 9, restarts=4, seed=7)
    assert np.array_equal(first.centres, again.centres)
    assert np.array_equal(first.centres, shuffled.centres)
    assert first.mean_iou == shuffled.mean_iou
    # Restart i is the same run whatever the number of restarts.
    more = kmeans_iou(wh, 9, restarts=8, seed=7)
    assert more.restart_mean_ious[:4] == first.restart_mean_ious
    assert more.mean_iou >= max(first.restart_mean_ious) - 1e-12


def test_evolve_only_keeps_improvements():
    wh = np.random.default_rng(2).lognormal(-1.8, 0.7, (2000, 2)).clip(0.01, 1)
    plain = kmeans_iou(wh, 5, restarts=2, seed=0)
    evolved = kmeans_iou(wh, 5, restarts=2, seed=0, evolve=60)
    assert evolved.mean_iou >= plain.mean_iou
    # The reported objective is the objective of the returned centres.
    best = (1 - iou_distance(wh, evolved.centres)).max(axis=1).mean()
    assert evolved.mean_iou == pytest.approx(best, abs=1e-12)
    assert np.array_equal(evolved.centres, kmeans_iou(wh, 5, restarts=2, seed=0, evolve=60).centres)


def test_mean_update_runs_and_bad_update_is_rejected():
    wh, _, centres = three_groups(50)
    np.testing.assert_allclose(kmeans_iou(wh, 3, update="mean").centres, centres, rtol=0.02)
    with pytest.raises(ValueError):
        kmeans_iou(wh, 3, update="mode")


def test_clustering_errors():
    wh = np.array([[0.1, 0.1], [0.1, 0.1], [0.2, 0.3]])
    with pytest.raises(AnchorError, match="only 2 distinct box shapes for k=3"):
        kmeans_iou(wh, 3)
    with pytest.raises(AnchorError, match="k must be at least 1"):
        kmeans_iou(wh, 0)
    with pytest.raises(AnchorError, match="no boxes"):
        kmeans_iou(np.zeros((0, 2)), 1)


# --------------------------------------------------------------------------- metrics and masks


def test_stock_anchor_metrics_by_hand():
    # Pixels at 416: a box equal to the smallest anchor, one equal to the largest,
    # and a 416x2 sliver that no anchor fits within 4x.
    boxes = np.array([[10.0, 13.0], [373.0, 326.0], [416.0, 2.0]])
    m = anchor_metrics(boxes, np.array(STOCK_YOLOV3_ANCHORS))
    # Sliver: IoU with (aw, ah) is 2*aw / (832 + aw*ah - 2*aw); best is (33,23): 66/1525.
    assert m.mean_iou == pytest.approx((1 + 1 + 66 / 1525) / 3, abs=1e-12)
    assert m.best_possible_recall == pytest.approx(2 / 3)
    # (10,13) is within 4x of (10,13), (16,30), (33,23); (373,326) of (116,90), (156,198), (373,326).
    assert m.anchors_above_threshold == pytest.approx((3 + 3 + 0) / 3)


def test_anchor_masks():
    assert anchor_masks(9) == [[6, 7, 8], [3, 4, 5], [0, 1, 2]]
    assert anchor_masks(10) == [[7, 8, 9], [4, 5, 6], [0, 1, 2, 3]]
    assert anchor_masks(6, scales=2) == [[3, 4, 5], [0, 1, 2]]
    with pytest.raises(AnchorError):
        anchor_masks(2, scales=3)


def test_format_cfg_anchors():
    assert format_cfg_anchors([(10, 13), (16, 30), (33, 23)]) == "10,13,  16,30,  33,23"


# --------------------------------------------------------------------------- inputs


def test_voc_shapes_use_inclusive_pixels_and_skip_difficult(tiny_voc):
    shapes = voc_shapes(tiny_voc, "2007/trainval")
    # dog 10..50 x 20..60 in 100x80 -> 41/100, 41/80; cat 5..20 x 5..30 in 64x64 -> 16/64, 26/64.
    np.testing.assert_allclose(shapes.wh, [[41 / 100, 41 / 80], [16 / 64, 26 / 64]])
    assert shapes.images == 2
    with_difficult = voc_shapes(tiny_voc, "2007/trainval", include_difficult=True)
    assert len(with_difficult.wh) == 3 and [1.0, 1.0] in with_difficult.wh.tolist()
    # An image in two sets counts once; default sets fall back to trainval, never test.
    assert len(voc_shapes(tiny_voc, "2007/train,2007/trainval").wh) == 2
    assert voc_shapes(tiny_voc).source == "2007/trainval"


def write_yolo_tree(root: Path, labels: dict[str, str]) -> Path:
    """Images under JPEGImages/ with labels under labels/; returns the list file."""
    (root / "JPEGImages").mkdir(parents=True)
    (root / "labels").mkdir()
    lines = []
    for stem, text in labels.items():
        image = root / "JPEGImages" / f"{stem}.jpg"
        image.write_bytes(b"")
        lines.append(str(image))
        if text is not None:
            (root / "labels" / f"{stem}.txt").write_text(text)
    list_file = root / "train.txt"
    list_file.write_text("\n".join(lines) + "\n")
    return list_file


def test_yolo_list_shapes(tmp_path):
    list_file = write_yolo_tree(tmp_path, {
        "a": "0 0.5 0.5 0.25 0.125\n3 0.2 0.2 0.1 0.3\n",
        "b": "1 0.5 0.5 0.0 0.5\n",       # zero width: dropped and counted
        "c": None,                          # no label file
    })
    shapes = yolo_list_shapes(list_file)
    np.testing.assert_allclose(shapes.wh, [[0.25, 0.125], [0.1, 0.3]])
    assert (shapes.images, shapes.dropped_zero, shapes.missing_labels) == (3, 1, 1)
    (tmp_path / "labels" / "a.txt").write_text("0 0.5 0.5 0.25\n")
    with pytest.raises(AnnotationError, match="5 numbers per line"):
        yolo_list_shapes(list_file)


def test_data_file_stands_for_its_train_list(tmp_path, capsys):
    list_file = write_yolo_tree(tmp_path, {"a": "0 0.5 0.5 0.25 0.5\n1 0.5 0.5 0.5 0.125\n"})
    (tmp_path / "voc.names").write_text("dog\ncat\n")
    (tmp_path / "voc.data").write_text(f"classes = 2\ntrain = {list_file.name}\nnames = voc.names\n")
    rc = main(["anchors", "--labels", str(tmp_path / "voc.data"), "--k", "2", "--img-size", "320", "--json"])
    assert rc == 0
    # 0.25 x 0.5 -> 80 x 160 (area 12800) and 0.5 x 0.125 -> 160 x 40 (area 6400) at 320 px.
    assert json.loads(capsys.readouterr().out)["anchors"] == [[160, 40], [80, 160]]


def test_hdf5_shapes(tmp_path):
    import h5py

    path = tmp_path / "train.h5"
    with h5py.File(path, "w") as f:
        f["image_ids"] = np.array(["000001", "000002"], dtype=h5py.string_dtype())
        f["gt_boxes"] = np.array([[0.1, 0.2, 0.5, 0.4], [0.0, 0.0, 1.0, 1.0], [0.3, 0.3, 0.3, 0.6]], np.float32)
        f["gt_difficult"] = np.array([False, True, False])
    shapes = hdf5_shapes(path)
    np.testing.assert_allclose(shapes.wh, [[0.4, 0.2]], rtol=1e-6)
    assert (shapes.images, shapes.dropped_zero) == (2, 1)
    assert len(hdf5_shapes(path, include_difficult=True).wh) == 2
    bad = tmp_path / "bad.h5"
    with h5py.File(bad, "w") as f:
        f["something"] = np.zeros(3)
    with pytest.raises(AnnotationError, match="not a `vocli convert ssd` targets file"):
        hdf5_shapes(bad)


def test_compute_anchors_recovers_distinct_shapes_and_stock_metrics(tmp_path):
    # Three distinct shapes, k=3: each is its own cluster, so the anchors are the shapes.
    text = "0 0.5 0.5 {} {}\n"
    list_file = write_yolo_tree(tmp_path, {
        "a": text.format(10 / 416, 13 / 416) * 2,
        "b": text.format(373 / 416, 326 / 416),
        "c": text.format(416 / 416, 2 / 416),
    })
    result = compute_anchors(k=3, labels=list_file, restarts=3)
    assert result.anchors == [(10, 13), (416, 2), (373, 326)]   # by area: 130, 832, 121598
    assert result.cfg_anchors == "10,13,  416,2,  373,326"
    assert result.masks == [[2], [1], [0]]
    assert (result.boxes, result.distinct_shapes, result.images) == (4, 3, 3)
    assert result.metrics.mean_iou == pytest.approx(1.0)
    assert result.metrics.best_possible_recall == 1.0
    assert result.metrics.anchors_above_threshold == 1.0
    stock = result.stock_metrics
    assert stock.mean_iou == pytest.approx((3 + 66 / 1525) / 4, abs=1e-12)
    assert stock.best_possible_recall == pytest.approx(3 / 4)
    assert stock.anchors_above_threshold == pytest.approx(9 / 4)


def test_compute_anchors_errors(tmp_path, tiny_voc):
    with pytest.raises(AnchorError, match="at least 1"):
        compute_anchors(k=0, root=tiny_voc)
    list_file = write_yolo_tree(tmp_path / "y", {"a": "0 0.5 0.5 0 0.2\n", "b": None})
    with pytest.raises(AnchorError, match=r"no boxes found .*1 zero-size dropped.*1 label files missing"):
        compute_anchors(k=1, labels=list_file)
    with pytest.raises(AnchorError, match="only 2 distinct box shapes for k=3"):
        compute_anchors(k=3, root=tiny_voc, sets="2007/trainval")


def test_plot_is_written(tmp_path, tiny_voc):
    from PIL import Image

    result = compute_anchors(k=2, root=tiny_voc, plot=tmp_path / "anchors.png")
    with Image.open(result.plot) as im:
        assert im.format == "PNG" and im.width > 100


# --------------------------------------------------------------------------- cfg rewriting

TINY_CFG = (
    b"[net]\r\nwidth=64\r\nheight=64\r\nchannels=3\r\n\r\n"
    b"# a comment line with anchors=1,1\r\n"
    b"[convolutional]\r\nsize=1\r\nstride=1\r\npad=1\r\nfilters=24\r\nactivation=linear\r\n\r\n"
    b"[yolo]\r\nmask = 0,1,2\r\nanchors = 10,13,  16,30,  33,23   # stock\r\nclasses=3\r\nnum=3\r\n"
    b"jitter=.3"                      # no newline at the end of the file
)


def test_write_cfg_same_count_changes_only_anchor_lines(tmp_path):
    path = tmp_path / "tiny.cfg"
    path.write_bytes(TINY_CFG)
    assert write_cfg_anchors(path, [(5, 6), (70, 80), (200, 150)]) == 1
    old, new = TINY_CFG.split(b"\n"), path.read_bytes().split(b"\n")
    assert len(old) == len(new)
    changed = [i for i, (a, b) in enumerate(zip(old, new)) if a != b]
    assert [new[i] for i in changed] == [b"anchors = 5,6,  70,80,  200,150   # stock\r"]
    assert not list(tmp_path.glob(".*tmp"))   # no temp file left behind


def test_write_cfg_inserts_a_missing_num_line(tmp_path):
    path = tmp_path / "tiny.cfg"
    original = TINY_CFG.replace(b"num=3\r\n", b"")
    path.write_bytes(original)
    write_cfg_anchors(path, [(5, 6), (70, 80), (200, 150)])
    new = path.read_bytes().split(b"\r\n")
    at = new.index(b"[yolo]")
    assert new[at + 1] == b"num=3"
    assert [line for i, line in enumerate(new) if i != at + 1 and not line.startswith(b"anchors")] == \
        [line for line in original.split(b"\r\n") if not line.startswith(b"anchors")]


def test_write_cfg_shipped_voc_cfg(tmp_path):
    original = SHIPPED_VOC_CFG.read_bytes()
    anchors = [(20, 30), (40, 70), (80, 60), (60, 150), (130, 110), (110, 250), (250, 180), (200, 330), (380, 360)]
    path = tmp_path / "yolov3-voc.cfg"
    path.write_bytes(original.replace(b"\n", b"\r\n"))
    assert write_cfg_anchors(path, anchors) == 3
    old, new = original.replace(b"\n", b"\r\n").split(b"\n"), path.read_bytes().split(b"\n")
    diff = [(a, b) for a, b in zip(old, new) if a != b]
    assert len(old) == len(new) and len(diff) == 3
    assert all(a.startswith(b"anchors") and b == b"anchors=" + format_cfg_anchors(anchors).encode() + b"\r"
               for a, b in diff)


def test_write_cfg_new_count_rewrites_masks_and_filters(tmp_path):
    from vocli.darknet.cfg import load_cfg, yolo_anchors_and_mask

    anchors = [(20, 30), (40, 70), (80, 60), (130, 110), (200, 330), (380, 360)]
    path = tmp_path / "yolov3-voc.cfg"
    path.write_bytes(SHIPPED_VOC_CFG.read_bytes())
    write_cfg_anchors(path, anchors)
    old = SHIPPED_VOC_CFG.read_text().splitlines()
    new = path.read_text().splitlines()
    changed = sorted({a.split("=")[0] for a, b in zip(old, new) if a != b})
    assert changed == ["anchors", "filters", "mask", "num"]
    cfg = load_cfg(path)
    heads = [yolo_anchors_and_mask(s) for s in cfg.yolo_layers]
    assert [mask for _, mask in heads] == [[4, 5], [2, 3], [0, 1]]
    assert all(all_anchors == [tuple(map(float, a)) for a in anchors] for all_anchors, _ in heads)
    filters = [cfg.layers[s.index - 1].get_int("filters") for s in cfg.yolo_layers]
    assert filters == [2 * (5 + 20)] * 3


def test_write_cfg_errors(tmp_path):
    with pytest.raises(DarknetFormatError, match="not found"):
        write_cfg_anchors(tmp_path / "missing.cfg", [(1, 1)])
    no_yolo = tmp_path / "plain.cfg"
    no_yolo.write_text("[net]\nwidth=32\nheight=32\nchannels=3\n[convolutional]\nfilters=4\nsize=1\nstride=1\n")
    with pytest.raises(DarknetFormatError, match="no \\[yolo\\] section"):
        write_cfg_anchors(no_yolo, [(1, 1)])
    assert no_yolo.read_text().startswith("[net]")


# --------------------------------------------------------------------------- CLI


def test_cli_json(tiny_voc, capsys):
    rc = main(["anchors", "--root", str(tiny_voc), "--sets", "2007/trainval", "--k", "2", "--json"])
    out = capsys.readouterr().out
    assert rc == 0
    doc = json.loads(out)
    # cat 16/64 x 26/64 -> 104 x 169 px; dog 41/100 x 41/80 -> 170.56 x 213.2 -> 171 x 213.
    assert doc["anchors"] == [[104, 169], [171, 213]]
    assert doc["cfg_anchors"] == "104,169,  171,213"
    assert doc["metrics"]["mean_iou"] == pytest.approx(1.0, abs=2e-3)
    assert set(doc["stock_metrics"]) >= {"mean_iou", "best_possible_recall", "anchors_above_threshold"}


def test_cli_table_and_write_cfg(tiny_voc, tmp_path, capsys):
    cfg = tmp_path / "tiny.cfg"
    cfg.write_bytes(TINY_CFG)
    rc = main(["anchors", "--root", str(tiny_voc), "--k", "2", "--include-difficult", "--write-cfg", str(cfg)])
    captured = capsys.readouterr()
    assert rc == 0 and captured.out == ""
    assert "mean IoU" in captured.err and "YOLOv3 stock" in captured.err
    assert b"num=3" not in cfg.read_bytes() and b"num=2" in cfg.read_bytes()


def test_cli_errors(tiny_voc, tmp_path, capsys):
    assert main(["anchors", "--root", str(tiny_voc), "--k", "5"]) == 1
    assert "distinct box shapes" in capsys.readouterr().err
    assert main(["anchors", "--root", str(tiny_voc), "--sets", "2007/train", "--labels", "x.txt"]) == 2
    assert main(["anchors", "--labels", str(tmp_path / "nope.txt")]) == 1


# --------------------------------------------------------------------------- real sample


def test_real_sample_beats_stock_anchors(voc_sample):
    result = compute_anchors(k=9, root=voc_sample, sets="2007/trainval,2007/test,2012/trainval")
    assert result.boxes > 1000
    assert result.metrics.mean_iou > result.stock_metrics.mean_iou
    assert result.masks == [[6, 7, 8], [3, 4, 5], [0, 1, 2]]
    areas = [w * h for w, h in result.anchors]
    assert areas == sorted(areas)


def test_cli_write_cfg_starts_from_a_shipped_cfg(tiny_voc, tmp_path, capsys):
    from vocli.darknet.cfg import load_cfg, shipped_cfg_path, yolo_anchors_and_mask

    mine = tmp_path / "my-yolov3-voc.cfg"
    # Without --cfg, a missing file says how to start from a shipped one, and nothing is written.
    assert main(["anchors", "--root", str(tiny_voc), "--k", "2", "--write-cfg", str(mine)]) == 1
    assert "add --cfg yolov3-voc" in capsys.readouterr().err and not mine.exists()
    # A cfg that cannot take the anchors (3 [yolo] layers, 2 anchors) leaves no copy behind.
    assert main(["anchors", "--root", str(tiny_voc), "--k", "2", "--cfg", "yolov3-voc", "--write-cfg", str(mine)]) == 1
    assert "cannot be shared by 3 [yolo] layers" in capsys.readouterr().err and not mine.exists()
    # With --cfg NAME: the shipped cfg is copied and gets the anchors (k = 2: masks and filters follow).
    assert main(["anchors", "--root", str(tiny_voc), "--sets", "2007/trainval", "--k", "2", "--cfg",
                 "yolov3-tiny-voc", "--write-cfg", str(mine), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    cfg = load_cfg(mine)
    assert [yolo_anchors_and_mask(y)[0] for y in cfg.yolo_layers] == [[(104, 169), (171, 213)]] * 2
    assert doc["cfg_written"] == str(mine) and doc["cfg_sections"] == 2
    shipped = shipped_cfg_path("yolov3-tiny-voc").read_text().splitlines()
    changed = [a for a, b in zip(shipped, mine.read_text().splitlines()) if a != b]
    assert len(changed) == 8 and len(mine.read_text().splitlines()) == len(shipped)  # anchors, num, mask, filters x 2
    # An existing file is not overwritten from the shipped cfg.
    assert main(["anchors", "--root", str(tiny_voc), "--k", "2", "--cfg", "yolov3-voc", "--write-cfg", str(mine)]) == 1
    assert "drop --cfg to rewrite its anchors in place" in capsys.readouterr().err


def _mean_best_iou_by_loop(wh, anchors) -> float:
    """Mean over boxes of the best shape IoU min(w)min(h) / (area + area - overlap), one box at a time."""
    total = 0.0
    for w, h in wh:
        best = 0.0
        for aw, ah in anchors:
            inter = min(w, aw) * min(h, ah)
            best = max(best, inter / (w * h + aw * ah - inter))
        total += best
    return total / len(wh)


def test_golden_anchors_of_the_readme_sample(voc_sample):
    """The README's sample output, pinned (seeding, Lloyd, polish and rounding all feed into it)."""
    result = compute_anchors(k=9, root=voc_sample, sets="2007/trainval,2012/trainval")
    assert (result.boxes, result.distinct_shapes, result.images) == (821, 818, 350)
    assert result.anchors == [(27, 40), (22, 79), (52, 60), (57, 146), (111, 102), (97, 239), (225, 166),
                              (187, 293), (340, 346)]
    assert round(result.metrics.mean_iou, 4) == 0.7049
    assert round(result.stock_metrics.mean_iou, 4) == 0.6394


def _synthetic_shapes() -> np.ndarray:
    rng = np.random.default_rng(7)  # three log-normal families of box shapes, 600 boxes
    return np.concatenate([rng.lognormal([3.0, 3.4], 0.5, (300, 2)), rng.lognormal([4.8, 4.2], 0.4, (200, 2)),
                           rng.lognormal([3.6, 4.6], 0.3, (100, 2))])


def test_golden_anchors_of_a_seeded_synthetic_set():
    wh = _synthetic_shapes()
    result = kmeans_iou(wh, 6, restarts=4, seed=0)
    golden = [[11.3295, 26.7458], [20.0118, 17.4986], [22.7644, 31.7107], [35.9406, 88.9445],
              [93.3656, 57.4281], [160.1131, 72.6958]]
    np.testing.assert_allclose(result.centres, golden, atol=1e-4)
    # the k-means++ seeds decide each restart's basin: their scores pin the seeding itself
    np.testing.assert_allclose(result.restart_mean_ious, [0.661370, 0.658503, 0.661162, 0.661162], atol=1e-6)
    assert result.best_restart == 0
    assert result.mean_iou == pytest.approx(0.661370, abs=1e-6)
    assert _mean_best_iou_by_loop(wh, result.centres) == pytest.approx(result.mean_iou, abs=1e-12)


# --------------------------------------------------------------------------- mutation-pinned behaviour
# Each test below fails under a deliberate change of anchors.py (mutmut); expected values are worked
# out by hand in the comments, or by an independent loop written here.


def _evolve_by_hand(wh, centres, generations, rng):
    """ultralytics' anchor evolution, written out: each generation every coordinate mutates with
    probability 0.9 by a factor 1 + r * N(0, 1) * 0.1 (r one uniform draw per generation), factors
    clipped to [0.3, 3] (drawn again while none mutates), centres clipped to [1e-9, 1]; a
    candidate is kept only when the mean best IoU (by loops) strictly rises."""
    best, kept = _mean_best_iou_by_loop(wh, centres), 0
    for _ in range(generations):
        factor = np.ones_like(centres)
        while (factor == 1).all():
            mutate = rng.random(centres.shape) < 0.9
            factor = np.clip(mutate * rng.random() * rng.standard_normal(centres.shape) * 0.1 + 1, 0.3, 3.0)
        candidate = np.clip(centres * factor, 1e-9, 1.0)
        score = _mean_best_iou_by_loop(wh, candidate)
        if score > best:
            best, centres, kept = score, candidate, kept + 1
    return centres, best, kept


@pytest.mark.parametrize("wh, start", [
    # far-off start: most early generations improve
    ([[0.2, 0.3], [0.6, 0.5], [0.25, 0.2]], [[0.05, 0.05], [0.9, 0.9]]),
    # a full-image box: a centre mutated past 1 is clipped back to 1 (IoU 1 exactly)
    ([[1.0, 1.0], [0.5, 0.5]], [[0.97, 0.97], [0.45, 0.5]]),
    # a box below the 1e-9 floor: the centre stays at the floor however it mutates
    ([[1e-12, 1e-12]], [[1e-9, 1e-9]]),
])
def test_evolve_matches_the_written_out_algorithm(wh, start):
    from vocli.anchors import _evolve

    wh, start = np.array(wh), np.array(start)
    calls = []
    got, score, kept = _evolve(wh, start, 40, np.random.default_rng(11), calls.append)
    want, want_score, want_kept = _evolve_by_hand(wh, start, 40, np.random.default_rng(11))
    np.testing.assert_array_equal(got, want)
    assert score == pytest.approx(want_score, abs=1e-12) and kept == want_kept
    assert calls == [1] * 40                       # one progress tick per generation
    assert ((got > 0) & (got <= 1.0)).all() and got.min() >= 1e-9


def test_evolve_improves_a_far_off_start_and_counts_each_kept_step():
    from vocli.anchors import _evolve

    wh = np.array([[0.2, 0.3], [0.6, 0.5]])
    start = np.array([[0.05, 0.05], [0.9, 0.9]])
    # start: (0.2,0.3) vs (0.05,0.05): 0.0025/0.06 = 1/24; vs (0.9,0.9): 0.06/0.81 = 2/27.
    # (0.6,0.5) vs (0.9,0.9): 0.3/0.81 = 10/27. Mean best = (2/27 + 10/27) / 2 = 6/27 = 0.2222.
    assert _mean_best_iou_by_loop(wh, start) == pytest.approx(6 / 27)
    got, score, kept = _evolve(wh, start, 50, np.random.default_rng(0))
    assert kept >= 5 and score > 6 / 27 + 0.1
    assert score == pytest.approx(_mean_best_iou_by_loop(wh, got), abs=1e-12)
    # no generation at all: the start comes back untouched, nothing kept
    same, same_score, none = _evolve(wh, start, 0, np.random.default_rng(0))
    assert np.array_equal(same, start) and none == 0 and same_score == pytest.approx(6 / 27)


def test_kmeans_progress_ticks_restarts_then_each_generation():
    wh = np.array([[0.1, 0.1], [0.1, 0.12], [0.5, 0.4], [0.52, 0.4]])
    calls = []
    result = kmeans_iou(wh, 2, restarts=3, evolve=4, progress=calls.append)
    assert calls == [3, 1, 1, 1, 1]
    calls.clear()
    kmeans_iou(wh, 2, restarts=2, progress=calls.append)
    assert calls == [2]
    assert result.evolve_improvements >= 0 and result.distinct_shapes == 4


def _capture_scatter(monkeypatch):
    import vocli.plotting

    seen = {}

    def fake(path, groups, **kwargs):
        seen.update(path=path, groups=groups, **kwargs)
        return Path(path)

    monkeypatch.setattr(vocli.plotting, "scatter_chart", fake)
    return seen


def test_plot_anchors_passes_pixels_labels_and_both_anchor_sets(monkeypatch, tmp_path):
    from vocli.anchors import plot_anchors

    seen = _capture_scatter(monkeypatch)
    wh = np.array([[0.25, 0.5], [0.125, 0.75]])
    anchors_px = np.array([[10, 20], [30, 60]])
    assert plot_anchors(tmp_path / "a.png", wh, anchors_px, 320) == tmp_path / "a.png"
    # 0.25 x 0.5 -> 80 x 160, 0.125 x 0.75 -> 40 x 240 at 320 px; nothing sampled (2 <= 5000).
    assert seen["groups"] == {"boxes": ([80.0, 40.0], [160.0, 240.0])}
    assert seen["title"] == "2 anchors at 320 px"
    assert (seen["xlabel"], seen["ylabel"]) == ("width (px)", "height (px)")
    stock_w = [10, 16, 33, 30, 62, 59, 116, 156, 373]
    stock_h = [13, 30, 23, 61, 45, 119, 90, 198, 326]
    assert seen["highlight"] == {"anchors": ([10, 30], [20, 60]), "YOLOv3 stock": (stock_w, stock_h)}


def test_plot_anchors_samples_distinct_boxes_in_input_order(monkeypatch, tmp_path):
    from vocli.anchors import plot_anchors

    seen = _capture_scatter(monkeypatch)
    wh = np.array([[0.1, 0.1], [0.2, 0.2], [0.3, 0.3], [0.4, 0.4]])
    plot_anchors(tmp_path / "a.png", wh, np.array([[1, 1]]), 10, max_points=3)
    # default seed 0: PCG64's choice(4, 3, replace=False) picks rows {1, 2, 3} (numpy's own draw;
    # with replacement it would be [2, 2, 3], with seed 1 {0, 1, 3}); kept in input order.
    assert seen["groups"]["boxes"] == ([2.0, 3.0, 4.0], [2.0, 3.0, 4.0])
    plot_anchors(tmp_path / "a.png", wh, np.array([[1, 1]]), 10, seed=1, max_points=3)
    assert seen["groups"]["boxes"] == ([1.0, 2.0, 4.0], [1.0, 2.0, 4.0])
    # exactly max_points boxes: all of them
    plot_anchors(tmp_path / "a.png", wh, np.array([[1, 1]]), 10, max_points=4)
    assert seen["groups"]["boxes"] == ([1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0])


def test_plot_anchors_draws_at_most_5000_boxes_by_default(monkeypatch, tmp_path):
    from vocli.anchors import plot_anchors

    seen = _capture_scatter(monkeypatch)
    wh = np.linspace(0.01, 1.0, 5001)[:, None].repeat(2, axis=1)
    plot_anchors(tmp_path / "a.png", wh, np.array([[1, 1]]), 100)
    xs, ys = seen["groups"]["boxes"]
    assert len(xs) == 5000 and len(set(xs)) == 5000 and xs == sorted(xs) and xs == ys


NET = "[net]\nwidth=32\nheight=32\nchannels=3\n"
CONV = "[convolutional]\nfilters={}\nsize=1\nstride=1\n"


def test_write_cfg_keeps_bytes_that_are_not_utf8(tmp_path):
    path = tmp_path / "latin1.cfg"
    original = (NET + "# caf\xe9 au lait\n" + CONV.format(12) + "[yolo]\nanchors=1,2,3,4\nclasses=1\nnum=2\n").encode("latin-1")
    path.write_bytes(original)
    assert write_cfg_anchors(path, [(5, 6), (7, 8)]) == 1
    # only the anchors line changes; the lone 0xE9 byte (invalid UTF-8) is written back as it was
    assert path.read_bytes() == original.replace(b"anchors=1,2,3,4", b"anchors=5,6,  7,8")


def test_write_cfg_parse_errors_name_the_file(tmp_path):
    path = tmp_path / "bad.cfg"
    path.write_text(NET + "[bogus]\nsize=1\n")
    with pytest.raises(DarknetFormatError, match="^" + re.escape(f"{path}:5: unsupported section [bogus]")):
        write_cfg_anchors(path, [(1, 1)])


def test_write_cfg_same_count_keeps_hand_made_masks_and_inserts_num_after_the_header(tmp_path):
    path = tmp_path / "two.cfg"
    # two heads of 2 anchors, no num=; the first has no mask (all anchors), the second a
    # hand-made reversed one. Header lines end in a comment and in spaces.
    text = (NET + CONV.format(12) + "[yolo] # coarse X\nanchors=1,2,3,4\nclasses=1\n"
            + CONV.format(12) + "[yolo]  \nanchors=1,2,3,4\nmask=1,0\nclasses=1\n")
    path.write_text(text)
    assert write_cfg_anchors(path, [(5, 6), (7, 8)]) == 2
    want = (NET + CONV.format(12) + "[yolo] # coarse X\nnum=2\nanchors=5,6,  7,8\nclasses=1\n"
            + CONV.format(12) + "[yolo]  \nnum=2\nanchors=5,6,  7,8\nmask=1,0\nclasses=1\n")
    assert path.read_text() == want


def test_write_cfg_header_ending_in_a_form_feed_gets_a_newline_before_the_inserted_option(tmp_path):
    # Python's splitlines() ends a line at \f too, so "[yolo]\f" is a header line with no \r\n
    # of its own: the inserted num= goes on a new line after the kept \f.
    path = tmp_path / "ff.cfg"
    path.write_text(NET + CONV.format(12) + "[yolo]\fanchors=1,2,3,4\nclasses=1\n")
    write_cfg_anchors(path, [(5, 6), (7, 8)])
    assert path.read_text() == NET + CONV.format(12) + "[yolo]\f\nnum=2\nanchors=5,6,  7,8\nclasses=1\n"


def test_write_cfg_new_count_needs_a_convolution_right_before_each_head(tmp_path):
    first = tmp_path / "first.cfg"
    # [yolo] as layer 0 reads the 6 input channels (1 anchor x (5 + 1 class)); a conv comes after.
    first.write_text("[net]\nwidth=32\nheight=32\nchannels=6\n[yolo]\nanchors=1,2\nclasses=1\n" + CONV.format(4))
    with pytest.raises(DarknetFormatError) as info:
        write_cfg_anchors(first, [(1, 2), (3, 4)])
    assert str(info.value) == f"{first}:5: [yolo] must follow a [convolutional] layer to change the anchor count"
    pooled = tmp_path / "pooled.cfg"
    text = NET + CONV.format(14) + "[maxpool]\nsize=2\nstride=2\n[yolo]\nanchors=1,2,3,4\nclasses=2\n"
    pooled.write_text(text)
    with pytest.raises(DarknetFormatError) as info:
        write_cfg_anchors(pooled, [(1, 2), (3, 4), (5, 6)])
    assert str(info.value) == f"{pooled}:12: [yolo] must follow a [convolutional] layer to change the anchor count"
    assert pooled.read_text() == text                # nothing written


def test_write_cfg_new_count_uses_20_classes_when_the_head_names_none(tmp_path):
    path = tmp_path / "voc20.cfg"
    path.write_text(NET + CONV.format(50) + "[yolo]\nanchors=1,2,3,4\n")
    write_cfg_anchors(path, [(1, 2), (3, 4), (5, 6)])
    # 3 anchors x (5 + 20 classes) = 75 filters; mask 0,1,2 and num=3 inserted after the header
    assert path.read_text() == (NET + "[convolutional]\nfilters=75\nsize=1\nstride=1\n"
                                "[yolo]\nnum=3\nmask=0,1,2\nanchors=1,2,  3,4,  5,6\n")


def test_anchor_metrics_compute_in_float64_whatever_the_input_dtype():
    # 0.1 x 0.3 vs 0.3 x 0.1: inter 0.01, union 0.05, IoU 1/5. In float32 the areas and the
    # quotient round differently (about 2e-8 off); the loop below works on the same float32
    # values widened to Python floats, so only a float64 computation matches it to 1e-15.
    box32 = np.array([[0.1, 0.3]], np.float32)
    anchor32 = np.array([[0.3, 0.1]], np.float32)
    want = _mean_best_iou_by_loop(box32.tolist(), anchor32.tolist())
    assert want == pytest.approx(0.2, abs=1e-7)
    for wh, anchors in ((box32, anchor32.astype(np.float64)), (box32.astype(np.float64), anchor32)):
        m = anchor_metrics(wh, anchors)
        assert m.mean_iou == pytest.approx(want, abs=1e-15)


def test_anchor_metrics_ratio_test_is_strict_and_checks_both_axes():
    anchors = np.array([[10.0, 10.0]])
    # exactly 4x wider: worst ratio 1/4 is not above 1/4, so it fails (ultralytics' `> 1/thr`)
    m = anchor_metrics(np.array([[40.0, 10.0]]), anchors)
    assert (m.best_possible_recall, m.anchors_above_threshold) == (0.0, 0.0)
    # 5x taller: height ratio 5, worst 1/5 < 1/4 fails; 3x taller passes (1/3 > 1/4)
    m = anchor_metrics(np.array([[10.0, 50.0], [10.0, 30.0]]), anchors)
    assert (m.best_possible_recall, m.anchors_above_threshold) == (0.5, 0.5)
    # 5x shorter fails too (h ratio 1/5), 3.9x narrower passes
    m = anchor_metrics(np.array([[10.0, 2.0], [10 / 3.9, 10.0]]), anchors)
    assert (m.best_possible_recall, m.anchors_above_threshold) == (0.5, 0.5)
    assert m.ratio_threshold == 4.0
    # threshold 2: the 3x-taller box fails, a 1.5x-wider one passes; the threshold is reported
    m = anchor_metrics(np.array([[10.0, 30.0], [15.0, 10.0]]), anchors, ratio_threshold=2.0)
    assert (m.best_possible_recall, m.ratio_threshold) == (0.5, 2.0)


def test_anchor_masks_error_says_how_many_anchors_are_needed():
    with pytest.raises(AnchorError) as info:
        anchor_masks(2, scales=3)
    assert str(info.value) == "k=2 anchors cannot be shared by 3 [yolo] layers (use --k 3 or more)"


def test_compute_anchors_defaults_and_img_size_checks(tmp_path):
    # ten distinct square shapes 0.1 .. 1.0: the default k = 9 gives 9 anchors
    text = "".join(f"0 0.5 0.5 {s / 10} {s / 10}\n" for s in range(1, 11))
    list_file = write_yolo_tree(tmp_path, {"a": text})
    result = compute_anchors(labels=list_file)
    assert (result.k, result.restarts, result.iters, result.evolve, result.seed, result.update) == \
        (9, 10, 300, 0, 0, "median")
    assert len(result.anchors) == 9 and result.img_size == 416
    assert result.masks == [[6, 7, 8], [3, 4, 5], [0, 1, 2]]      # at most 3 [yolo] layers
    with pytest.raises(AnchorError) as info:
        compute_anchors(k=1, labels=list_file, img_size=0)
    assert str(info.value) == "--img-size must be positive, got 0"
    # img_size 1 is allowed: every anchor rounds to at least 1 px
    tiny = compute_anchors(k=1, labels=list_file, img_size=1)
    assert tiny.anchors == [(1, 1)] and tiny.img_size == 1
    with pytest.raises(AnchorError) as info:
        compute_anchors(k=0, labels=list_file)
    assert str(info.value) == "--k must be at least 1, got 0"


def test_grouped_median_per_key_with_even_odd_and_empty_groups():
    from vocli.anchors import _grouped_median

    values = np.array([1.0, 2, 3, 4, 5, 6])
    # restart 0 keys 0/1, restart 1 keys 2/3 (offset by k = 2), group 4 empty (last):
    # 0: 1,3,5,6 -> (3+5)/2 = 4   1: 2,4 -> 3   2: 1,2,6 -> 2   3: 3,4,5 -> 4
    medians, counts = _grouped_median(values, np.array([[0, 1, 0, 1, 0, 0], [2, 2, 3, 3, 3, 2]]), 5)
    assert counts.tolist() == [4, 2, 3, 3, 0]
    assert medians[:4].tolist() == [4.0, 3.0, 2.0, 4.0]
    # empty first and last groups: 1: 1,2,3 -> 2   2: 4,5,6 -> 5
    medians, counts = _grouped_median(values, np.array([[1, 1, 1, 2, 2, 2]]), 4)
    assert counts.tolist() == [0, 3, 3, 0] and medians[1:3].tolist() == [2.0, 5.0]
    # one box per group: the box itself
    medians, counts = _grouped_median(values[:3], np.array([[2, 0, 1]], np.uint8), 3)
    assert medians.tolist() == [2.0, 3.0, 1.0] and counts.tolist() == [1, 1, 1]


# Six shapes sorted by width: three small, three large.
SIX = np.array([[1, 1], [1, 2], [2, 1], [10, 10], [10, 12], [12, 10]], float)


def test_lloyd_median_by_hand_with_two_restarts_at_once():
    # Restart 0 starts at (1,1), (1,2). Round 1: (1,1)->0 (IoU 1), (1,2)->1, (2,1)->0 (1/2 vs 1/3),
    # the large ones ->1 (2/100 > 1/100). Medians: 0: w 1,2 -> 1.5, h 1,1 -> 1; 1: w 1,10,10,12 -> 10,
    # h 2,10,10,12 -> 10. Round 2: (1,2) vs (1.5,1): 1/2.5 = 0.4 beats 2/100 -> 0, so 0 = the small
    # three -> (1,1), 1 = the large three -> (10,10). Round 3: no change: 2 iterations, converged.
    # Restart 1 starts at (1,1), (10,10): right at once, 1 iteration.
    start = np.array([[[1, 1], [1, 2]], [[1, 1], [10, 10]]], float)
    centres, iterations, done = _lloyd(SIX, start, 100, "median")
    assert centres.tolist() == [[[1, 1], [10, 10]], [[1, 1], [10, 10]]]
    assert iterations.tolist() == [2, 1] and done.tolist() == [True, True]
    # Mean update, restart 0 round 1: 0 -> (1.5, 1), 1 -> (33/4, 34/4); round 2: (1,2) vs
    # (8.25, 8.5) is 2/70.125, so it joins 0: means (4/3, 4/3) and (32/3, 32/3).
    centres, iterations, done = _lloyd(SIX, start, 100, "mean")
    np.testing.assert_allclose(centres, [[[4 / 3, 4 / 3], [32 / 3, 32 / 3]]] * 2, rtol=1e-15)
    assert iterations.tolist() == [2, 1] and done.tolist() == [True, True]


def test_lloyd_stops_at_iters_or_when_few_boxes_move():
    start = np.array([[[1, 1], [1, 2]]], float)
    centres, iterations, done = _lloyd(SIX, start, 1, "median")
    assert centres[0].tolist() == [[1.5, 1], [10, 10]]
    assert (iterations.tolist(), done.tolist()) == ([1], [False])
    # tol 0.5: round 2 moves 1 box, not more than int(0.5 * 6) = 3, so it stops there
    centres, iterations, done = _lloyd(SIX, start, 100, "median", tol=0.5)
    assert centres[0].tolist() == [[1.5, 1], [10, 10]]
    assert (iterations.tolist(), done.tolist()) == ([1], [True])
    # tol 1/6: int(1.0) = 1 box may move, so round 2 (one box) also ends it; at 1/7 it does not
    assert _lloyd(SIX, start, 100, "median", tol=1 / 6)[1].tolist() == [1]
    assert _lloyd(SIX, start, 100, "median", tol=1 / 7)[1].tolist() == [2]
    # the start is not modified in place
    assert start.tolist() == [[[1, 1], [1, 2]]]


def test_lloyd_two_empty_clusters_take_the_two_worst_boxes():
    # (500,500) and (600,600) win no box. Each box's best IoU is with (1,1): 1, 1/2, 1/2, 1/100,
    # 1/120, 1/120. The worst is (10,12) (first of the tie), then (12,10). Centre 0 takes all six:
    # medians w 1,1,2,10,10,12 -> 6 and h the same -> 6.
    start = np.array([[[1, 1], [500, 500], [600, 600]]], float)
    centres, iterations, done = _lloyd(SIX, start, 1, "median")
    assert centres[0].tolist() == [[6, 6], [10, 12], [12, 10]]
    centres, _, _ = _lloyd(SIX, start, 1, "mean")      # mean of all six: 36/6 = 6 and 36/6 = 6
    assert centres[0].tolist() == [[6, 6], [10, 12], [12, 10]]
    # only the last cluster empty (mean update): 0 -> (4/3, 4/3), 1 -> (32/3, 32/3), and 2 takes
    # the worst box: best IoUs 1, 1/2, 1/2, 1, 100/120, 100/120 -> (1, 2), first of the tie
    centres, _, _ = _lloyd(SIX, np.array([[[1, 1], [10, 10], [600, 600]]], float), 1, "mean")
    np.testing.assert_allclose(centres[0], [[4 / 3, 4 / 3], [32 / 3, 32 / 3], [1, 2]], rtol=1e-15)


def test_polish_walks_a_width_back_in_halving_log_steps():
    from vocli.anchors import _polish

    # One box 0.2 x 0.2, centre 0.2 e^0.037 wide. Steps of e^-0.01 raise the IoU 3 times
    # (offset 0.007), e^-0.005 once (0.002), e^-0.0025 once (-0.0005, closer than 0.002);
    # e^+-0.00125 do not help, and 0.000625 is below min_step: width 0.2 e^-0.0005.
    got = _polish(np.array([[0.2, 0.2]]), np.array([[0.2 * np.exp(0.037), 0.2]]))
    np.testing.assert_allclose(got, [[0.2 * np.exp(-0.0005), 0.2]], rtol=1e-12)
    # the same from below, on the height
    got = _polish(np.array([[0.2, 0.2]]), np.array([[0.2, 0.2 * np.exp(-0.037)]]))
    np.testing.assert_allclose(got, [[0.2, 0.2 * np.exp(0.0005)]], rtol=1e-12)
    # a centre already at its box does not move; results are clipped into [1e-9, 1]
    assert _polish(np.array([[0.3, 0.5]]), np.array([[0.3, 0.5]])).tolist() == [[0.3, 0.5]]
    # 1.0 e^0.0305 wide for a full-width box: three e^-0.01 steps leave e^+0.0005, which no
    # smaller step beats (0.0045, 0.002, 0.00075 away): 1.0005 is clipped back to 1
    assert _polish(np.array([[1.0, 0.5]]), np.array([[np.exp(0.0305), 0.5]])).tolist() == [[1.0, 0.5]]
    assert _polish(np.array([[1e-12, 0.5]]), np.array([[1e-12, 0.5]])).tolist() == [[1e-9, 0.5]]


def _seed_by_hand(wh, k, g):
    """k-means++ written out: a uniform first box, then each next box drawn with probability
    d^2 / sum d^2, d = 1 - IoU to the nearest chosen centre, by inverting the running sum at
    u * total (the first box whose running sum exceeds it; the last box when all d are 0)."""
    n = len(wh)
    chosen = [wh[g.integers(n)]]
    for _ in range(1, k):
        d2 = [min(1 - _mean_best_iou_by_loop([box], [c]) for c in chosen) ** 2 for box in wh]
        target, running, pick = g.random() * sum(d2), 0.0, n - 1
        for i, v in enumerate(d2):
            running += v
            if running > target:
                pick = i
                break
        chosen.append(wh[pick])
    return np.array(chosen)


def test_seed_plus_plus_matches_the_written_out_draws():
    from vocli.anchors import _seed_plus_plus

    wh = np.array([[0.1, 0.1], [0.12, 0.3], [0.3, 0.12], [0.5, 0.5], [0.6, 0.9], [0.9, 0.4], [0.2, 0.2]])
    got = _seed_plus_plus(wh, 4, [np.random.default_rng(s) for s in range(6)])
    assert got.shape == (6, 4, 2)
    for s in range(6):
        np.testing.assert_array_equal(got[s], _seed_by_hand(wh, 4, np.random.default_rng(s)))


def test_seed_plus_plus_never_repeats_a_shape_while_others_remain():
    from vocli.anchors import _seed_plus_plus

    # Two shapes: a repeat has d = 0, so the second seed is always the other shape.
    wh = np.array([[0.1, 0.1], [0.1, 0.1], [0.4, 0.2]])
    got = _seed_plus_plus(wh, 2, [np.random.default_rng(s) for s in range(20)])
    assert all(sorted(map(tuple, c.tolist())) == [(0.1, 0.1), (0.4, 0.2)] for c in got)
    # One shape, k = 2: every d is 0 and the draw falls on the last box (no error).
    same = np.array([[0.3, 0.3]] * 3)
    assert _seed_plus_plus(same, 2, [np.random.default_rng(0)]).tolist() == [[[0.3, 0.3], [0.3, 0.3]]]
    # Two shapes, k = 3: after both are seeds every d is 0, and the third is the last box,
    # (0.1, 0.1) here (not the first or the second-to-last, both (0.4, 0.2)).
    two = np.array([[0.4, 0.2], [0.4, 0.2], [0.1, 0.1]])
    for seeds in _seed_plus_plus(two, 3, [np.random.default_rng(s) for s in range(10)]):
        assert seeds[2].tolist() == [0.1, 0.1]
        assert sorted(map(tuple, seeds[:2].tolist())) == [(0.1, 0.1), (0.4, 0.2)]
    # the seeds keep the boxes' dtype (float32 for the restart sample)
    assert _seed_plus_plus(two.astype(np.float32), 2, [np.random.default_rng(0)]).dtype == np.float32


def test_kmeans_counts_shapes_distinct_in_either_coordinate():
    # sorted: (0.1,0.1), (0.1,0.2), (0.1,0.2), (0.3,0.2): rows differ in w or h at 2 places -> 3
    wh = np.array([[0.3, 0.2], [0.1, 0.2], [0.1, 0.1], [0.1, 0.2]])
    result = kmeans_iou(wh, 3, restarts=1)
    assert result.distinct_shapes == 3
    # three shapes, three anchors: each anchor is its shape, by area 0.01, 0.02, 0.06
    assert result.centres.tolist() == [[0.1, 0.1], [0.1, 0.2], [0.3, 0.2]]
    assert result.mean_iou == 1.0 and result.converged
    with pytest.raises(AnchorError) as info:
        kmeans_iou(wh, 4)
    assert str(info.value) == "only 3 distinct box shapes for k=4 anchors (use --k 3 or fewer, or add data)"


def test_kmeans_argument_errors_word_for_word():
    wh = np.array([[0.1, 0.1], [0.2, 0.3]])
    with pytest.raises(ValueError) as info:
        kmeans_iou(wh, 1, update="mode")
    assert str(info.value) == "unknown update 'mode'; use median or mean"
    with pytest.raises(AnchorError) as info:
        kmeans_iou(wh, 0)
    assert str(info.value) == "k must be at least 1, got 0"
    for restarts, iters in ((0, 5), (5, 0)):
        with pytest.raises(AnchorError) as info:
            kmeans_iou(wh, 1, restarts=restarts, iters=iters)
        assert str(info.value) == f"restarts and iters must be at least 1, got {restarts} and {iters}"
    with pytest.raises(AnchorError) as info:
        kmeans_iou(np.zeros((0, 2)), 1)
    assert str(info.value) == "no boxes to cluster"
    # one restart, one iteration are allowed; a flat list of w, h pairs is read as (N, 2)
    result = kmeans_iou([0.1, 0.1, 0.2, 0.3], 2, restarts=1, iters=1)
    assert result.centres.tolist() == [[0.1, 0.1], [0.2, 0.3]] and result.iterations == 1


def test_compute_anchors_cfg_option_errors_word_for_word(tmp_path):
    list_file = write_yolo_tree(tmp_path / "y", {"a": "0 0.5 0.5 0.25 0.5\n"})
    with pytest.raises(AnchorError) as info:
        compute_anchors(k=1, labels=list_file, cfg="yolov3-voc")
    assert str(info.value) == "--cfg names the cfg to start from; give the new file with --write-cfg FILE"
    existing = tmp_path / "mine.cfg"
    existing.write_text("kept")
    with pytest.raises(DarknetFormatError) as info:
        compute_anchors(k=1, labels=list_file, cfg="yolov3-voc", write_cfg=existing)
    assert str(info.value) == (f"{existing} exists (drop --cfg to rewrite its anchors in place, "
                               "or choose a new file name)")
    assert existing.read_text() == "kept"
    missing = tmp_path / "new.cfg"
    with pytest.raises(DarknetFormatError) as info:
        compute_anchors(k=1, labels=list_file, write_cfg=missing)
    assert str(info.value) == (f"{missing}: cfg file not found (start from a shipped cfg: add --cfg yolov3-voc "
                               f"to write {missing} from it (`vocli models` lists them), or edit an existing cfg "
                               "in place)")
    # an unknown cfg name fails before the boxes are read (this list has none: that error would differ)
    empty = write_yolo_tree(tmp_path / "e", {"a": ""})
    with pytest.raises(DarknetFormatError, match="no-such-cfg: no such cfg file or shipped cfg name"):
        compute_anchors(k=1, labels=empty, cfg="no-such-cfg", write_cfg=missing)
    assert not missing.exists()


def test_compute_anchors_no_boxes_message_lists_only_what_happened(tmp_path):
    hint = " (check --root/--sets or --labels, and --include-difficult)"
    empty = write_yolo_tree(tmp_path / "e", {"a": ""})
    with pytest.raises(AnchorError) as info:
        compute_anchors(k=1, labels=empty)
    assert str(info.value) == f"no boxes found in {empty}" + hint
    dropped = write_yolo_tree(tmp_path / "d", {"a": "0 0.5 0.5 0 0.2\n0 0.5 0.5 0.1 0\n"})
    with pytest.raises(AnchorError) as info:
        compute_anchors(k=1, labels=dropped)
    assert str(info.value) == f"no boxes found in {dropped} (2 zero-size dropped)" + hint
    missing = write_yolo_tree(tmp_path / "m", {"a": None})
    with pytest.raises(AnchorError) as info:
        compute_anchors(k=1, labels=missing)
    assert str(info.value) == f"no boxes found in {missing} (1 label files missing)" + hint


def test_compute_anchors_passes_sets_difficult_and_progress_through(tiny_voc, tmp_path):
    # 2007/train holds image 1 only: the dog, 41/100 x 41/80 -> 170.56 x 213.2 -> (171, 213) at 416
    result = compute_anchors(k=1, root=tiny_voc, sets="2007/train")
    assert (result.boxes, result.anchors, result.source) == (1, [(171, 213)], "2007/train")
    # with difficult objects: dog, the difficult 100 x 80 person (1.0 x 1.0) and the cat
    assert compute_anchors(k=1, root=tiny_voc, sets="2007/trainval", include_difficult=True).boxes == 3
    list_file = write_yolo_tree(tmp_path / "y", {"a": "0 0.5 0.5 0.25 0.5\n", "b": "0 0.5 0.5 0.5 0.25\n"})
    calls = []
    compute_anchors(k=2, labels=list_file, restarts=3, evolve=2, progress=calls.append)
    assert calls == [1, 1, 3, 1, 1]   # one tick per label file, the restarts, one per generation


def test_compute_anchors_uses_the_seed_it_is_given(tmp_path):
    rng = np.random.default_rng(4)
    wh = rng.uniform(0.05, 0.95, (60, 2))
    list_file = write_yolo_tree(tmp_path, {"a": "".join(f"0 0.5 0.5 {w:.6f} {h:.6f}\n" for w, h in wh)})
    shapes = yolo_list_shapes(list_file).wh
    by_seed = {s: kmeans_iou(shapes, 6, restarts=1, seed=s).centres.tolist() for s in (0, 5)}
    assert by_seed[0] != by_seed[5]        # this set has more than one basin: the seed matters
    for s in (0, 5):
        result = compute_anchors(k=6, labels=list_file, restarts=1, seed=s)
        assert result.seed == s and result.anchors_relative == [tuple(c) for c in by_seed[s]]


def test_compute_anchors_rounds_half_to_even_floors_at_1_px_and_measures_in_pixels(tmp_path):
    # At 512 px (a power of two, so every product below is exact):
    #   A 2.5 x 0.25 px -> rint 2 (half to even) x 0 -> at least 1: (2, 1)
    #   B 3.5 x 100 px  -> (4, 100)     C 256 x 128 px -> (256, 128)
    # plus one zero-width box (dropped) and one image without a label file.
    lines = "0 0.5 0.5 0.0048828125 0.00048828125\n0 0.5 0.5 0.0068359375 0.1953125\n0 0.5 0.5 0.5 0.25\n" \
            "0 0.5 0.5 0 0.3\n"
    list_file = write_yolo_tree(tmp_path, {"a": lines, "b": None})
    result = compute_anchors(k=3, labels=list_file, img_size=512, restarts=2)
    assert result.anchors == [(2, 1), (4, 100), (256, 128)]          # areas 2, 400, 32768
    assert result.cfg_anchors == "2,1,  4,100,  256,128"
    assert result.anchors_relative == [(0.0048828125, 0.00048828125), (0.0068359375, 0.1953125), (0.5, 0.25)]
    assert (result.k, result.masks, result.img_size) == (3, [[2], [1], [0]], 512)
    assert (result.boxes, result.images, result.dropped_zero, result.missing_labels) == (3, 2, 1, 1)
    assert (result.distinct_shapes, result.source) == (3, str(list_file))
    assert (result.best_restart, result.converged) == (0, True) and result.iterations >= 1
    # Metrics compare the pixel boxes with the rounded anchors:
    #   A (2.5, 0.25) vs (2, 1): inter 0.5, union 0.625 + 2 - 0.5 = 2.125 -> 4/17; ratios 1.25 and 1/4:
    #     1/4 is not above 1/4, so no anchor passes.  B (3.5, 100) vs (4, 100): 350 / 400 = 7/8, passes.
    #   C matches exactly.
    m = result.metrics
    assert m.mean_iou == pytest.approx((4 / 17 + 7 / 8 + 1) / 3, abs=1e-12)
    assert (m.best_possible_recall, m.anchors_above_threshold) == (pytest.approx(2 / 3), pytest.approx(2 / 3))
    assert result.cfg_written is None and result.plot is None and result.cfg_sections == 0


def test_compute_anchors_masks_for_one_and_two_anchors(tmp_path):
    list_file = write_yolo_tree(tmp_path, {"a": "0 0.5 0.5 0.25 0.5\n0 0.5 0.5 0.5 0.25\n"})
    assert compute_anchors(k=1, labels=list_file, restarts=1).masks == [[0]]
    assert compute_anchors(k=2, labels=list_file, restarts=1).masks == [[1], [0]]


def test_compute_anchors_lists_invalid_annotations_it_left_out(tiny_voc):
    annotations = tiny_voc / "VOCdevkit" / "VOC2007" / "Annotations"
    (annotations / "000002.xml").write_text("<annotation><size>")     # broken: left out, listed
    result = compute_anchors(k=1, root=tiny_voc, sets="2007/trainval")
    assert (result.boxes, result.images, len(result.invalid)) == (1, 1, 1)
    assert "000002.xml" in str(result.invalid[0])


def test_compute_anchors_plots_a_sample_drawn_with_its_seed(monkeypatch, tmp_path):
    seen = _capture_scatter(monkeypatch)
    # 5001 boxes (w = i / 8192, h = 1/2): one more than the plot keeps
    lines = "".join(f"0 0.5 0.5 {i / 8192} 0.5\n" for i in range(1, 5002))
    list_file = write_yolo_tree(tmp_path, {"a": lines})
    result = compute_anchors(k=1, labels=list_file, img_size=8192, restarts=1, seed=7, plot=tmp_path / "p.png")
    assert result.plot == tmp_path / "p.png"
    # at 8192 px box i is i px wide; numpy's own seed-7 draw decides which one box is left out
    keep = np.sort(np.random.default_rng(7).choice(5001, 5000, replace=False)) + 1
    assert seen["groups"]["boxes"] == (keep.astype(float).tolist(), [4096.0] * 5000)
    assert seen["title"] == "1 anchors at 8192 px"


def test_sort_by_area_breaks_area_ties_by_width():
    from vocli.anchors import _sort_by_area

    # areas 0.125, 0.125, 1/64 (all exact in binary): smallest first, the tie narrower first
    shapes = np.array([[0.5, 0.25], [0.25, 0.5], [0.125, 0.125]])
    assert _sort_by_area(shapes).tolist() == [[0.125, 0.125], [0.25, 0.5], [0.5, 0.25]]
    assert kmeans_iou(shapes, 3, restarts=1).centres.tolist() == [[0.125, 0.125], [0.25, 0.5], [0.5, 0.25]]


def _iou_pair(a, b):
    inter = min(a[0], b[0]) * min(a[1], b[1])
    return inter / (a[0] * a[1] + b[0] * b[1] - inter)


def _polish_by_hand(wh, centres, rounds=3, step=0.01, min_step=1e-3):
    """The polish written out per cluster: with boxes assigned to their best centre (first on
    ties), each centre tries w*e^s, w/e^s, h*e^s, h/e^s (first best on ties) and takes the best
    while it raises its cluster's summed IoU; when none does, s halves, down to min_step. Then
    boxes are reassigned; another round only if some sum rose and some box moved."""
    wh = [tuple(b) for b in wh]
    centres = [list(c) for c in centres]
    labels = [max(range(len(centres)), key=lambda j: (_iou_pair(b, centres[j]), -j)) for b in wh]
    for _ in range(rounds):
        rose = False
        for j, c in enumerate(centres):
            members = [b for b, lab in zip(wh, labels) if lab == j]
            if not members:
                continue
            total = sum(_iou_pair(b, c) for b in members)
            s = step
            while s >= min_step:
                f = np.exp(s)
                cands = [[c[0] * f, c[1]], [c[0] / f, c[1]], [c[0], c[1] * f], [c[0], c[1] / f]]
                sums = [sum(_iou_pair(b, cand) for b in members) for cand in cands]
                best = int(np.argmax(sums))
                if sums[best] > total:
                    c, total, rose = cands[best], sums[best], True
                else:
                    s /= 2
            centres[j] = c
        new = [max(range(len(centres)), key=lambda j: (_iou_pair(b, centres[j]), -j)) for b in wh]
        if not rose or new == labels:
            break
        labels = new
    return np.clip(np.array(centres), 1e-9, 1.0)


@pytest.mark.parametrize("wh, start", [
    # found by search: a second round matters (a box changes cluster after the first)
    ([[0.84, 0.2], [0.51, 0.66], [0.1, 0.39], [0.51, 0.09], [0.32, 0.39], [0.25, 0.62]],
     [[0.44, 0.76], [0.88, 0.4]]),
    ([[0.28, 0.08], [0.06, 0.74], [0.83, 0.57], [0.67, 0.51], [0.84, 0.74], [0.05, 0.78]],
     [[0.08, 0.67], [0.2, 0.78], [0.51, 0.3]]),
    # boxes still move after the third round: the fourth is not run
    ([[0.36, 0.6], [0.37, 0.37], [0.48, 0.06], [0.47, 0.88], [0.29, 0.69], [0.43, 0.23], [0.82, 0.06],
      [0.31, 0.9], [0.27, 0.77], [0.56, 0.74], [0.59, 0.36], [0.7, 0.07], [0.43, 0.37], [0.46, 0.16],
      [0.24, 0.53], [0.38, 0.72], [0.56, 0.78], [0.67, 0.56]],
     [[0.29, 0.72], [0.26, 0.11], [0.87, 0.51], [0.71, 0.5], [0.57, 0.08]]),
])
def test_polish_matches_the_written_out_rounds(wh, start):
    from vocli.anchors import _polish

    got = _polish(np.array(wh), np.array(start))
    np.testing.assert_allclose(got, _polish_by_hand(wh, start), rtol=1e-12)
    assert _mean_best_iou_by_loop(wh, got) >= _mean_best_iou_by_loop(wh, start)


def test_polish_runs_the_step_equal_to_min_step():
    from vocli.anchors import _polish

    # step 0.004 halves to 0.002 and 0.001 (= min_step, still run). From e^0.0071: 0.004 -> 0.0031,
    # -> -0.0009 (closer); 0.002: +0.0011 is not closer; 0.001: +0.0001 is: width 0.2 e^0.0001.
    # Stopping before 0.001 would leave e^-0.0009.
    got = _polish(np.array([[0.2, 0.2]]), np.array([[0.2 * np.exp(0.0071), 0.2]]), step=0.004, min_step=0.001)
    np.testing.assert_allclose(got, [[0.2 * np.exp(0.0001), 0.2]], rtol=1e-12)
    # and heights come down as well as up
    got = _polish(np.array([[0.2, 0.2]]), np.array([[0.2, 0.2 * np.exp(0.037)]]))
    np.testing.assert_allclose(got, [[0.2, 0.2 * np.exp(-0.0005)]], rtol=1e-12)


def test_lloyd_first_round_always_counts_even_when_every_box_joins_centre_1():
    # (500,500) wins no box, so every label is 1 in round 1: that still is a change from "no
    # label yet", so the round runs: centre 1 -> medians of all six (6, 6), centre 0 -> the
    # worst-fitting box (10, 12) (IoU 1/120 with (1,1), first of the tie).
    start = np.array([[[500, 500], [1, 1]]], float)
    centres, iterations, done = _lloyd(SIX, start, 1, "median")
    assert centres[0].tolist() == [[10, 12], [6, 6]]
    assert iterations.tolist() == [1] and iterations.dtype.kind == "i"


def test_lloyd_mean_of_a_single_box_cluster_is_the_box():
    wh = np.array([[1, 1], [1, 2], [10, 10]], float)
    # cluster 0: (1,1), (1,2) -> mean (1, 1.5); cluster 1: (10,10) alone -> (10, 10)
    centres, iterations, done = _lloyd(wh, np.array([[[1, 1], [10, 10]]], float), 100, "mean")
    assert centres[0].tolist() == [[1, 1.5], [10, 10]] and iterations.tolist() == [1] and done[0]


@pytest.mark.parametrize("copies", [130, 32769])  # 260 and 65538 cluster keys: past uint8 and uint16
def test_lloyd_many_restarts_at_once_do_not_mix_their_clusters(copies):
    # restart 0 starts at (1,1), (1,2) (one round: (1.5, 1), (10, 10), see above); every other
    # restart starts at (1,1), (10,10) and stays there. Keys that wrapped around a small integer
    # type would pool the last restart's boxes with restart 0's.
    start = np.repeat(np.array([[[1, 1], [10, 10]]], float), copies, axis=0)
    start[0] = [[1, 1], [1, 2]]
    centres, iterations, _ = _lloyd(SIX, start, 1, "median")
    assert centres[0].tolist() == [[1.5, 1], [10, 10]]
    assert (centres[1:] == np.array([[1, 1], [10, 10]])).all()
    assert (iterations == 1).all()


def test_kmeans_float32_input_gives_exactly_the_float64_result():
    # boxes are widened to float64 first: float32 input only names the same numbers
    wh32 = np.random.default_rng(2).lognormal(-1.8, 0.6, (300, 2)).clip(0.01, 1).astype(np.float32)
    a = kmeans_iou(wh32, 4, restarts=3)
    b = kmeans_iou(wh32.astype(np.float64), 4, restarts=3)
    assert np.array_equal(a.centres, b.centres) and a.mean_iou == b.mean_iou
    assert a.centres.dtype == np.float64


def _mean_best_iou_by_broadcast(wh, centres) -> float:
    """The same objective as ``_mean_best_iou_by_loop``, by numpy broadcasting (for thousands of boxes)."""
    wh, centres = np.asarray(wh, np.float64)[:, None], np.asarray(centres, np.float64)[None]
    inter = np.minimum(wh[..., 0], centres[..., 0]) * np.minimum(wh[..., 1], centres[..., 1])
    return float((inter / (wh[..., 0] * wh[..., 1] + centres[..., 0] * centres[..., 1] - inter)).max(axis=1).mean())


@pytest.mark.parametrize("n", [300, 4500])  # 4500 > RESTART_SAMPLE: restarts see a seeded subsample
def test_kmeans_is_seeding_lloyd_and_polish_wired_as_documented(n):
    from vocli.anchors import LLOYD_TOL, RESTART_SAMPLE, _polish, _seed_plus_plus, _sort_by_area

    # (with 4500 boxes Lloyd's tolerance, int(1e-3 * 4500) = 4 moves, ends the refinement at 38 rounds, not 47)
    wh = np.random.default_rng(0).lognormal(-1.8, 0.6, (n, 2)).clip(0.01, 1)
    got = kmeans_iou(wh, 4, restarts=3, seed=5)
    # 1. canonical order (by w, then h); restarts on float32 copies, seeded by the third child
    #    of SeedSequence(seed) (one grandchild per restart); the first child draws the subsample.
    wh = wh[np.lexsort((wh[:, 1], wh[:, 0]))]
    sub_stream, _, restart_stream = np.random.SeedSequence(5).spawn(3)
    work = wh.astype(np.float32)
    if n > RESTART_SAMPLE:
        work = work[np.sort(np.random.default_rng(sub_stream).choice(n, RESTART_SAMPLE, replace=False))]
    rngs = [np.random.default_rng(s) for s in restart_stream.spawn(3)]
    runs, _, _ = _lloyd(work, _seed_plus_plus(work, 4, rngs), 300, "median", LLOYD_TOL)
    # 2. each restart is scored on all boxes (by broadcasting here); the best one wins
    scores = [_mean_best_iou_by_broadcast(wh, c.astype(np.float64)) for c in runs]
    np.testing.assert_allclose(got.restart_mean_ious, scores, rtol=0, atol=1e-12)
    best = int(np.argmax(scores))
    assert got.best_restart == best
    # 3. the winner is refined by Lloyd on all boxes in float64, then polished; kept if not worse
    refined, iterations, converged = _lloyd(wh, runs[best:best + 1].astype(np.float64), 300, "median", LLOYD_TOL)
    polished = _polish(wh, refined[0])
    assert _mean_best_iou_by_broadcast(wh, polished) >= scores[best]
    np.testing.assert_array_equal(got.centres, _sort_by_area(polished))
    assert got.mean_iou == pytest.approx(_mean_best_iou_by_broadcast(wh, polished), abs=1e-12)
    assert (got.iterations, got.converged) == (int(iterations[0]), bool(converged[0]))
    assert got.evolve_improvements == 0


def test_kmeans_defaults_ten_restarts_seed_0_no_evolution():
    wh = np.random.default_rng(4).uniform(0.05, 0.95, (60, 2))
    calls = []
    default = kmeans_iou(wh, 6, progress=calls.append)
    assert calls == [10] and len(default.restart_mean_ious) == 10 and default.evolve_improvements == 0
    seeded = kmeans_iou(wh, 6, restarts=10, seed=0)
    assert np.array_equal(default.centres, seeded.centres)
    # restart 0 of seed 1 differs from restart 0 of seed 0 (so the default seed is pinned)
    assert kmeans_iou(wh, 6, restarts=1, seed=1).restart_mean_ious[0] != default.restart_mean_ious[0]


def test_kmeans_evolves_the_polished_centres_with_the_second_child_seed():
    from vocli.anchors import _sort_by_area

    # a set (found by search) where one of 50 generations after the polish still helps
    wh = np.array([[0.21, 0.66], [0.38, 0.35], [0.9, 0.23], [0.51, 0.07], [0.2, 0.85]])
    from vocli.anchors import LLOYD_TOL, _polish, _seed_plus_plus

    plain = kmeans_iou(wh, 2, restarts=1, seed=0)
    evolved = kmeans_iou(wh, 2, restarts=1, seed=0, evolve=50)
    # the polished centres, in cluster order (not yet sorted by area), as in the wiring test above
    _, evolve_stream, restart_stream = np.random.SeedSequence(0).spawn(3)
    wh = wh[np.lexsort((wh[:, 1], wh[:, 0]))]
    work = wh.astype(np.float32)
    run, _, _ = _lloyd(work, _seed_plus_plus(work, 2, [np.random.default_rng(restart_stream.spawn(1)[0])]),
                       300, "median", LLOYD_TOL)
    polished = _polish(wh, _lloyd(wh, run.astype(np.float64), 300, "median", LLOYD_TOL)[0][0])
    assert np.array_equal(_sort_by_area(polished), plain.centres)
    want, want_score, kept = _evolve_by_hand(wh, polished, 50, np.random.default_rng(evolve_stream))
    assert kept == 1 and evolved.evolve_improvements == 1
    np.testing.assert_allclose(evolved.centres, _sort_by_area(want), rtol=1e-12)
    assert evolved.mean_iou == pytest.approx(want_score, abs=1e-12) and want_score > plain.mean_iou
    # a single generation runs too (one progress tick after the restarts)
    calls = []
    kmeans_iou(wh, 2, restarts=1, seed=0, evolve=1, progress=calls.append)
    assert calls == [1, 1]


def test_write_cfg_refuses_anchors_its_own_parser_rejects_and_names_the_file(tmp_path):
    path = tmp_path / "tiny.cfg"
    text = NET + CONV.format(12) + "[yolo]\nanchors=1,2,3,4\nclasses=1\nnum=2\n"
    path.write_text(text)
    with pytest.raises(DarknetFormatError) as info:
        write_cfg_anchors(path, [(0, 6), (7, 8)])
    # the anchors line is line 10; the rewritten text is checked before anything is written
    assert str(info.value) == f"{path}:10: [yolo] anchors: sizes must be positive, got 0"
    assert path.read_text() == text

"""SSD priors, matching, encoding and HDF5 target files against hand-worked values and a loop reference."""

from __future__ import annotations

import functools
import itertools
import json
import math
import multiprocessing
import os
import pickle
import shutil
import signal
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from helpers import read_voc_plain, write_voc_xml
from converters.ssd_targets import (SSD300, SSD512, build_ssd_targets, decode, encode, match,
                                    normalise_voc_boxes, open_targets, prior_boxes)
from vocli.cli.app import main
from vocli.boxes import box_iou, box_iou_columns
from vocli.datasets.voc import VOC_CLASSES


def reference_priors(fmaps, size, steps, mins, maxs, ratios) -> torch.Tensor:
    """The PriorBox recipe written as plain loops over cells, in float64, then float32 and clamped."""
    values = []
    for k, f in enumerate(fmaps):
        for i, j in itertools.product(range(f), repeat=2):
            f_k = size / steps[k]
            cx, cy = (j + 0.5) / f_k, (i + 0.5) / f_k
            s = mins[k] / size
            values.append([cx, cy, s, s])
            big = math.sqrt(s * (maxs[k] / size))
            values.append([cx, cy, big, big])
            for r in ratios[k]:
                values.append([cx, cy, s * math.sqrt(r), s / math.sqrt(r)])
                values.append([cx, cy, s / math.sqrt(r), s * math.sqrt(r)])
    return torch.tensor(values, dtype=torch.float32).clamp_(0, 1)


def reference_match(truths, labels, priors, threshold=0.5, variances=(0.1, 0.2)):
    """ssd.pytorch's matching and encoding rule, written independently with torch and a Python loop."""
    truths, priors = torch.as_tensor(truths), torch.as_tensor(priors)
    corners = torch.cat([priors[:, :2] - priors[:, 2:] / 2, priors[:, :2] + priors[:, 2:] / 2], 1)
    lt = torch.max(truths[:, None, :2], corners[None, :, :2])
    rb = torch.min(truths[:, None, 2:], corners[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(2)
    area_t = ((truths[:, 2] - truths[:, 0]) * (truths[:, 3] - truths[:, 1]))[:, None]
    area_p = ((corners[:, 2] - corners[:, 0]) * (corners[:, 3] - corners[:, 1]))[None, :]
    overlaps = inter / (area_t + area_p - inter)
    best_prior = overlaps.argmax(1)
    best_truth_overlap, best_truth = overlaps.max(0)
    best_truth_overlap[best_prior] = 2.0
    for j in range(len(best_prior)):
        best_truth[best_prior[j]] = j
    matched = truths[best_truth]
    conf = torch.as_tensor(labels)[best_truth] + 1
    conf[best_truth_overlap < threshold] = 0
    g_c = ((matched[:, :2] + matched[:, 2:]) / 2 - priors[:, :2]) / (variances[0] * priors[:, 2:])
    g_wh = torch.log((matched[:, 2:] - matched[:, :2]) / priors[:, 2:]) / variances[1]
    loc = torch.cat([g_c, g_wh], 1)
    loc[conf == 0] = 0
    return loc, conf


def test_prior_counts_and_hand_worked_values():
    p300, p512 = prior_boxes(SSD300), prior_boxes(SSD512)
    assert p300.shape == (8732, 4) and p300.dtype == np.float32
    assert p512.shape == (24564, 4) and SSD300.num_priors == 8732 and SSD512.num_priors == 24564
    r2 = math.sqrt(2)
    # First cell of the 38x38 map (step 8): centre 0.5 * 8 / 300; sizes 30/300, sqrt(30 * 60)/300, ratio 2.
    c = 4 / 300
    expected = [[c, c, 0.1, 0.1], [c, c, math.sqrt(1800) / 300, math.sqrt(1800) / 300],
                [c, c, 0.1 * r2, 0.1 / r2], [c, c, 0.1 / r2, 0.1 * r2]]
    np.testing.assert_allclose(p300[:4], expected, rtol=1e-6)
    # Next cell is one column to the right (row-major): centre x = 1.5 * 8 / 300.
    np.testing.assert_allclose(p300[4, :2], [12 / 300, c], rtol=1e-6)
    # First prior of the 19x19 map (step 16) starts at 38 * 38 * 4 = 5776: centre 8/300, size 60/300.
    np.testing.assert_allclose(p300[5776], [8 / 300, 8 / 300, 0.2, 0.2], rtol=1e-6)
    # The 1x1 map: centre 0.5; big square sqrt(264 * 315)/300; last box 0.88 * sqrt(2) > 1 is clamped.
    big = math.sqrt(264 * 315) / 300
    np.testing.assert_allclose(p300[-3], [0.5, 0.5, big, big], rtol=1e-6)
    np.testing.assert_allclose(p300[-1], [0.5, 0.5, 0.88 / r2, 1.0], rtol=1e-6)
    # SSD512 first cell: centre 4/512, size 35.84/512 = 0.07.
    np.testing.assert_allclose(p512[0], [4 / 512, 4 / 512, 0.07, 0.07], rtol=1e-6)


@pytest.mark.parametrize("config", [SSD300, SSD512])
def test_priors_equal_loop_reference(config):
    reference = reference_priors(config.feature_maps, config.size, config.steps, config.min_sizes,
                                 config.max_sizes, config.aspect_ratios)
    assert torch.equal(torch.from_numpy(prior_boxes(config)), reference)


def test_normalisation_like_ssd_pytorch():
    boxes = normalise_voc_boxes(np.array([[1, 1, 100, 80], [11, 21, 51, 61]]), 100, 80)
    np.testing.assert_allclose(boxes, [[0, 0, 0.99, 0.9875], [0.1, 0.25, 0.5, 0.75]], rtol=1e-6)


# Hand-made priors (cx, cy, w, h); all numbers are exact in binary so IoUs are exact.
PRIORS = np.array([
    [0.25, 0.25, 0.5, 0.5],  # p0: [0, 0, 0.5, 0.5]
    [0.25, 0.125, 0.5, 0.25],  # p1: [0, 0, 0.5, 0.25]
    [0.25, 0.1171875, 0.5, 0.234375],  # p2: [0, 0, 0.5, 0.234375]
    [0.9, 0.9, 0.2, 0.2],  # p3: [0.8, 0.8, 1, 1]
    [0.75, 0.25, 0.5, 0.5],  # p4: [0.5, 0, 1, 0.5], touches nothing below
], dtype=np.float32)


def test_match_threshold_boundary_and_forced_best_prior():
    truths = np.array([[0, 0, 0.5, 0.5], [0.9, 0.9, 0.95, 0.95]], dtype=np.float32)
    loc, conf = match(truths, np.array([4, 9]), PRIORS)
    # p0 is gt0's best (IoU 1). p1: IoU 0.125 / 0.25 = 0.5 exactly -> positive (>= threshold).
    # p2: IoU 0.1171875 / 0.25 = 0.46875 -> background. p3: gt1's best with IoU 0.0025/0.04 = 0.0625,
    # forced positive anyway. p4: IoU 0 -> background.
    assert conf.tolist() == [5, 5, 0, 10, 0]
    np.testing.assert_array_equal(loc[[2, 4]], 0)
    # p1 offsets by hand: centre (0.25, 0.25) - (0.25, 0.125) over (0.1 * 0.5, 0.1 * 0.25);
    # size log(0.5 / 0.5) / 0.2 and log(0.5 / 0.25) / 0.2.
    np.testing.assert_allclose(loc[1], [0, 5.0, 0, math.log(2) / 0.2], rtol=1e-6)
    # p3: centre (0.925 - 0.9) / 0.02 = 1.25 each; size log(0.05 / 0.2) / 0.2.
    np.testing.assert_allclose(loc[3], [1.25, 1.25, math.log(0.25) / 0.2, math.log(0.25) / 0.2], rtol=1e-5)
    assert match(truths, np.array([4, 9]), PRIORS, threshold=0.5001)[1].tolist() == [5, 0, 0, 10, 0]


def test_match_shared_best_prior_goes_to_the_later_truth():
    truths = np.array([[0, 0, 0.5, 0.5], [0, 0, 0.5, 0.4375]], dtype=np.float32)
    # Both have p0 as best prior (IoU 1 and 0.875); the later one (label 7) keeps it.
    # p1: IoU with gt0 = 0.5, with gt1 = 0.125 / 0.21875 = 0.571 -> gt1.
    loc, conf = match(truths, np.array([2, 6]), PRIORS)
    assert conf.tolist() == [7, 7, 7, 0, 0]
    np.testing.assert_allclose(loc[0], [0, -0.625, 0, math.log(0.875) / 0.2], rtol=1e-6, atol=1e-7)
    ref_loc, ref_conf = reference_match(truths, np.array([2, 6]), PRIORS)
    assert torch.equal(torch.from_numpy(conf), ref_conf)


def test_match_equals_reference_on_random_images():
    rng = np.random.default_rng(3)
    priors = prior_boxes(SSD300)
    for _ in range(10):
        g = int(rng.integers(1, 8))
        xy = rng.uniform(0, 0.8, size=(g, 2))
        wh = rng.uniform(0.02, 0.6, size=(g, 2))
        truths = np.clip(np.concatenate([xy, xy + wh], 1), 0, 1).astype(np.float32)
        labels = rng.integers(0, 20, size=g)
        loc, conf = match(truths, labels, priors)
        ref_loc, ref_conf = reference_match(truths, labels, priors)
        assert torch.equal(torch.from_numpy(conf), ref_conf)
        torch.testing.assert_close(torch.from_numpy(loc), ref_loc, rtol=1e-5, atol=1e-5)
    assert match(np.zeros((0, 4), np.float32), np.zeros(0, int), priors)[1].sum() == 0


def test_match_in_blocks_is_bit_identical(monkeypatch):
    import converters.ssd_targets as ssd

    rng = np.random.default_rng(5)
    priors = prior_boxes(SSD300)
    xy = rng.uniform(0, 0.8, size=(40, 2))
    wh = rng.uniform(0.02, 0.6, size=(40, 2))
    truths = np.clip(np.concatenate([xy, xy + wh], 1), 0, 1).astype(np.float32)
    # Equal boxes across block edges (blocks of 7: 0-6, 7-13, ...): ties between blocks must go
    # to the first box for a prior's best truth, and a shared best prior to the later box.
    truths[7] = truths[6]
    truths[14] = truths[13]
    truths[30] = truths[2]
    labels = rng.integers(0, 20, size=40)
    whole = match(truths, labels, priors)
    monkeypatch.setattr(ssd, "MATCH_BLOCK", 7)
    blocks = match(truths, labels, priors)
    np.testing.assert_array_equal(blocks[0], whole[0])
    np.testing.assert_array_equal(blocks[1], whole[1])
    ref_loc, ref_conf = reference_match(truths, labels, priors)
    assert torch.equal(torch.from_numpy(blocks[1]), ref_conf)
    torch.testing.assert_close(torch.from_numpy(blocks[0]), ref_loc, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_match_memory_does_not_grow_with_objects():
    import tracemalloc

    rng = np.random.default_rng(0)
    priors = prior_boxes(SSD300)
    g = 20_000
    xy = rng.uniform(0, 0.9, (g, 2))
    truths = np.concatenate([xy, xy + rng.uniform(0.01, 0.1, (g, 2))], 1).astype(np.float32)
    tracemalloc.start()
    try:
        match(truths, rng.integers(0, 20, g), priors)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # The whole IoU matrix would be 20,000 x 8,732 x 4 bytes = 698.6 MB; blocks of 256 need
    # 256 x 8,732 x 4 = 8.9 MB per temporary (measured peak: 54 MB).
    assert peak < 150e6


def test_convert_ssd_skips_an_annotation_over_the_object_cap(tiny_voc, tmp_path, capsys):
    from vocli.datasets.voc import MAX_OBJECTS

    voc = tiny_voc / "VOCdevkit" / "VOC2007"
    crowded = voc / "Annotations" / "000001.xml"
    write_voc_xml(crowded, "000001.jpg", 100, 80, [("dog", 1 + i % 90, 1, 10 + i % 90, 10, 0)
                                                   for i in range(MAX_OBJECTS + 1)])
    out = tmp_path / "targets"
    rc = main(["convert", "ssd", "--root", str(tiny_voc), "--sets", "2007/trainval", "--out", str(out),
               "--workers", "1", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert rc == 1
    assert doc["invalid"] == [{"path": str(crowded),
                               "reason": "more than 10,000 objects (real VOC images hold at most 56; "
                                         "split the annotation)"}]
    with open_targets(out / "2007_trainval.h5") as targets:  # the other image is converted
        assert len(targets) == 1 and targets[0]["image_id"] == "000002"


def test_box_iou_columns_equals_box_iou():
    # Hand-worked: [0, 0, 2, 2] vs [1, 1, 3, 3] -> 1 / 7; plus_one (VOC pixels) 4 / 14.
    a, b = np.array([[0.0, 0, 2, 2]]), np.array([[1.0, 1, 3, 3], [5, 5, 6, 6]])
    np.testing.assert_allclose(box_iou_columns(a, b), [[1 / 7, 0]])
    np.testing.assert_allclose(box_iou_columns(a, b, plus_one=True), [[4 / 14, 0]])
    rng = np.random.default_rng(1)
    a = rng.uniform(0, 1, (5, 4)).astype(np.float32)
    a[:, 2:] += a[:, :2]
    priors = np.ascontiguousarray(prior_boxes(SSD300)[:, [0, 1, 0, 1]] + [0, 0, 0.1, 0.1])
    assert np.array_equal(box_iou_columns(a, priors), box_iou(a, priors))
    assert torch.equal(box_iou_columns(torch.from_numpy(a), torch.from_numpy(priors)),
                       box_iou(torch.from_numpy(a), torch.from_numpy(priors)))


def test_encode_decode_round_trip():
    rng = np.random.default_rng(0)
    priors = prior_boxes(SSD300)[::97]
    xy = rng.uniform(0, 0.7, size=(len(priors), 2))
    boxes = np.concatenate([xy, xy + rng.uniform(0.01, 0.3, size=(len(priors), 2))], 1).astype(np.float32)
    loc = encode(boxes, priors)
    np.testing.assert_allclose(decode(loc, priors), boxes, atol=2e-6)
    torch.testing.assert_close(decode(torch.from_numpy(loc), torch.from_numpy(priors)), torch.from_numpy(boxes),
                               atol=2e-6, rtol=0)


def reference_image(xml: Path, include_difficult: bool):
    """Ground truth read with ElementTree and normalised as ssd.pytorch's VOC transform."""
    doc = read_voc_plain(xml)
    w, h = doc["width"], doc["height"]
    boxes, labels, difficult = [], [], []
    for obj in doc["objects"]:
        d = int(obj["difficult"]) == 1
        if d and not include_difficult:
            continue
        boxes.append([(float(v) - 1) / s for v, s in zip(obj["box"], (w, h, w, h))])
        labels.append(VOC_CLASSES.index(obj["name"]))
        difficult.append(d)
    return np.array(boxes, np.float32).reshape(-1, 4), np.array(labels, np.int64), np.array(difficult, bool)


@functools.lru_cache(maxsize=2)
def cached_reference_priors(size: int) -> torch.Tensor:
    c = SSD300 if size == 300 else SSD512
    return reference_priors(c.feature_maps, c.size, c.steps, c.min_sizes, c.max_sizes, c.aspect_ratios)


def check_file(path: Path, voc_dir: Path, include_difficult: bool, size: int = 300, every: int = 1) -> int:
    """Compare every ``every``-th image of a target file with the independent reference; returns its length."""
    priors = cached_reference_priors(size)
    with open_targets(path) as targets:
        assert torch.equal(targets.priors, priors)
        assert targets.attrs["size"] == size and targets.classes == VOC_CLASSES
        assert targets.attrs["include_difficult"] == include_difficult
        for i in range(0, len(targets), every):
            item = targets[i]
            boxes, labels, difficult = reference_image(voc_dir / "Annotations" / f"{item['image_id']}.xml",
                                                       include_difficult)
            assert item["image_path"] == str((voc_dir / "JPEGImages" / f"{item['image_id']}.jpg").resolve())
            torch.testing.assert_close(item["boxes"], torch.from_numpy(boxes))
            assert torch.equal(item["labels"], torch.from_numpy(labels) + 1)
            assert torch.equal(item["difficult"], torch.from_numpy(difficult))
            if len(boxes):
                ref_loc, ref_conf = reference_match(boxes, labels, priors)
            else:
                ref_loc, ref_conf = torch.zeros(len(priors), 4), torch.zeros(len(priors), dtype=torch.int64)
            assert torch.equal(item["conf"], ref_conf)
            torch.testing.assert_close(item["loc"], ref_loc, rtol=1e-5, atol=1e-5)
        return len(targets)


def test_hdf5_file_reopened_and_compared(tiny_voc, tmp_path):
    voc = tiny_voc / "VOCdevkit" / "VOC2007"
    write_voc_xml(voc / "Annotations" / "000003.xml", "000003.jpg", 50, 50, [("cow", 2, 2, 3, 3, 1)])
    (voc / "ImageSets" / "Main" / "trainval.txt").write_text("000001\n000002\n000003\nbroken\n")
    (voc / "Annotations" / "broken.xml").write_text("<annotation>")
    result = build_ssd_targets(tiny_voc, sets="2007/trainval,2007/test", out=tmp_path / "ssd", workers=2)
    assert [Path(i.path).name for i in result.invalid] == ["broken.xml"]
    trainval, test = result.files
    assert (trainval.images, trainval.objects) == (3, 2)  # the difficult person and cow are dropped
    assert check_file(trainval.path, voc, include_difficult=False) == 3
    assert check_file(test.path, voc, include_difficult=False) == 1
    with h5py.File(trainval.path) as h5:
        assert h5["gt_offsets"][:].tolist() == [0, 1, 2, 2]
        assert h5["loc"].chunks == (1, 8732, 4) and h5["loc"].compression == "gzip"
        assert [s.decode() for s in h5["image_ids"][:]] == ["000001", "000002", "000003"]
        assert json.loads(h5.attrs["aspect_ratios"]) == [[2], [2, 3], [2, 3], [2, 3], [2], [2]]
    with open_targets(trainval.path) as targets:
        assert targets[-1]["image_id"] == "000003" and targets[2]["conf"].sum() == 0
        with pytest.raises(IndexError):
            targets[3]
    with_difficult = build_ssd_targets(tiny_voc, sets="2007/trainval", out=tmp_path / "d", size=512,
                                       include_difficult=True, compression="lzf", workers=1)
    assert with_difficult.files[0].objects == 4
    assert check_file(with_difficult.files[0].path, voc, include_difficult=True, size=512) == 3


def test_real_sample_targets(voc_sample, tmp_path):
    root = tmp_path / "sample"
    shutil.copytree(voc_sample, root)
    result = build_ssd_targets(root, sets="2007/test", workers=2)
    assert result.ok and result.files[0].path == (root / "ssd300" / "2007_test.h5").resolve()
    assert check_file(result.files[0].path, root / "VOCdevkit" / "VOC2007", include_difficult=False, every=7) > 100


def test_cli_ssd_json_and_errors(tiny_voc, tmp_path, capsys):
    out = tmp_path / "targets"
    assert main(["convert", "ssd", "--root", str(tiny_voc), "--sets", "2007/test", "--out", str(out),
                 "--json", "--workers", "1"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["num_priors"] == 8732 and doc["files"][0]["images"] == 1
    assert main(["convert", "ssd", "--root", str(tiny_voc), "--size", "400"]) == 1
    assert "size 400" in capsys.readouterr().err
    (out / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(Exception, match="junk.h5: not a readable SSD target file: not an HDF5 file"):
        open_targets(out / "junk.h5")


# --------------------------------------------------------------------------- small contracts, value by value


def test_config_attributes_every_value():
    from converters.ssd_targets import config_attributes

    attrs = config_attributes(SSD512, 0.45, True, ["cat", "dog"])
    assert attrs == {
        "format": "vocli-ssd-targets", "format_version": 1, "size": 512,
        "feature_maps": [64, 32, 16, 8, 4, 2, 1], "steps": [8, 16, 32, 64, 128, 256, 512],
        "min_sizes": [35.84, 76.8, 153.6, 230.4, 307.2, 384.0, 460.8],
        "max_sizes": [76.8, 153.6, 230.4, 307.2, 384.0, 460.8, 537.6],
        "aspect_ratios": "[[2], [2, 3], [2, 3], [2, 3], [2, 3], [2], [2]]",
        "variances": [0.1, 0.2], "clip": True, "threshold": 0.45, "include_difficult": True,
        "classes": '["cat", "dog"]', "num_classes": 2,
        "gt_normalisation": "((xmin-1)/W, (ymin-1)/H, (xmax-1)/W, (ymax-1)/H)",
        "label_offset": 1, "loc_background": "zero",
    }
    assert type(attrs["feature_maps"]) is list and type(attrs["variances"]) is list  # h5py stores lists as arrays


def test_compression_settings_and_unknown_name():
    from converters.ssd_targets import _compression
    from vocli.errors import VocliError

    assert _compression("gzip") == {"compression": "gzip", "compression_opts": 1}
    assert _compression("lzf") == {"compression": "lzf"}
    assert _compression("none") == {}
    with pytest.raises(VocliError) as err:
        _compression("GZIP")  # names are exact
    assert (err.value.message, err.value.hint) == ("unknown compression 'GZIP'", "use gzip, lzf or none")


def test_unknown_size_names_the_size_and_the_valid_ones():
    from converters.ssd_targets import ssd_config
    from vocli.errors import VocliError

    assert ssd_config(300) is SSD300 and ssd_config(512) is SSD512
    with pytest.raises(VocliError) as err:
        ssd_config(400)
    assert (err.value.message, err.value.hint) == ("no SSD layout for size 400", "use --size 300 or --size 512")


def test_normalisation_keeps_rows_of_four_and_float32():
    # One box given flat still gives one row; (x - 1) / W with W = 200, H = 100: (0, 0.5, 0.495, 0.99).
    one = normalise_voc_boxes([1, 51, 100, 100], 200, 100)
    assert one.dtype == np.float32 and one.shape == (1, 4)
    np.testing.assert_allclose(one, [[0, 0.5, 0.495, 0.99]], rtol=1e-6)
    none = normalise_voc_boxes(np.zeros((0, 4)), 10, 10)
    assert none.shape == (0, 4) and none.dtype == np.float32


def test_decode_keeps_batch_and_prior_axes():
    # loc (B=2, P=2, 4): zero offsets give the priors themselves; image 1, prior 0: centre moved by
    # 1 * 0.1 * w = 0.02 and width exp(0.2 * 5) = e times 0.2.
    priors = np.array([[0.5, 0.5, 0.2, 0.4], [0.25, 0.25, 0.1, 0.1]], np.float32)
    loc = np.zeros((2, 2, 4), np.float32)
    loc[1, 0] = [1, 0, 5, 0]
    out = decode(loc, priors)
    assert out.shape == (2, 2, 4)
    np.testing.assert_allclose(out[0], [[0.4, 0.3, 0.6, 0.7], [0.2, 0.2, 0.3, 0.3]], rtol=1e-6)
    w = 0.2 * math.e
    np.testing.assert_allclose(out[1, 0], [0.52 - w / 2, 0.3, 0.52 + w / 2, 0.7], rtol=1e-6)
    torch.testing.assert_close(decode(torch.from_numpy(loc), torch.from_numpy(priors)), torch.from_numpy(out))


# --------------------------------------------------------------------------- one chunk matched (worker side)


def make_voc(voc: Path, images: dict, split: str = "trainval", listed=None) -> Path:
    """A VOC<year> folder: images = {id: (filename, width, height, objects)}; the split lists ``listed`` (default: all)."""
    for image_id, (filename, width, height, objects) in images.items():
        write_voc_xml(voc / "Annotations" / f"{image_id}.xml", filename, width, height, objects)
    lists = voc / "ImageSets" / "Main"
    lists.mkdir(parents=True, exist_ok=True)
    (lists / f"{split}.txt").write_text("".join(f"{i}\n" for i in (images if listed is None else listed)))
    return voc


CHUNK_IMAGES = {
    # dog: ((11 - 1) / 100, (21 - 1) / 80, (51 - 1) / 100, (61 - 1) / 80) = (0.1, 0.25, 0.5, 0.75); person difficult.
    "a": ("a.png", 100, 80, [("dog", 11, 21, 51, 61, 0), ("person", 1, 1, 100, 80, 1)]),
    # cat: (4 / 64, 4 / 64, 19 / 64, 29 / 64); the <filename> names another image, so the file is b.jpg.
    "b": ("other.jpg", 64, 64, [("cat", 5, 5, 20, 30, 0)]),
    # only a difficult cow: nothing kept unless difficult objects are.
    "c": ("c.jpg", 50, 50, [("cow", 2, 2, 26, 26, 1)]),
}


def test_match_chunk_fields_value_by_value(tmp_path):
    from converters.ssd_targets import _Job, _match_chunk

    voc = make_voc(tmp_path / "VOC2007", CHUNK_IMAGES)
    priors = cached_reference_priors(300)
    # "missing" has no annotation: reported, and the later images keep rows 0, 1, 2.
    chunk = _match_chunk(_Job(str(voc), ("missing", "a", "b", "c"), VOC_CLASSES, False, 300, 0.5))
    assert [(Path(i.path).name, i.reason) for i in chunk.invalid] == [("missing.xml", "file not found")]
    assert chunk.ids == ["a", "b", "c"] and chunk.image_names == ["a.png", "b.jpg", "c.jpg"]
    assert chunk.counts.dtype == np.int64 and chunk.counts.tolist() == [1, 1, 0]
    assert chunk.gt_boxes.dtype == np.float32
    np.testing.assert_allclose(chunk.gt_boxes, [[0.1, 0.25, 0.5, 0.75], [4 / 64, 4 / 64, 19 / 64, 29 / 64]],
                               rtol=1e-6)
    assert chunk.gt_labels.dtype == np.int64 and chunk.gt_labels.tolist() == [12, 8]  # dog 11 + 1, cat 7 + 1
    assert chunk.gt_difficult.dtype == bool and chunk.gt_difficult.tolist() == [False, False]
    assert chunk.conf.dtype == np.int16 and chunk.conf.shape == (3, 8732)
    positive_rows, positive_loc = [], []
    for row, k in ((0, 0), (1, 1)):
        ref_loc, ref_conf = reference_match(chunk.gt_boxes[k:k + 1], np.array([[11], [7]][k]), priors)
        assert torch.equal(torch.from_numpy(chunk.conf[row].astype(np.int64)), ref_conf)
        rows = torch.nonzero(ref_conf).flatten()
        positive_rows += [[row, int(p)] for p in rows]
        positive_loc.append(ref_loc[rows])
    assert not chunk.conf[2].any()
    assert chunk.positive.dtype == np.int64 and chunk.positive.tolist() == positive_rows
    assert chunk.positive_loc.dtype == np.float32
    torch.testing.assert_close(torch.from_numpy(chunk.positive_loc), torch.cat(positive_loc), rtol=1e-5, atol=1e-5)


def test_match_chunk_with_difficult_objects_and_another_threshold(tmp_path):
    from converters.ssd_targets import _Job, _match_chunk

    voc = make_voc(tmp_path / "VOC2007", CHUNK_IMAGES)
    priors = cached_reference_priors(300)
    chunk = _match_chunk(_Job(str(voc), ("a", "c"), VOC_CLASSES, True, 300, 0.3))
    assert chunk.invalid == [] and chunk.counts.tolist() == [2, 1]
    # person (1, 1, 100, 80) -> (0, 0, 0.99, 0.9875); cow (2, 2, 26, 26) in 50 x 50 -> (0.02, 0.02, 0.5, 0.5).
    np.testing.assert_allclose(chunk.gt_boxes, [[0.1, 0.25, 0.5, 0.75], [0, 0, 0.99, 0.9875],
                                                [0.02, 0.02, 0.5, 0.5]], rtol=1e-6)
    assert chunk.gt_labels.tolist() == [12, 15, 10] and chunk.gt_difficult.tolist() == [False, True, True]
    ref_loc, ref_conf = reference_match(chunk.gt_boxes[:2], np.array([11, 14]), priors, threshold=0.3)
    assert torch.equal(torch.from_numpy(chunk.conf[0].astype(np.int64)), ref_conf)
    assert not torch.equal(ref_conf, reference_match(chunk.gt_boxes[:2], np.array([11, 14]), priors)[1])
    assert set(chunk.positive[:, 0].tolist()) == {0, 1}


def test_match_chunk_of_only_invalid_files_is_empty_with_the_right_shapes(tmp_path):
    from converters.ssd_targets import _Job, _match_chunk

    voc = make_voc(tmp_path / "VOC2012", CHUNK_IMAGES)
    (voc / "Annotations" / "bad.xml").write_text("<annotation>")
    chunk = _match_chunk(_Job(str(voc), ("bad", "missing"), VOC_CLASSES, False, 512, 0.5))
    assert [Path(i.path).name for i in chunk.invalid] == ["bad.xml", "missing.xml"]
    assert chunk.ids == [] and chunk.image_names == []
    shapes = {name: (getattr(chunk, name).shape, getattr(chunk, name).dtype)
              for name in ("counts", "gt_boxes", "gt_labels", "gt_difficult", "conf", "positive", "positive_loc")}
    assert shapes == {"counts": ((0,), np.int64), "gt_boxes": ((0, 4), np.float32), "gt_labels": ((0,), np.int64),
                      "gt_difficult": ((0,), bool), "conf": ((0, 24564), np.int16),
                      "positive": ((0, 2), np.int64), "positive_loc": ((0, 4), np.float32)}


def test_match_chunk_reports_a_class_outside_the_list(tmp_path):
    from converters.ssd_targets import _Job, _match_chunk

    voc = make_voc(tmp_path / "VOC2007", CHUNK_IMAGES)
    chunk = _match_chunk(_Job(str(voc), ("a", "b"), ("cat", "person"), False, 300, 0.5))
    # a holds a dog, which the two-class list does not name: left out; b's cat is class 0 -> label 1.
    assert [Path(i.path).name for i in chunk.invalid] == ["a.xml"] and "dog" in chunk.invalid[0].reason
    assert chunk.ids == ["b"] and chunk.gt_labels.tolist() == [1]
    assert set(chunk.conf[0].tolist()) == {0, 1}


# --------------------------------------------------------------------------- the written file


def plain_attrs(h5) -> dict:
    """HDF5 attributes as Python values (arrays as lists, numpy scalars as Python scalars)."""
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v.item() if hasattr(v, "item") else v)
            for k, v in h5.attrs.items()}


def positives_by_reference(boxes_and_labels, size: int = 300) -> int:
    priors = cached_reference_priors(size)
    return sum(int((reference_match(np.array(b, np.float32), np.array(l), priors)[1] > 0).sum())
               for b, l in boxes_and_labels)


def test_target_file_datasets_attributes_and_summary(tiny_voc, tmp_path):
    from converters.ssd_targets import config_attributes

    result = build_ssd_targets(tiny_voc, sets="2007/trainval", out=tmp_path / "ssd", workers=1)
    (summary,) = result.files
    path = tmp_path / "ssd" / "2007_trainval.h5"
    with h5py.File(path) as h5:
        assert set(h5) == {"loc", "conf", "image_ids", "image_paths", "gt_offsets", "gt_boxes", "gt_labels",
                           "gt_difficult", "priors"}
        loc, conf = h5["loc"], h5["conf"]
        # One image per chunk, rows appendable, gzip level 1 without shuffle.
        assert (loc.dtype, loc.shape, loc.maxshape, loc.chunks) == (np.float32, (2, 8732, 4), (None, 8732, 4),
                                                                    (1, 8732, 4))
        assert (conf.dtype, conf.shape, conf.maxshape, conf.chunks) == (np.int16, (2, 8732), (None, 8732), (1, 8732))
        for ds in (loc, conf):
            assert (ds.compression, ds.compression_opts, ds.shuffle) == ("gzip", 1, False)
        for name in ("image_ids", "image_paths"):
            assert h5py.check_string_dtype(h5[name].dtype).encoding == "utf-8"
        images = (tiny_voc / "VOCdevkit" / "VOC2007" / "JPEGImages").resolve()
        assert [s.decode() for s in h5["image_paths"][:]] == [str(images / "000001.jpg"), str(images / "000002.jpg")]
        assert h5["gt_offsets"].dtype == np.int64 and h5["gt_offsets"][:].tolist() == [0, 1, 2]
        # dog (10, 20, 50, 60) in 100 x 80 -> (0.09, 0.2375, 0.49, 0.7375); cat (5, 5, 20, 30) in 64 x 64.
        assert h5["gt_boxes"].dtype == np.float32
        np.testing.assert_allclose(h5["gt_boxes"][:], [[0.09, 0.2375, 0.49, 0.7375],
                                                       [0.0625, 0.0625, 0.296875, 0.453125]], rtol=1e-6)
        assert h5["gt_labels"].dtype == np.int64 and h5["gt_labels"][:].tolist() == [12, 8]
        assert h5["gt_difficult"].dtype == bool and h5["gt_difficult"][:].tolist() == [False, False]
        assert h5["priors"].dtype == np.float32 and torch.equal(torch.from_numpy(h5["priors"][:]),
                                                                cached_reference_priors(300))
        assert plain_attrs(h5) == {**config_attributes(SSD300, 0.5, False, VOC_CLASSES), "set": "2007/trainval"}
    positives = positives_by_reference([([[0.09, 0.2375, 0.49, 0.7375]], [11]),
                                        ([[0.0625, 0.0625, 0.296875, 0.453125]], [7])])
    assert (summary.set, summary.path, summary.images, summary.objects) == ("2007/trainval", path.resolve(), 2, 2)
    assert summary.positives_per_image == positives / 2
    assert summary.bytes == path.stat().st_size and summary.bytes_per_image == path.stat().st_size / 2


@pytest.mark.parametrize("compression, expected", [("lzf", ("lzf", None)), ("none", (None, None))])
def test_other_compressions_reach_loc_and_conf(tiny_voc, tmp_path, compression, expected):
    result = build_ssd_targets(tiny_voc, sets="2007/test", out=tmp_path, compression=compression, workers=1)
    with h5py.File(result.files[0].path) as h5:
        assert [(h5[n].compression, h5[n].compression_opts) for n in ("loc", "conf")] == [expected, expected]
        assert h5["loc"].chunks == (1, 8732, 4) and h5["conf"].chunks == (1, 8732)


def test_empty_split_list_gives_an_empty_file_of_the_asked_size(tiny_voc, tmp_path):
    # Before the fix: loc and conf were sized for SSD300's priors in an SSD512 file (the size came from
    # the first job, and there is none), and writing the empty difficult flags (float64) failed with
    # HDF5's "no appropriate function for conversion path".
    voc = tiny_voc / "VOCdevkit" / "VOC2007"
    (voc / "ImageSets" / "Main" / "val.txt").write_text("")
    result = build_ssd_targets(tiny_voc, sets="2007/val", out=tmp_path / "out", size=512, workers=1)
    (summary,) = result.files
    assert (summary.images, summary.objects, summary.positives_per_image) == (0, 0, 0.0)
    with h5py.File(summary.path) as h5:
        shapes = {name: (ds.shape, ds.dtype) for name, ds in h5.items()}
        assert h5.attrs["size"] == 512 and h5["gt_offsets"][:].tolist() == [0]
    assert shapes == {"loc": ((0, 24564, 4), np.float32), "conf": ((0, 24564), np.int16),
                      "image_ids": ((0,), object), "image_paths": ((0,), object), "gt_offsets": ((1,), np.int64),
                      "gt_boxes": ((0, 4), np.float32), "gt_labels": ((0,), np.int64),
                      "gt_difficult": ((0,), bool), "priors": ((24564, 4), np.float32)}
    with open_targets(summary.path) as targets:
        assert len(targets) == 0 and targets.priors.shape == (24564, 4)


def test_set_of_only_invalid_annotations_is_an_empty_file(tiny_voc, tmp_path):
    voc = tiny_voc / "VOCdevkit" / "VOC2007"
    (voc / "ImageSets" / "Main" / "val.txt").write_text("nothing\n")
    result = build_ssd_targets(tiny_voc, sets="2007/val", out=tmp_path, workers=1)
    assert [Path(i.path).name for i in result.invalid] == ["nothing.xml"] and not result.ok
    (summary,) = result.files
    assert (summary.images, summary.objects, summary.positives_per_image) == (0, 0, 0.0)
    with h5py.File(summary.path) as h5:
        assert h5["loc"].shape == (0, 8732, 4) and h5["conf"].shape == (0, 8732)
        assert h5["gt_offsets"][:].tolist() == [0] and h5["gt_boxes"].shape == (0, 4)
        assert h5["gt_difficult"].dtype == bool and h5["gt_labels"].dtype == np.int64


def test_many_chunks_fill_their_own_rows_and_report_progress_across_sets(tmp_path, monkeypatch):
    # 17 images with one worker: chunks of max(8, ceil(17 / 8)) = 8 -> 8, 8, 1; then sets of 3 and 2 images.
    import converters.ssd_targets as ssd

    read, pids = ssd._read_in_process, tmp_path / "pids.txt"

    def read_noting_the_process(paths, classes):  # a file, so that a pool's worker would show too
        with open(pids, "a") as f:
            f.write(f"{os.getpid()}\n")
        return read(paths, classes)

    monkeypatch.setattr(ssd, "_read_in_process", read_noting_the_process)
    voc = tmp_path / "VOCdevkit" / "VOC2007"
    images = {f"{k:06d}": (f"{k:06d}.jpg", 100, 100, [(VOC_CLASSES[k % 20], 1 + 3 * k, 1 + 2 * k, 40 + 3 * k,
                                                          30 + 4 * k, 0)]) for k in range(17)}
    make_voc(voc, images, "train")
    make_voc(voc, {}, "val", listed=["000003", "000016", "000000"])
    make_voc(voc, {}, "test", listed=["000005", "000006"])
    seen = []
    result = build_ssd_targets(tmp_path, sets="2007/train,2007/val,2007/test", out=tmp_path / "t", workers=1,
                               progress=lambda done, total: seen.append((done, total)))
    assert seen == [(0, 22), (8, 22), (16, 22), (17, 22), (17, 22), (20, 22), (20, 22), (22, 22)]
    assert pids.read_text().split() == [str(os.getpid())] * 5  # --workers 1: no pool, every chunk matched here
    train, val, _ = result.files
    assert (train.images, train.objects, val.images, val.objects) == (17, 17, 3, 3)
    with h5py.File(train.path) as h5:  # every chunk's positives count, not only the last one's
        assert train.positives_per_image == np.count_nonzero(h5["conf"][:]) / 17
    priors = cached_reference_priors(300)
    with open_targets(train.path) as targets:  # the rows on both sides of each chunk boundary
        for i in (0, 7, 8, 15, 16):
            item = targets[i]
            ref_loc, ref_conf = reference_match(item["boxes"].numpy(), np.array([i % 20]), priors)
            assert item["image_id"] == f"{i:06d}" and torch.equal(item["conf"], ref_conf)
            torch.testing.assert_close(item["loc"], ref_loc, rtol=1e-5, atol=1e-5)
    # Box k = (1 + 3k, 1 + 2k, 40 + 3k, 30 + 4k) in 100 x 100 -> ((3k) / 100, (2k) / 100, (39 + 3k) / 100, (29 + 4k) / 100).
    ks = [3, 16, 0]
    expected = [([[3 * k / 100, 2 * k / 100, (39 + 3 * k) / 100, (29 + 4 * k) / 100]], [k % 20]) for k in ks]
    assert val.positives_per_image == positives_by_reference(expected) / 3
    with open_targets(val.path) as targets:
        assert [targets[i]["image_id"] for i in range(3)] == ["000003", "000016", "000000"]
        np.testing.assert_allclose(targets[1]["boxes"].numpy(), expected[1][0], rtol=1e-6)


def test_ctrl_c_during_matching_stops_at_once(tiny_voc, tmp_path, monkeypatch, default_sigint):

    import converters.ssd_targets as ssd

    reached = []
    read = ssd._read_in_process

    def read_then_interrupted(paths, classes):
        os.kill(os.getpid(), signal.SIGINT)
        reached.append("after the signal")  # not reached: the matching window delivers it at once
        return read(paths, classes)

    monkeypatch.setattr(ssd, "_read_in_process", read_then_interrupted)
    with pytest.raises(KeyboardInterrupt):
        build_ssd_targets(tiny_voc, sets="2007/trainval", out=tmp_path / "t", workers=1)
    assert reached == [] and not (tmp_path / "t" / "2007_trainval.h5").exists()


def test_ctrl_c_during_the_final_write_leaves_no_file(tiny_voc, tmp_path, monkeypatch, default_sigint):

    import vocli.paths

    write = vocli.paths.atomic_write_bytes

    def interrupted_write(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)  # deferred: the check before the rename delivers it
        return write(*args, **kwargs)

    monkeypatch.setattr(vocli.paths, "atomic_write_bytes", interrupted_write)
    with pytest.raises(KeyboardInterrupt):
        build_ssd_targets(tiny_voc, sets="2007/test", out=tmp_path / "t", workers=1)
    assert not (tmp_path / "t" / "2007_test.h5").exists()


# --------------------------------------------------------------------------- build_ssd_targets' arguments


def test_threshold_bounds_and_message(tiny_voc, tmp_path):
    from vocli.errors import VocliError

    for bad in (0.0, 1.5, -0.1):
        with pytest.raises(VocliError) as err:
            build_ssd_targets(tiny_voc, sets="2007/test", out=tmp_path, threshold=bad)
        assert str(err.value) == f"--threshold must be in (0, 1], got {bad}"
    result = build_ssd_targets(tiny_voc, sets="2007/test", out=tmp_path, threshold=1.0, workers=1)
    assert result.files[0].positives_per_image == 1.0  # one image, one positive prior
    with open_targets(result.files[0].path) as targets:
        # IoU >= 1 only for the forced best prior: exactly one positive, the cat's label 8.
        assert targets.attrs["threshold"] == 1.0 and sorted(targets[0]["conf"].unique().tolist()) == [0, 8]
        assert int((targets[0]["conf"] > 0).sum()) == 1


def test_arguments_are_checked_before_the_dataset_is_read(tmp_path):
    from vocli.errors import VocliError

    with pytest.raises(VocliError) as err:
        build_ssd_targets(tmp_path / "nowhere", compression="zip")
    assert (err.value.message, err.value.hint) == ("unknown compression 'zip'", "use gzip, lzf or none")


def test_root_default_and_home_expansion(tiny_voc, tmp_path, monkeypatch):
    # The tiny tree moves under the default root, <VOCLI_HOME>/data.
    monkeypatch.setenv("VOCLI_HOME", str(tmp_path / "home"))
    (tmp_path / "home" / "data").mkdir(parents=True)
    (tiny_voc / "VOCdevkit").rename(tmp_path / "home" / "data" / "VOCdevkit")
    result = build_ssd_targets(sets="2007/test", workers=1)  # no root: <VOCLI_HOME>/data
    assert result.out == tmp_path / "home" / "data" / "ssd300" and result.files[0].images == 1
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    result = build_ssd_targets("~/data", sets="2007/test", out="~/t", workers=1)
    assert result.out == tmp_path / "home" / "t" and result.files[0].path == tmp_path / "home" / "t" / "2007_test.h5"


def test_result_fields_and_default_output_folder(tiny_voc):
    result = build_ssd_targets(tiny_voc, sets="2007/test", size=512, workers=1)
    assert result.out == (tiny_voc / "ssd512").resolve() and result.size == 512 and result.num_priors == 24564
    assert [f.path for f in result.files] == [(tiny_voc / "ssd512" / "2007_test.h5").resolve()]
    assert result.invalid == [] and 0 < result.seconds < 60


def test_split_entries_that_are_paths_are_reported(tiny_voc, tmp_path):
    split = tiny_voc / "VOCdevkit" / "VOC2007" / "ImageSets" / "Main" / "test.txt"
    split.write_text("000002\n../000001\n")
    result = build_ssd_targets(tiny_voc, sets="2007/test", out=tmp_path, workers=1)
    assert [(i.path, i.reason) for i in result.invalid] == [
        (str(split), "entry '../000001' holds a path separator (ids and file names are names, not paths)")]
    assert result.files[0].images == 1


def test_classes_from_a_file_a_list_or_the_dataset(tiny_voc, tmp_path):
    voc = tiny_voc / "VOCdevkit" / "VOC2007"
    names = tmp_path / "two.names"
    names.write_text("cat\ndog\n")
    # Only 000002's cat is in the test list: class 0 of (cat, dog) -> label 1.
    from_file = build_ssd_targets(tiny_voc, sets="2007/test", out=tmp_path / "a", classes=names, workers=1)
    from_list = build_ssd_targets(tiny_voc, sets="2007/test", out=tmp_path / "b", classes=["dog", "cat"], workers=1)
    (voc / "classes.txt").write_text("bird\ncat\n")
    from_dataset = build_ssd_targets(tiny_voc, sets="2007/test", out=tmp_path / "c", workers=1)
    for result, classes, label in ((from_file, ("cat", "dog"), 1), (from_list, ("dog", "cat"), 2),
                                   (from_dataset, ("bird", "cat"), 2)):
        with open_targets(result.files[0].path) as targets:
            assert targets.classes == classes and targets.attrs["num_classes"] == 2
            assert targets[0]["labels"].tolist() == [label] and targets[0]["conf"].max() == label


# --------------------------------------------------------------------------- reading target files


@pytest.fixture
def two_image_targets(tiny_voc, tmp_path) -> Path:
    return build_ssd_targets(tiny_voc, sets="2007/trainval", out=tmp_path / "t", workers=1).files[0].path


def test_reader_attributes_are_python_scalars_and_arrays(two_image_targets):
    with open_targets(two_image_targets) as targets:
        attrs = targets.attrs
        assert type(attrs["size"]) is int and attrs["size"] == 300
        assert attrs["include_difficult"] is False and attrs["clip"] is True
        assert type(attrs["threshold"]) is float and attrs["threshold"] == 0.5
        assert attrs["set"] == "2007/trainval" and attrs["format"] == "vocli-ssd-targets"
        assert isinstance(attrs["steps"], np.ndarray) and attrs["steps"].tolist() == [8, 16, 32, 64, 100, 300]


def test_reader_items_negative_indices_and_range_error(two_image_targets):
    with open_targets(two_image_targets) as targets:
        assert len(targets) == 2
        first, last = targets[-2], targets[-1]
        assert (first["image_id"], last["image_id"]) == ("000001", "000002")
        assert last["image_path"].endswith("/JPEGImages/000002.jpg")
        assert first["conf"].dtype == torch.int64 and first["loc"].dtype == torch.float32
        assert first["labels"].dtype == torch.int64 and first["difficult"].dtype == torch.bool
        assert first["boxes"].dtype == torch.float32 and first["boxes"].shape == (1, 4)
        assert last["labels"].tolist() == [8] and last["difficult"].tolist() == [False]
        for bad, text in ((2, "image 2 out of range for 2 images"), (-3, "image -3 out of range for 2 images")):
            with pytest.raises(IndexError) as err:
                targets[bad]
            assert str(err.value) == text


def test_reader_reopens_lazily_once_per_process_and_after_close(two_image_targets):

    targets = open_targets(two_image_targets)
    handle = targets._file()
    assert targets._file() is handle and targets._pid == os.getpid()  # one handle per process
    targets.close()
    assert not handle.id.valid and targets._h5 is None
    assert targets[1]["image_id"] == "000002"  # opened again on use
    targets.close()
    targets.close()  # closing twice is harmless


def test_reader_opens_its_own_handle_in_a_forked_process(two_image_targets):
    targets = open_targets(two_image_targets)
    parent = targets._file()
    ctx = multiprocessing.get_context("fork")
    queue = ctx.SimpleQueue()

    def child():
        item = targets[1]
        queue.put((targets._pid == os.getpid(), targets._h5 is not parent, item["image_id"]))

    proc = ctx.Process(target=child)
    proc.start()
    proc.join()
    assert proc.exitcode == 0 and queue.get() == (True, True, "000002")
    targets.close()


def test_reader_pickles_without_its_handle(two_image_targets):

    targets = open_targets(two_image_targets)
    targets[0]
    state = targets.__getstate__()
    assert set(state) == {"path", "attrs", "_offsets", "_h5", "_pid"}
    assert state["path"] == two_image_targets and state["attrs"] is targets.attrs
    assert state["_offsets"].tolist() == [0, 1, 2] and state["_h5"] is None and state["_pid"] is None
    copy = pickle.loads(pickle.dumps(targets))
    assert len(copy) == 2 and copy[1]["image_id"] == "000002" and copy.classes == VOC_CLASSES
    copy.close()
    targets.close()


def test_reader_errors_name_the_file_and_the_fix(tmp_path):
    from vocli.errors import DatasetNotFoundError, VocliError

    with pytest.raises(DatasetNotFoundError) as err:
        open_targets(tmp_path / "absent.h5")
    assert (err.value.message, err.value.hint) == (f"{tmp_path / 'absent.h5'}: SSD target file not found",
                                                   "run `vocli convert ssd`")
    partial = tmp_path / "partial.h5"
    with h5py.File(partial, "w") as h5:
        h5["loc"] = np.zeros((0, 4), np.float32)
        h5["gt_offsets"] = np.zeros(1, np.int64)
    with pytest.raises(VocliError) as err:
        open_targets(partial)
    assert err.value.message == (f"{partial}: not an SSD target file (missing image_ids, image_paths, gt_boxes, "
                                 "gt_labels, gt_difficult, priors, conf)")
    assert err.value.hint == "write it with `vocli convert ssd`"
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5")
    with pytest.raises(VocliError) as err:
        open_targets(junk)
    assert err.value.message.startswith(f"{junk}: not a readable SSD target file: ")
    assert err.value.hint == "write it again with `vocli convert ssd`"


def test_match_output_types_and_other_variances():
    truths = np.array([[0, 0, 0.5, 0.5]], dtype=np.float32)
    loc, conf = match(truths, [4], PRIORS, variances=(0.2, 0.5))
    assert loc.dtype == np.float32 and loc.shape == (5, 4) and conf.dtype == np.int64 and conf.shape == (5,)
    assert conf.tolist() == [5, 5, 0, 0, 0]
    # p1 = [0, 0, 0.5, 0.25]: centre offset (0, 0.125) over (0.2 * 0.5, 0.2 * 0.25) = (0, 2.5); size log(1) / 0.5,
    # log(0.5 / 0.25) / 0.5.
    np.testing.assert_allclose(loc[1], [0, 2.5, 0, math.log(2) / 0.5], rtol=1e-6)
    empty_loc, empty_conf = match(np.zeros((0, 4), np.float32), [], PRIORS)
    assert (empty_loc.dtype, empty_loc.shape, empty_conf.dtype) == (np.float32, (5, 4), np.int64)


def test_priors_without_clipping_keep_boxes_past_the_border():
    import dataclasses

    priors = prior_boxes(dataclasses.replace(SSD300, clip=False))
    # The 1x1 map's last box: (0.88 / sqrt 2, 0.88 * sqrt 2) = (0.6223, 1.2445), not clamped to 1.
    np.testing.assert_allclose(priors[-1], [0.5, 0.5, 0.88 / math.sqrt(2), 0.88 * math.sqrt(2)], rtol=1e-6)
    assert priors.dtype == np.float32 and priors.max() > 1


def test_match_computes_ious_in_float32_like_ssd_pytorch():
    # Two VOC boxes in a 300 x 300 image where float64 IoUs pick other priors than float32 ones
    # (found by comparing both on a few random boxes): prior corners and truths stay float32.
    priors = prior_boxes(SSD300)
    reference_priors_300 = cached_reference_priors(300)
    for box in ([198, 219, 210, 228], [13, 91, 198, 117]):
        truths = normalise_voc_boxes(np.array([box]), 300, 300)
        loc, conf = match(truths, np.array([0]), priors)
        ref_loc, ref_conf = reference_match(truths, np.array([0]), reference_priors_300)
        assert torch.equal(torch.from_numpy(conf), ref_conf)
        torch.testing.assert_close(torch.from_numpy(loc), ref_loc, rtol=1e-5, atol=1e-5)


def test_temp_file_of_a_killed_run_is_removed_from_the_output_folder(tiny_voc, tmp_path):
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])  # a process id that is gone
    child.wait()
    out = tmp_path / "t"
    out.mkdir()
    stale = out / f".2007_test.h5.{child.pid}.x1y2z3w4.h5.tmp"
    stale.write_text("half written")
    build_ssd_targets(tiny_voc, sets="2007/test", out=out, workers=1)
    assert sorted(p.name for p in out.iterdir()) == ["2007_test.h5"]


def test_match_computes_each_block_of_ground_truths_once(monkeypatch):
    import converters.ssd_targets as ssd

    rows = []
    iou = ssd.box_iou_columns

    def counted(truths, corners):
        rows.append(len(truths))
        return iou(truths, corners)

    monkeypatch.setattr(ssd, "MATCH_BLOCK", 7)
    monkeypatch.setattr(ssd, "box_iou_columns", counted)
    xy = np.linspace(0, 0.5, 40)[:, None].repeat(2, 1)
    match(np.concatenate([xy, xy + 0.3], 1).astype(np.float32), np.zeros(40, int), prior_boxes(SSD300))
    assert rows == [7, 7, 7, 7, 7, 5]  # 40 truths in blocks of 7

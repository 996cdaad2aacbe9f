"""Training data: label reading, box transforms worked by hand, augmentation determinism, collation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vocli.errors import VocliError
from vocli.yolo.data import (AugmentConfig, LabelledImages, YoloDataset, collate, make_loader,
                             multi_scale_size, read_image_list, read_label_file, transform_boxes,
                             voc_images)


def write_image(path, w, h, seed=0):
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)
    return path


def test_read_label_file(tmp_path):
    p = tmp_path / "a.txt"
    p.write_text("1 0.5 0.5 0.2 0.4\n\n0 0.1 0.2 0.05 0.05\n")
    labels = read_label_file(p, 2)
    assert labels.shape == (2, 5) and labels.dtype == np.float32
    assert labels[0].tolist() == pytest.approx([1, 0.5, 0.5, 0.2, 0.4])
    assert read_label_file(tmp_path / "missing.txt", 2).shape == (0, 5)
    p.write_text("5 0.5 0.5 0.2 0.4\n")
    with pytest.raises(VocliError, match="outside 0..1"):
        read_label_file(p, 2)
    p.write_text("0 0.5 nope 0.2\n")
    with pytest.raises(VocliError, match="a.txt:1"):
        read_label_file(p, 2)


def test_read_image_list_resolves_relative(tmp_path):
    lst = tmp_path / "train.txt"
    lst.write_text("/abs/x.jpg\nimgs/y.jpg\n\n")
    assert read_image_list(lst) == [Path("/abs/x.jpg"), tmp_path / "imgs/y.jpg"]
    with pytest.raises(VocliError, match="not found"):
        read_image_list(tmp_path / "none.txt")


def test_transform_boxes_letterbox_by_hand():
    # 200x100 image, box centre (0.5, 0.5) size 0.2 x 0.4 -> pixels x 80..120, y 30..70.
    # Letterbox to 100: scale 0.5, pad_y 25 -> x 40..60, y 40..60.
    labels = np.array([[3, 0.5, 0.5, 0.2, 0.4]], dtype=np.float32)
    m = np.array([[0.5, 0, 0], [0, 0.5, 25]])
    out = transform_boxes(labels, 200, 100, m, 100, 2.0, 0.1)
    assert out.tolist() == [pytest.approx([3, 0.5, 0.5, 0.2, 0.2])]


def test_transform_boxes_clips_and_drops():
    labels = np.array([[0, 0.1, 0.5, 0.2, 0.2],     # x 0..20 -> shifted -15: -15..5 -> clipped 0..5, keeps 25%
                       [1, 0.05, 0.5, 0.1, 0.2],    # x 0..10 -> -15..-5, gone
                       [2, 0.5, 0.5, 0.02, 0.2]],   # 2 px wide -> kept at the 2 px limit... then 1 px after 0.5 zoom
                      dtype=np.float32)
    m = np.array([[1.0, 0, -15], [0, 1.0, 0]])
    out = transform_boxes(labels, 100, 100, m, 100, 2.0, 0.1)
    assert out[:, 0].tolist() == [0, 2]
    assert out[0, 1:].tolist() == pytest.approx([0.025, 0.5, 0.05, 0.2])
    m_half = np.array([[0.5, 0, 0], [0, 0.5, 0]])
    out = transform_boxes(labels, 100, 100, m_half, 100, 2.0, 0.1)
    assert 2 not in out[:, 0].tolist()  # 1 px wide after zoom 0.5


def make_set(tmp_path, n=4):
    paths, labels = [], []
    for i in range(n):
        paths.append(write_image(tmp_path / f"im{i}.png", 80 + 10 * i, 60, seed=i))
        labels.append(np.array([[i % 2, 0.5, 0.5, 0.4, 0.5]], dtype=np.float32))
    return LabelledImages(paths, labels)


def test_no_augment_is_letterbox(tmp_path):
    from vocli.images import letterbox, load_image

    data = make_set(tmp_path, 1)
    ds = YoloDataset(data, 64, augment=None)
    img, t = ds[0]
    expect, _ = letterbox(load_image(data.paths[0]), 64)
    assert img.shape == (3, 64, 64) and img.dtype == torch.uint8
    assert torch.equal(img.permute(1, 2, 0), torch.from_numpy(expect))
    # 80x60 -> scale 0.8, 64x48 padded 8 top: box 32x30 -> 25.6x24 px
    assert t.tolist() == [pytest.approx([0, 0.5, 0.5, 0.4, 24 / 64])]


def test_flip_only_mirrors_image_and_boxes(tmp_path):
    data = make_set(tmp_path, 1)
    data.labels[0] = np.array([[1, 0.25, 0.5, 0.2, 0.5]], dtype=np.float32)
    plain = YoloDataset(data, 64, augment=None)[0]
    aug = AugmentConfig(flip=1.0, hsv_h=0, hsv_s=0, hsv_v=0, scale=0, translate=0)
    flipped = YoloDataset(data, 64, augment=aug)[0]
    # identity affine matches the letterbox up to PIL resampling differences at the borders
    diff = (flipped[0].flip(-1).int() - plain[0].int()).abs().float()
    assert diff.mean() < 3
    assert flipped[1][0, 1].item() == pytest.approx(1 - plain[1][0, 1].item(), abs=1e-4)


def test_augmentation_is_deterministic_per_seed_epoch_index(tmp_path):
    data = make_set(tmp_path)
    a = YoloDataset(data, 64, augment=AugmentConfig(), seed=3)
    b = YoloDataset(data, 64, augment=AugmentConfig(), seed=3, cache=True)
    assert torch.equal(a[2][0], b[2][0]) and torch.equal(a[2][1], b[2][1])
    first = a[2][0].clone()
    a.set_epoch(1)
    assert not torch.equal(a[2][0], first)


def test_loader_collates_ragged_targets_and_repeats(tmp_path):
    data = make_set(tmp_path)
    data.labels[1] = np.zeros((0, 5), dtype=np.float32)
    data.labels[2] = np.tile(data.labels[2], (3, 1))
    ds = YoloDataset(data, 64, augment=None)
    images, targets = collate([ds[i] for i in range(4)])
    assert images.shape == (4, 3, 64, 64)
    assert targets.shape == (5, 6)
    assert targets[:, 0].tolist() == [0, 2, 2, 2, 3]

    def order(seed, epoch):
        loader = make_loader(ds, 2, 0, seed)
        loader.sampler.set_epoch(epoch)
        return [t[:, 0].tolist() + [len(t)] for _, t in loader], [im.sum().item() for im, _ in loader]

    assert order(5, 0) == order(5, 0)
    assert order(5, 0)[1] != order(5, 1)[1]


def test_multi_scale_sizes():
    sizes = {multi_scale_size(416, 0, 0, i) for i in range(200)}
    assert all(s % 32 == 0 for s in sizes)
    assert min(sizes) == 288 and max(sizes) == 608  # ceil(278.7/32)*32, floor(624/32)*32


def test_voc_images_from_xml(tiny_voc):
    data = voc_images(tiny_voc, "2007/train", ["cat", "dog", "person"])
    # 000001: dog 10,20,50,60 in 100x80 (difficult person left out)
    # x: (10-1)/100 .. 50/100 -> cx 0.295, w 0.41; y: 19/80 .. 60/80 -> cy 0.49375, h 0.5125
    assert data.paths[0].name == "000001.jpg"
    assert data.labels[0].tolist() == [pytest.approx([1, 0.295, 0.49375, 0.41, 0.5125])]


def test_voc_images_leave_out_and_list_an_invalid_annotation(tiny_voc):
    # As convert does: the training index goes on without the invalid file and says which it was.
    (tiny_voc / "VOCdevkit" / "VOC2007" / "Annotations" / "000001.xml").write_text("<annotation>")
    data = voc_images(tiny_voc, "2007/trainval", ["cat", "dog", "person"])
    assert [p.name for p in data.paths] == ["000002.jpg"]
    # 000002: cat 5,5,20,30 in 64x64 -> cx (4 + 20) / 2 / 64, w 16/64; cy (4 + 30) / 2 / 64, h 26/64
    assert data.labels[0].tolist() == [pytest.approx([0, 12 / 64, 17 / 64, 16 / 64, 26 / 64])]
    assert len(data.invalid) == 1 and data.invalid[0].path.endswith("000001.xml")
    assert "not valid XML" in data.invalid[0].reason

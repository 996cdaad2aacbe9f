"""Hostile weights and checkpoints: damaged zip data, pickled code, foreign state dicts (issue 18, item 5).

Every .pt goes through ``vocli.yolo.checkpoint.load_torch_file``: zip CRC-32s first, then
``torch.load(weights_only=True)``; the error is one line naming the file and never suggests
``weights_only=False``.
"""

from __future__ import annotations

import struct
import zipfile

import pytest
import torch
from hostile_common import TINY_CFG, error_line, run, tree_state, write_tiny_pt
from PIL import Image

from vocli.errors import CheckpointError, DarknetFormatError


def corrupt_tensor_bytes(path, length: int = 4096) -> str:
    """Zero ``length`` bytes inside the largest tensor's stored data; return that member's name."""
    with zipfile.ZipFile(path) as archive:
        info = max(archive.infolist(), key=lambda i: i.file_size)
    data = bytearray(path.read_bytes())
    # local file header: 30 bytes, then the name and the local extra field (lengths at offsets 26 and 28)
    name_len, extra_len = struct.unpack_from("<HH", data, info.header_offset + 26)
    start = info.header_offset + 30 + name_len + extra_len
    assert info.file_size >= length
    data[start:start + length] = bytes(length)
    path.write_bytes(bytes(data))
    return info.filename


@pytest.fixture
def tiny_pt(tmp_path):
    return write_tiny_pt(tmp_path / "models")


@pytest.fixture
def big_pt(tmp_path):
    """A converted .pt whose largest tensor holds 6,912 floats (27 KB), so 4 KB can be damaged inside it."""
    return write_tiny_pt(tmp_path / "m", TINY_CFG.replace("filters=8", "filters=256", 1), "big")


def test_damaged_tensor_data_is_refused_by_detect_and_export(tmp_path, big_pt, capsys):
    weights, names = big_pt
    member = corrupt_tensor_bytes(weights)
    torch.load(weights, weights_only=True)  # torch alone loads the damaged file without a word
    (tmp_path / "imgs").mkdir()
    Image.new("RGB", (64, 64), (1, 2, 3)).save(tmp_path / "imgs" / "a.jpg")
    before = tree_state(tmp_path)
    expected = f"{weights}: damaged checkpoint: {member} fails its CRC-32 check"
    rc, err = run(capsys, "detect", tmp_path / "imgs", "--weights", weights, "--names", names,
                  "--out", tmp_path / "det")
    assert rc == 1 and expected in error_line(err)
    rc, err = run(capsys, "export-weights", weights, "-o", tmp_path / "out.weights")
    assert rc == 1 and expected in error_line(err)
    assert tree_state(tmp_path) == before


def test_damaged_resume_checkpoint_is_refused(tmp_path, big_pt, capsys):
    weights, _ = big_pt
    corrupt_tensor_bytes(weights)
    before = tree_state(tmp_path)
    rc, err = run(capsys, "train", "--resume", weights)
    assert rc == 1 and f"{weights}: damaged checkpoint" in error_line(err)
    assert tree_state(tmp_path) == before


class _Evil:
    def __init__(self, flag):
        self.flag = flag

    def __reduce__(self):
        return (open, (self.flag, "w"))


def test_pickled_code_is_never_run_and_never_advised(tmp_path, capsys):
    flag = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"model": {}, "x": _Evil(str(flag))}, evil)
    before = tree_state(tmp_path)
    for args in (["export-weights", evil, "-o", tmp_path / "x.weights"], ["train", "--resume", evil]):
        rc, err = run(capsys, *args)
        line = error_line(err)
        assert rc == 1 and f"{evil}: holds objects other than tensors and plain values; refused" in line
        assert "weights_only=False" not in err
    assert not flag.exists() and tree_state(tmp_path) == before


def test_a_truncated_zip_is_one_line(tmp_path, tiny_pt, capsys):
    weights, _ = tiny_pt
    weights.write_bytes(weights.read_bytes()[:-200])  # the central directory is gone
    rc, err = run(capsys, "export-weights", weights, "-o", tmp_path / "x.weights")
    assert rc == 1 and str(weights) in error_line(err)


def test_load_torch_file_reads_a_good_file(tmp_path):
    from vocli.yolo.checkpoint import load_torch_file

    path = tmp_path / "ok.pt"
    torch.save({"w": torch.arange(6.0)}, path)
    assert torch.equal(load_torch_file(path)["w"], torch.arange(6.0))


# --------------------------------------------------------------------------- how much must load


def keys(layers: dict[int, int]) -> list[str]:
    """Model-like keys: ``layers.i.t<j>`` for j < count, plus a num_batches_tracked per layer (not counted)."""
    out = []
    for layer, count in layers.items():
        out += [f"layers.{layer}.t{j}" for j in range(count)] + [f"layers.{layer}.bn.num_batches_tracked"]
    return out


def test_half_of_the_tensors_is_enough():
    from vocli.yolo.checkpoint import check_enough_loaded

    model = keys({0: 4, 1: 4, 2: 2})  # 10 counted tensors
    assert check_enough_loaded(model, keys({0: 4, 2: 1})[:-1], [], "w.pt") is None  # 5 of 10: half loads


def test_a_whole_layer_prefix_is_a_backbone():
    from vocli.yolo.checkpoint import check_enough_loaded

    model = keys({0: 4, 1: 4, 2: 2, 3: 10})  # 20 counted tensors
    loaded = keys({0: 4, 1: 4})  # 8 of 20, but every tensor of layers 0 and 1
    assert check_enough_loaded(model, loaded, [], "bb.conv.2") == "partial backbone: layers 0-1"


def test_few_tensors_that_are_no_backbone_are_refused():
    from vocli.yolo.checkpoint import check_enough_loaded

    model = keys({0: 4, 1: 4, 2: 2, 3: 10})
    with pytest.raises(CheckpointError, match=r"x.pt: only 0 of the model's 20 tensors load from it"):
        check_enough_loaded(model, [], [("foreign.weight", "not in model")], "x.pt")
    # layer 1 without layer 0 is not the start of the network
    with pytest.raises(CheckpointError, match=r"only 4 of the model's 20"):
        check_enough_loaded(model, keys({1: 4}), [], "x.pt")
    # layer 0 only in part
    with pytest.raises(CheckpointError, match=r"only 3 of the model's 20"):
        check_enough_loaded(model, keys({0: 4})[:3], [], "x.pt")


def test_train_refuses_a_foreign_checkpoint_as_starting_weights(tmp_path, tiny_pt):
    from vocli.yolo.setup import build_model
    from vocli.yolo.train import TrainConfig

    weights, _ = tiny_pt
    foreign = tmp_path / "foreign.pt"
    torch.save({"backbone.conv1.weight": torch.zeros(8, 3, 3, 3), "fc.bias": torch.zeros(10)}, foreign)
    cfg = tmp_path / "tiny.cfg"
    cfg.write_text(TINY_CFG)
    with pytest.raises(CheckpointError, match=rf"{foreign}: only 0 of the model's 7 tensors load"):
        build_model(TrainConfig(cfg=str(cfg), weights=str(foreign), img_size=64), 2, load_initial=True)
    # the model's own weights: all 7 (conv, 4 batch norm, head weight and bias) and the counter load
    _, report = build_model(TrainConfig(cfg=str(cfg), weights=str(weights), img_size=64), 2, load_initial=True)
    assert report["loaded"] == 8 and "backbone" not in report["summary"]


# --------------------------------------------------------------------------- not weights at all

HTML = "looks like an HTML page, not Darknet weights"
TEXT = "looks like a text file, not Darknet weights"


@pytest.mark.parametrize("head, what", [
    (b"<!DOCTYPE html><title>moved</title>", HTML),
    (b"<head><title>404 Not Found</title></head>", HTML),
    (b'<?xml version="1.0"?><Error><Code>NoSuchKey</Code></Error>', HTML),  # an S3 error page
    (b"<!-- mirror --><p>gone</p>", HTML),
    (b"\n\r\t <?xml version='1.0'?><x/>", HTML),  # leading white space is skipped
    (b"\xef\xbb\xbf<HTML><body>moved</body></HTML>", HTML),  # a byte-order mark, then upper-case tags
    (b'{"error": "Not Found", "status": 404}', "looks like a JSON document, not Darknet weights"),
    (b'[{"name": "yolov3.weights", "size": 0}]', "looks like a JSON document, not Darknet weights"),
    (b"\x1f\x8b\x08\x00" + bytes(28), "is a gzip archive, not Darknet weights"),
    (b"PK\x03\x04" + bytes(28), "is a zip archive (a PyTorch .pt?), not Darknet weights"),
    (b"\x89HDF\r\n\x1a\n" + bytes(24), "is an HDF5 file, not Darknet weights"),
    (b"Not Found.\tTry again\r\nlater", TEXT),  # space, tab, CR and LF are text
    (b"0123456789abcdef", TEXT),  # 16 printable bytes are enough to call it text
    (b"a" * 64 + bytes(16), TEXT),  # only the first 64 bytes are looked at
    # near misses are read as headers: DEL is no text (0x6161617f, 0x61616161 ...); "{" then bytes that
    # are no ASCII is no JSON (0xffffff7b = -133)
    (b"\x7f" + b"a" * 19, "header version 1633771903.1633771873.1633771873 is not a Darknet header"),
    (b"{\xff\xff\xff" + bytes(16), "header version -133.0.0 is not a Darknet header"),
])
def test_files_that_are_not_weights_are_named(tmp_path, head, what):
    from converters.darknet_weights import read_header

    path = tmp_path / "yolov3.weights"
    path.write_bytes(head)
    with pytest.raises(DarknetFormatError) as e:
        read_header(path)
    assert str(e.value) == f"{path}: {what} (re-download it)"


def test_only_the_first_512_bytes_are_sniffed(tmp_path):
    from converters.darknet_weights import read_header

    # One form feed (white space to lstrip, but no text), 507 bytes 0x80, then "<html" at bytes 508-512:
    # the 512 bytes read end inside the tag, so this is no HTML page but a bad header (0x8080800c).
    path = tmp_path / "w.weights"
    path.write_bytes(b"\x0c" + b"\x80" * 507 + b"<html>" + bytes(100))
    with pytest.raises(DarknetFormatError) as e:
        read_header(path)
    assert str(e.value) == (f"{path}: header version -2139062260.-2139062144.-2139062144 is not a Darknet header "
                            "(re-download it)")

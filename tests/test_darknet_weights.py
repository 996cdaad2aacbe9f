"""Darknet .weights conversion, checked against an independent writer built here by hand."""

import filecmp
import json
from pathlib import Path
import struct

import numpy as np
import pytest
import torch

from converters.darknet_weights import convert_weights, export_weights, load_weights, read_darknet_weights
from vocli.cli.app import main
from vocli.darknet.cfg import parse_cfg
from vocli.darknet.model import Darknet
from vocli.errors import DarknetFormatError

# yolov3-tiny's convolutions in file order: (layer index, filters, in channels, size, batch norm).
TINY_CONVS = [(0, 16, 3, 3, True), (2, 32, 16, 3, True), (4, 64, 32, 3, True), (6, 128, 64, 3, True),
              (8, 256, 128, 3, True), (10, 512, 256, 3, True), (12, 1024, 512, 3, True), (13, 256, 1024, 1, True),
              (14, 512, 256, 3, True), (15, 255, 512, 1, False), (18, 128, 256, 1, True), (21, 256, 384, 3, True),
              (22, 255, 256, 1, False)]

# A small cfg: conv with BN, maxpool, conv without BN (bias) -> exercises both layouts.
SMALL_CFG = """[net]
width=32
height=32
channels=3

[convolutional]
batch_normalize=1
filters=4
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
filters=12
size=1
stride=1
pad=1
activation=linear

[yolo]
mask=0,1
anchors=4,5, 8,9
classes=1
num=2
"""
SMALL_CONVS = [(0, 4, 3, 3, True), (2, 12, 4, 1, False)]


def write_weights(path, convs, header=(0, 2, 0), seen=0, seed=0, extra_floats=0, drop_floats=0):
    """Independent writer: returns {key: (offset, shape)} of every array, offsets in floats."""
    rng = np.random.default_rng(seed)
    layout, offset = {}, 0
    for index, filters, channels, size, bn in convs:
        names = ["bn.bias", "bn.weight", "bn.running_mean", "bn.running_var"] if bn else ["conv.bias"]
        for name in names:
            layout[f"layers.{index}.{name}"] = (offset, (filters,))
            offset += filters
        layout[f"layers.{index}.conv.weight"] = (offset, (filters, channels, size, size))
        offset += filters * channels * size * size
    floats = rng.standard_normal(offset + extra_floats - drop_floats).astype("<f4")
    major, minor, revision = header
    seen_bytes = struct.pack("<q" if major * 10 + minor >= 2 else "<i", seen)
    with open(path, "wb") as f:
        f.write(struct.pack("<3i", major, minor, revision) + seen_bytes)
        f.write(floats.tobytes())
    return layout, floats


def assert_slices(tensors, layout, floats):
    assert set(tensors) == set(layout)
    for key, (offset, shape) in layout.items():
        count = int(np.prod(shape))
        np.testing.assert_array_equal(tensors[key].numpy(), floats[offset: offset + count].reshape(shape), err_msg=key)


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny") / "yolov3-tiny.weights"
    layout, floats = write_weights(path, TINY_CONVS, header=(0, 2, 0), seen=5_000_000_123)
    return path, layout, floats


def test_tiny_full_size_pt_round_trip(tiny_file, tmp_path):
    path, layout, floats = tiny_file
    assert path.stat().st_size == 35_434_956  # the published yolov3-tiny.weights size
    report = convert_weights(path, out=tmp_path / "tiny.pt")
    assert report.cfg == "yolov3-tiny" and report.cfg_auto and report.header == (0, 2, 0)
    assert report.seen == 5_000_000_123 and report.floats == floats.size
    payload = torch.load(tmp_path / "tiny.pt", weights_only=True)
    assert payload["format"] == "vocli-darknet-1" and payload["header"] == [0, 2, 0]
    assert payload["seen"] == 5_000_000_123 and "[yolo]" in payload["cfg"]
    assert_slices(payload["state_dict"], layout, floats)
    Darknet("yolov3-tiny").load_state_dict(payload["state_dict"])  # strict: every key present
    export_weights(tmp_path / "tiny.pt", tmp_path / "back.weights")
    assert filecmp.cmp(path, tmp_path / "back.weights", shallow=False)


def test_version_01_header_int32_seen_and_h5_round_trip(tmp_path):
    cfg = tmp_path / "small.cfg"
    cfg.write_text(SMALL_CFG)
    path = tmp_path / "small.weights"
    layout, floats = write_weights(path, SMALL_CONVS, header=(0, 1, 0), seen=777, seed=1)
    assert path.stat().st_size == 16 + 4 * floats.size
    report = convert_weights(path, cfg=cfg, out=tmp_path / "small.h5")
    assert report.header == (0, 1, 0) and report.seen == 777
    import h5py

    with h5py.File(tmp_path / "small.h5", "r") as f:
        assert_slices({k: torch.from_numpy(f["state_dict"][k][()]) for k in f["state_dict"]}, layout, floats)
        assert list(f.attrs["header"]) == [0, 1, 0] and f.attrs["seen"] == 777
    export_weights(tmp_path / "small.h5", tmp_path / "back.weights")
    assert filecmp.cmp(path, tmp_path / "back.weights", shallow=False)


def test_truncated_by_one_float_names_the_layer(tiny_file, tmp_path):
    path = tmp_path / "cut.weights"
    path.write_bytes(tiny_file[0].read_bytes()[:-4])
    out = tmp_path / "cut.pt"
    with pytest.raises(DarknetFormatError, match=r"data runs out in layer 22 .*: 1 floats missing"):
        convert_weights(path, cfg="yolov3-tiny", out=out)
    assert not out.exists() and list(tmp_path.iterdir()) == [path]
    with pytest.raises(DarknetFormatError, match="fit no shipped cfg.*yolov3-tiny: 35,434,956 bytes"):
        convert_weights(path, out=out)  # no cfg: says which sizes were expected


def test_one_float_extra_is_an_error_unless_allowed(tmp_path):
    cfg = tmp_path / "small.cfg"
    cfg.write_text(SMALL_CFG)
    path = tmp_path / "extra.weights"
    layout, floats = write_weights(path, SMALL_CONVS, extra_floats=1, seed=2)
    with pytest.raises(DarknetFormatError, match=r"4 bytes \(1 float\) left after the last layer"):
        convert_weights(path, cfg=cfg, out=tmp_path / "x.pt")
    report = convert_weights(path, cfg=cfg, out=tmp_path / "x.pt", allow_trailing=True)
    assert report.trailing_bytes == 4
    assert_slices(torch.load(tmp_path / "x.pt", weights_only=True)["state_dict"], layout, floats)
    export_weights(tmp_path / "x.pt", tmp_path / "back.weights")
    assert filecmp.cmp(path, tmp_path / "back.weights", shallow=False)
    # Whole numbers of floats, and the odd bytes beside them, never "554,400.00 floats".
    with open(path, "ab") as f:
        f.write(b"\0" * (4 * 138_599 + 2))
    with pytest.raises(DarknetFormatError, match=r"554,402 bytes \(138,600 floats and 2 bytes\) left after"):
        convert_weights(path, cfg=cfg, out=tmp_path / "y.pt")


def test_html_page_is_recognised(tmp_path):
    path = tmp_path / "yolov3.weights"
    path.write_text("<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head></html>\n")
    with pytest.raises(DarknetFormatError, match="looks like an HTML page, not Darknet weights.*re-download"):
        convert_weights(path)
    path.write_bytes(b"\xff\xff\xff\xff" * 8)
    with pytest.raises(DarknetFormatError, match="is not a Darknet header"):
        convert_weights(path)


def test_cfg_for_another_class_count_points_at_the_right_one(tiny_file, tmp_path):
    with pytest.raises(DarknetFormatError, match="left after the last layer.*fits shipped cfg yolov3-tiny"):
        convert_weights(tiny_file[0], cfg="yolov3-tiny-voc", out=tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()


def test_cutoff_from_conv_name_and_option(tmp_path):
    partial = [c for c in TINY_CONVS if c[0] < 15]
    path = tmp_path / "yolov3-tiny.conv.15"
    layout, floats = write_weights(path, partial, seed=3)
    report = convert_weights(path, out=tmp_path / "p.pt")
    assert report.cutoff == 15 and report.cfg == "yolov3-tiny"
    assert_slices(torch.load(tmp_path / "p.pt", weights_only=True)["state_dict"], layout, floats)
    export_weights(tmp_path / "p.pt", tmp_path / "back.conv.15")
    assert filecmp.cmp(path, tmp_path / "back.conv.15", shallow=False)
    renamed = tmp_path / "backbone.weights"
    renamed.write_bytes(path.read_bytes())
    weights = read_darknet_weights(renamed, "yolov3-tiny-voc", cutoff=15)  # same backbone, 20 classes
    assert_slices(weights.tensors, layout, floats)


def test_load_weights_into_voc_model_skips_the_heads(tiny_file):
    path, layout, floats = tiny_file
    model = Darknet("yolov3-tiny-voc")
    report = load_weights(model, path)
    assert sorted(k for k, _ in report.skipped) == ["layers.15.conv.bias", "layers.15.conv.weight",
                                                    "layers.22.conv.bias", "layers.22.conv.weight"]
    assert "255" in dict(report.skipped)["layers.15.conv.bias"]
    assert sorted(report.missing) == sorted(k for k, _ in report.skipped)
    offset, shape = layout["layers.13.bn.running_var"]
    np.testing.assert_array_equal(model.state_dict()["layers.13.bn.running_var"].numpy(),
                                  floats[offset: offset + shape[0]])
    with pytest.raises(DarknetFormatError, match="layers.15.conv"):
        load_weights(Darknet("yolov3-tiny-voc"), path, strict_shapes=True)


def test_train_checkpoint_exports(tmp_path):
    cfg_text = SMALL_CFG
    model = Darknet(parse_cfg(cfg_text))
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_()
    ckpt = tmp_path / "last.pt"
    # as `vocli train` writes it: the model's own cfg text at the top level, the cfg it started
    # from (a shipped name whose head does not fit the re-classed model) in config["cfg"]
    torch.save({"model": model.state_dict(), "config": {"cfg": "yolov3-tiny-voc"}, "cfg_text": cfg_text,
                "epoch": 3}, ckpt)
    report = export_weights(ckpt, tmp_path / "out.weights")
    assert report.header == (0, 2, 0) and report.bytes_out == 20 + 4 * (4 * 4 + 4 * 3 * 9 + 12 + 12 * 4)
    data = np.frombuffer((tmp_path / "out.weights").read_bytes()[20:], dtype="<f4")
    np.testing.assert_array_equal(data[:4], model.layers[0].bn.bias.detach().numpy())
    np.testing.assert_array_equal(data[-12 * 4:], model.layers[2].conv.weight.detach().numpy().ravel())
    fresh = Darknet(model.cfg)
    assert not load_weights(fresh, tmp_path / "out.weights").skipped
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), model.state_dict().values()))


def test_cli_json_and_errors(tiny_file, tmp_path, capsys):
    out = tmp_path / "tiny.pt"
    assert main(["convert-weights", str(tiny_file[0]), "-o", str(out), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["cfg"] == "yolov3-tiny" and doc["tensors"] == 59 and doc["bytes_in"] == 35_434_956
    assert main(["export-weights", str(out), "-o", str(tmp_path / "b.weights"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["bytes_out"] == 35_434_956
    assert main(["models", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["yolov3"]["weights_bytes"] == 248_007_048 and rows["yolov3-voc"]["classes"] == 20
    bad = tmp_path / "bad.weights"
    bad.write_text("<html>nope</html>")
    assert main(["convert-weights", str(bad)]) == 1
    captured = capsys.readouterr()
    assert "HTML" in captured.err and captured.out == ""


def test_detect_loads_a_weights_file_with_the_cfg_its_size_fits(tiny_file):
    from vocli.predict import load_model

    path, layout, floats = tiny_file
    loaded = load_model(path)  # no --cfg: yolov3-tiny by size, as convert-weights picks it
    assert loaded.cfg.name == "yolov3-tiny" and loaded.img_size is None
    assert_slices({k: v for k, v in loaded.model.state_dict().items() if k in layout}, layout, floats)


def test_models_export_a_shipped_cfg_and_say_where_each_is(tmp_path, capsys):
    from vocli.darknet.cfg import shipped_cfg_names

    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == shipped_cfg_names()
    for r in rows:
        assert Path(r["cfg_path"]).name == f"{r['name']}.cfg" and Path(r["cfg_path"]).is_file()
    mine = tmp_path / "my.cfg"
    assert main(["models", "--export", "yolov3-tiny-voc", str(mine)]) == 0
    tiny = next(r for r in rows if r["name"] == "yolov3-tiny-voc")
    assert mine.read_bytes() == Path(tiny["cfg_path"]).read_bytes()
    mine.write_text("mine")
    assert main(["models", "--export", "yolov3-tiny-voc", str(mine)]) == 1  # kept without --overwrite
    assert "exists" in capsys.readouterr().err and mine.read_text() == "mine"
    assert main(["models", "--export", "yolov3-tiny-voc", str(mine), "--overwrite"]) == 0
    assert mine.read_bytes() == Path(tiny["cfg_path"]).read_bytes()
    assert main(["models", "--export", "yolov9", str(tmp_path / "x.cfg")]) == 1
    assert "not a shipped cfg" in capsys.readouterr().err and not (tmp_path / "x.cfg").exists()


def test_darknet_header_rule_for_versions_from_1000():
    """darknet's parser.c: ``seen`` is 8 bytes when major*10+minor >= 2 and major < 1000 and minor < 1000."""
    from converters.darknet_weights import header_size

    table = {(0, 1): 16, (0, 2): 20, (1, 0): 20, (0, 999): 20, (999, 999): 20,
             (1000, 0): 16, (1000, 2): 16, (0, 1000): 16, (2, 1000): 16}
    assert {k: header_size(*k) for k in table} == table


@pytest.mark.parametrize("header", [(1000, 2, 0), (0, 1000, 5)])
def test_version_1000_files_have_an_int32_seen_and_round_trip(tmp_path, header):
    cfg = tmp_path / "small.cfg"
    cfg.write_text(SMALL_CFG)
    path = tmp_path / "v.weights"
    _, floats = write_weights(path, SMALL_CONVS)  # 20-byte header: replaced below by a 16-byte one
    path.write_bytes(struct.pack("<3ii", *header, 4242) + floats.tobytes())
    report = convert_weights(path, cfg=cfg, out=tmp_path / "v.pt")
    assert report.header == header and report.seen == 4242
    export_weights(tmp_path / "v.pt", tmp_path / "back.weights")
    assert (tmp_path / "back.weights").read_bytes() == path.read_bytes()


def test_gflops_by_hand_and_against_darknet():
    from vocli.darknet.model import model_summary, models

    # conv 0: 3x3, 3 -> 4 channels at 32x32: 2 * (4*3*9) * 1024 = 221,184
    # maxpool to 16x16; conv 2: 1x1, 4 -> 12 at 16x16: 2 * (12*4) * 256 = 24,576
    small = parse_cfg(SMALL_CFG)
    assert model_summary(small, 32)["gflops"] == pytest.approx(245_760 / 1e9, rel=1e-12)
    assert model_summary(small, 64)["gflops"] == pytest.approx(4 * 245_760 / 1e9, rel=1e-12)
    # darknet's own figures (its README table): yolov3-416 65.86, yolov3-tiny 5.56, yolov3-608 140.69 Bn
    rows = {m.name: m.gflops for m in models(416)}
    assert rows["yolov3"] == pytest.approx(65.86, abs=0.01) and rows["yolov3-tiny"] == pytest.approx(5.56, abs=0.01)
    assert {m.name: m.gflops for m in models(608)}["yolov3"] == pytest.approx(140.69, abs=0.01)


def test_models_cli_prints_the_gflops_column(capsys):
    assert main(["models", "--img-size", "608", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["yolov3"]["gflops"] == pytest.approx(140.69, abs=0.01)
    assert main(["models", "--img-size", "608"]) == 0
    table = capsys.readouterr().err
    assert "GFLOPs at 608x608" in table and "140.69" in table

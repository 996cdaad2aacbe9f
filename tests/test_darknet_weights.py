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
             (1000, 0): 16, (1000, 2): 16, (0, 1000): 16, (2, 1000): 16,
             # darknet's int arithmetic, also for a header a .pt carries that read_header would refuse:
             # -1 * 10 + 12 = 2 -> 20 bytes, -1 * 10 + 11 = 1 -> 16 bytes
             (-1, 12): 20, (-1, 11): 16}
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


# --------------------------------------------------------------------------- header, byte for byte

# SMALL_CFG by hand: conv 0 holds 4 BN vectors of 4 + 4*3*3*3 weights = 16 + 108 = 124 floats;
# conv 2 holds a bias of 12 + 12*4*1*1 weights = 60 floats; 184 floats = 736 bytes after the header.
SMALL_FLOATS = 184
SMALL_KEYS = ["layers.0.bn.bias", "layers.0.bn.weight", "layers.0.bn.running_mean", "layers.0.bn.running_var",
              "layers.0.conv.weight", "layers.2.conv.bias", "layers.2.conv.weight"]
# Every shipped cfg's full file size with a 20-byte header: yolov3 and yolov3-tiny are darknet's published
# sizes; a -voc head has 75 instead of 255 filters (180 fewer per output channel and bias: yolov3 has
# 1024 + 512 + 256 + 3 of them = 323,100 floats, tiny 512 + 256 + 2 = 138,600); spp adds one 1x1 conv of
# 512 filters on 2048 inputs with batch norm = 1,048,576 + 2,048 floats = 4,202,496 bytes.
SHIPPED_SIZES = ("yolov3: 248,007,048 bytes; yolov3-tiny: 35,434,956 bytes; yolov3-spp: 252,209,544 bytes; "
                 "yolov3-voc: 246,714,648 bytes; yolov3-tiny-voc: 34,880,556 bytes; yolov3-spp-voc: 250,917,144 bytes")
# The first layer only: yolov3's 32 filters 3x3 on 3 channels with BN = 864 + 128 = 992 floats (3,988 bytes),
# yolov3-tiny's 16 filters = 432 + 64 = 496 floats (2,004 bytes).
FIRST_LAYER_SIZES = ("yolov3: 3,988 bytes; yolov3-tiny: 2,004 bytes; yolov3-spp: 3,988 bytes; yolov3-voc: 3,988 bytes; "
                     "yolov3-tiny-voc: 2,004 bytes; yolov3-spp-voc: 3,988 bytes")


@pytest.fixture
def small_cfg(tmp_path):
    path = tmp_path / "small.cfg"
    path.write_text(SMALL_CFG)
    return path


def small_file(path, header=(0, 2, 0), seen=0, seed=0, extra=b"", floats=SMALL_FLOATS):
    """SMALL_CFG weights written by hand (the first ``floats`` floats, then ``extra``); returns the floats."""
    values = np.random.default_rng(seed).standard_normal(floats).astype("<f4")
    major, minor, _ = header
    seen_fmt = "<q" if major * 10 + minor >= 2 and major < 1000 and minor < 1000 else "<i"
    path.write_bytes(struct.pack("<3i", *header) + struct.pack(seen_fmt, seen) + values.tobytes() + extra)
    return values


def message(excinfo) -> str:
    return str(excinfo.value)


def test_pack_header_bytes_by_hand():
    from converters.darknet_weights import pack_header

    # version 0.2: three int32 then an int64 seen (20 bytes); 0.1: an int32 seen (16 bytes)
    assert pack_header((0, 2, 0), 5) == bytes([0] * 4 + [2, 0, 0, 0] + [0] * 4 + [5] + [0] * 7)
    assert pack_header((0, 1, 7), 258) == bytes([0] * 4 + [1, 0, 0, 0] + [7, 0, 0, 0] + [2, 1, 0, 0])
    assert pack_header([1, 2, 3], -1) == bytes([1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0]) + b"\xff" * 8  # signed
    assert pack_header((0, 1, 0), -1) == bytes(4) + bytes([1, 0, 0, 0]) + bytes(4) + b"\xff" * 4
    assert pack_header((1000, 2, 0), 9) == struct.pack("<4i", 1000, 2, 0, 9)


def test_read_header_of_exact_size_files(tmp_path):
    from converters.darknet_weights import read_header

    path = tmp_path / "h.weights"
    path.write_bytes(struct.pack("<3ii", 0, 1, 0, 7))  # 16 bytes: a whole version-0.1 header, no data
    assert read_header(path) == ((0, 1, 0), 7, 16)
    path.write_bytes(struct.pack("<3iq", 0, 2, 5, 2 ** 40 + 3))  # 20 bytes: seen above 2**32 needs int64
    assert read_header(str(path)) == ((0, 2, 5), 2 ** 40 + 3, 20)
    path.write_bytes(struct.pack("<3i", 0, 2, 0) + b"\xff" * 8)  # seen is a signed int64: -1
    assert read_header(path) == ((0, 2, 0), -1, 20)
    path.write_bytes(struct.pack("<3i", 0, 1, 0) + b"\xff" * 4)  # and a signed int32 before 0.2: -1
    assert read_header(path) == ((0, 1, 0), -1, 16)
    path.write_bytes(struct.pack("<3ii", 2 ** 20 - 1, 0, 0, 4))  # the largest version accepted (16 bytes)
    assert read_header(path) == ((2 ** 20 - 1, 0, 0), 4, 16)


@pytest.mark.parametrize("values, text", [((2 ** 20, 0, 0), "1048576.0.0"), ((0, 2 ** 20, 0), "0.1048576.0"),
                                          ((0, 2, 2 ** 20), "0.2.1048576"), ((-1, 2, 0), "-1.2.0")])
def test_header_versions_out_of_range_are_refused(tmp_path, values, text):
    from converters.darknet_weights import read_header

    path = tmp_path / "v.weights"
    path.write_bytes(struct.pack("<3iq", *values, 0))
    with pytest.raises(DarknetFormatError) as e:
        read_header(path)
    assert message(e) == f"{path}: header version {text} is not a Darknet header (re-download it)"


def test_files_shorter_than_their_header(tmp_path):
    from converters.darknet_weights import read_header

    path = tmp_path / "short.weights"
    path.write_bytes(struct.pack("<3i", 0, 2, 0) + bytes(5))  # 17 bytes: version 0.2 needs 20
    with pytest.raises(DarknetFormatError) as e:
        read_header(path)
    assert message(e) == f"{path}: 17 bytes, shorter than its 20-byte header (re-download it)"
    path.write_bytes(bytes(15))
    with pytest.raises(DarknetFormatError) as e:
        read_header(path)
    assert message(e) == f"{path}: 15 bytes, shorter than a Darknet header (16-20 bytes) (re-download it)"


# --------------------------------------------------------------------------- sizes and their messages


def test_floats_in_counts_whole_floats_and_odd_bytes():
    from converters.darknet_weights import _floats_in

    assert [_floats_in(n) for n in (0, 3, 4, 5, 6, 8, 9, 4 * 1234 + 2)] == [
        "0 floats", "0 floats and 3 bytes", "1 float", "1 float and 1 byte", "1 float and 2 bytes", "2 floats",
        "2 floats and 1 byte", "1,234 floats and 2 bytes"]


def test_shipped_cfgs_matched_by_float_count():
    from converters.darknet_weights import match_shipped_cfgs

    assert match_shipped_cfgs(992, 1) == ["yolov3", "yolov3-spp", "yolov3-voc", "yolov3-spp-voc"]
    assert match_shipped_cfgs(496, 1) == ["yolov3-tiny", "yolov3-tiny-voc"]
    # 35,434,956 - 20 = 35,434,936 bytes = 8,858,734 floats; yolov3-tiny.cfg has 24 layers (0-23)
    assert match_shipped_cfgs(8_858_734) == ["yolov3-tiny"]
    assert match_shipped_cfgs(8_858_734, 24) == ["yolov3-tiny"]
    assert match_shipped_cfgs(8_858_734, 0) == [] and match_shipped_cfgs(496, 0) == []
    assert match_shipped_cfgs(8_858_734, 25) == []  # past tiny's last layer; yolov3's first 25 hold fewer
    assert match_shipped_cfgs(497, 1) == []


def test_no_shipped_cfg_fits_lists_every_expected_size(tmp_path):
    path = tmp_path / "small.weights"
    small_file(path)
    with pytest.raises(DarknetFormatError) as e:
        convert_weights(path, out=tmp_path / "s.pt")
    assert message(e) == (f"{path}: 736 bytes after the 20-byte header fit no shipped cfg ({SHIPPED_SIZES}) "
                          "(pass --cfg with the cfg this file was trained with, or re-download it if it is truncated)")
    with pytest.raises(DarknetFormatError) as e:
        convert_weights(path, out=tmp_path / "s.pt", cutoff=1)
    assert message(e) == (f"{path}: 736 bytes after the 20-byte header fit no shipped cfg (first 1 layers of "
                          f"{FIRST_LAYER_SIZES}) (pass --cfg with the cfg this file was trained with, or re-download "
                          "it if it is truncated)")
    # A 16-byte header: sizes 4 bytes smaller. yolov3-tiny's first layer (496 floats) and 2 bytes more:
    # 1,986 bytes are no whole number of floats, so no cfg fits.
    old = tmp_path / "old.weights"
    old.write_bytes(struct.pack("<3ii", 0, 1, 0, 0) + bytes(4 * 496 + 2))
    with pytest.raises(DarknetFormatError) as e:
        convert_weights(old, out=tmp_path / "o.pt", cutoff=1)
    assert message(e).startswith(f"{old}: 1,986 bytes after the 16-byte header fit no shipped cfg (first 1 layers of "
                                 "yolov3: 3,984 bytes; yolov3-tiny: 2,000 bytes;")
    assert not list(tmp_path.glob("*.pt"))


def test_cfg_for_weights_by_size_by_name_and_by_cutoff(tmp_path, small_cfg):
    from converters.darknet_weights import cfg_for_weights

    first = tmp_path / "first.weights"  # yolov3-tiny's first layer: 496 floats
    first.write_bytes(struct.pack("<3iq", 0, 2, 0, 0) + bytes(4 * 496))
    cfg, auto = cfg_for_weights(first, cutoff=1)
    assert (cfg.name, auto) == ("yolov3-tiny", True)  # the first of the two that fit
    conv = tmp_path / "tiny.conv.1"
    conv.write_bytes(first.read_bytes())
    cfg, auto = cfg_for_weights(conv)  # the cutoff from a .conv.N name
    assert (cfg.name, auto) == ("yolov3-tiny", True)
    cfg, auto = cfg_for_weights(first, cfg=small_cfg)  # a given cfg is taken as it is
    assert (cfg.name, cfg.source, auto) == ("small", str(small_cfg), False)
    with pytest.raises(DarknetFormatError, match=r"1,984 bytes after the 20-byte header fit no shipped cfg \(yolov3"):
        cfg_for_weights(first)


def test_short_file_names_the_layer_where_data_runs_out(tmp_path, small_cfg):
    path = tmp_path / "cut.weights"
    small_file(path, floats=124)  # conv 0 complete, conv 2 missing entirely
    with pytest.raises(DarknetFormatError) as e:
        read_darknet_weights(path, small_cfg)
    assert message(e) == (
        f"{path}: data runs out in layer 2 ([convolutional], 12 filters, 1x1): 60 floats missing; the file has "
        f"124 floats after its 20-byte header, {small_cfg} needs 184 (the download is incomplete or the cfg is "
        "wrong: re-download, or pass the cfg it was trained with)")
    small_file(path, header=(0, 1, 0), floats=100, extra=b"\1\2")  # 402 bytes: 100 floats and 2 bytes
    with pytest.raises(DarknetFormatError) as e:
        read_darknet_weights(path, small_cfg, cutoff=3)
    assert message(e) == (
        f"{path}: data runs out in layer 0 ([convolutional], 4 filters, 3x3): 84 floats missing; the file has "
        f"100 floats after its 16-byte header, {small_cfg} (first 3 layers) needs 184 (the download is incomplete "
        "or the cfg is wrong: re-download, or pass the cfg it was trained with)")


def test_short_file_that_fits_another_shipped_cfg_says_which(tmp_path):
    path = tmp_path / "first.weights"
    path.write_bytes(struct.pack("<3iq", 0, 2, 0, 0) + bytes(4 * 496))  # yolov3-tiny's first layer
    with pytest.raises(DarknetFormatError) as e:
        read_darknet_weights(path, "yolov3-voc", cutoff=1)
    assert message(e) == (
        f"{path}: data runs out in layer 0 ([convolutional], 32 filters, 3x3): 496 floats missing; the file has "
        "496 floats after its 20-byte header, yolov3-voc.cfg (first 1 layers) needs 992 "
        "(the file size fits shipped cfg yolov3-tiny (80 classes): pass --cfg yolov3-tiny)")
    with open(path, "ab") as f:  # 2 more bytes: no whole number of floats fits any cfg
        f.write(b"\0\0")
    with pytest.raises(DarknetFormatError) as e:
        read_darknet_weights(path, "yolov3-voc", cutoff=1)
    assert message(e).endswith("needs 992 (the download is incomplete or the cfg is wrong: re-download, or pass the "
                               "cfg it was trained with)")


def test_bytes_left_after_the_last_layer(tmp_path, small_cfg):
    path = tmp_path / "extra.weights"
    small_file(path, extra=b"\0\0")  # 2 bytes more than the cfg needs: no whole float
    with pytest.raises(DarknetFormatError) as e:
        read_darknet_weights(path, small_cfg)
    assert message(e) == (f"{path}: 2 bytes (0 floats and 2 bytes) left after the last layer of {small_cfg}, which "
                          "needs 184 floats (wrong cfg? pass the right --cfg, or --allow-trailing to keep the extra bytes)")
    with pytest.raises(DarknetFormatError) as e:
        read_darknet_weights(path, small_cfg, cutoff=1)  # conv 0 only: 124 floats; 60 floats and 2 bytes left
    assert message(e).startswith(f"{path}: 242 bytes (60 floats and 2 bytes) left after the last layer of "
                                 f"{small_cfg} (first 1 layers), which needs 124 floats (wrong cfg?")
    weights = read_darknet_weights(path, small_cfg, allow_trailing=True)
    assert weights.trailing == b"\0\0"


def test_tiny_file_with_the_voc_cfg_points_at_yolov3_tiny(tiny_file, tmp_path):
    with pytest.raises(DarknetFormatError) as e:
        read_darknet_weights(tiny_file[0], "yolov3-tiny-voc")
    # 8,858,734 floats in the file; the voc head needs 138,600 fewer: 8,720,134
    assert message(e) == (f"{tiny_file[0]}: 554,400 bytes (138,600 floats) left after the last layer of "
                          "yolov3-tiny-voc.cfg, which needs 8,720,134 floats (the file size fits shipped cfg "
                          "yolov3-tiny (80 classes): pass --cfg yolov3-tiny)")


@pytest.mark.parametrize("cutoff", [0, 5, -1])
def test_cutoff_outside_the_layers_is_refused(tmp_path, small_cfg, cutoff):
    from converters.darknet_weights import write_darknet_weights

    path = tmp_path / "s.weights"
    small_file(path)
    with pytest.raises(DarknetFormatError) as e:
        read_darknet_weights(path, small_cfg, cutoff=cutoff)
    assert message(e) == f"cutoff {cutoff} is outside 1..4 (layers of {small_cfg})"  # conv, maxpool, conv, yolo
    with pytest.raises(DarknetFormatError) as e:
        write_darknet_weights(tmp_path / "w.weights", small_cfg, {}, cutoff=cutoff)
    assert message(e) == f"cutoff {cutoff} is outside 1..4 (layers of {small_cfg})"
    assert not (tmp_path / "w.weights").exists()


# --------------------------------------------------------------------------- read / write


def test_read_gives_file_order_tensors_header_seen_and_progress(tmp_path, small_cfg):
    path = tmp_path / "s.weights"
    floats = small_file(path, header=(0, 2, 3), seen=2 ** 33 + 1, seed=4)
    calls = []
    weights = read_darknet_weights(path, small_cfg, progress=calls.append)
    assert list(weights.tensors) == SMALL_KEYS  # darknet's order: BN bias, scale, mean, var, then weights
    assert weights.header == (0, 2, 3) and weights.seen == 2 ** 33 + 1
    assert weights.cfg.source == str(small_cfg) and weights.cutoff is None and weights.trailing is None
    assert calls == [4 * 124, 4 * 60]  # bytes per convolution; maxpool and yolo hold none
    starts = {"layers.0.bn.bias": 0, "layers.0.bn.weight": 4, "layers.0.bn.running_mean": 8,
              "layers.0.bn.running_var": 12, "layers.0.conv.weight": 16, "layers.2.conv.bias": 124,
              "layers.2.conv.weight": 136}
    shapes = {"layers.0.conv.weight": (4, 3, 3, 3), "layers.2.conv.bias": (12,), "layers.2.conv.weight": (12, 4, 1, 1)}
    for key, start in starts.items():
        shape = shapes.get(key, (4,))
        tensor = weights.tensors[key]
        assert tensor.dtype == torch.float32 and tuple(tensor.shape) == shape
        np.testing.assert_array_equal(tensor.numpy(), floats[start: start + int(np.prod(shape))].reshape(shape))
    part = read_darknet_weights(path, small_cfg, cutoff=1, allow_trailing=True)  # conv 0, then 240 bytes kept
    assert list(part.tensors) == SMALL_KEYS[:5] and part.cutoff == 1
    assert part.trailing == floats[124:].tobytes()
    whole = read_darknet_weights(path, small_cfg, cutoff=4)  # every layer, given as a cutoff
    assert list(whole.tensors) == SMALL_KEYS and whole.cutoff == 4


def test_file_shortened_while_reading_is_named(tmp_path, small_cfg):
    import os

    path = tmp_path / "s.weights"
    small_file(path)

    def shorten(_nbytes):  # after conv 0 is read, the file loses its last float
        os.truncate(path, path.stat().st_size - 4)

    with pytest.raises(DarknetFormatError) as e:
        read_darknet_weights(path, small_cfg, progress=shorten)
    assert message(e) == f"{path}: ended while reading layers.2.conv.weight (re-download it)"


def test_write_bytes_by_hand(tmp_path, small_cfg):
    from converters.darknet_weights import write_darknet_weights

    src = tmp_path / "src.weights"
    floats = small_file(src, seed=5)
    state = read_darknet_weights(src, small_cfg).tensors
    calls = []
    out = tmp_path / "out.weights"
    size = write_darknet_weights(out, small_cfg, state, progress=calls.append)  # header (0, 2, 0), seen 0
    assert size == 20 + 4 * 184 == out.stat().st_size and calls == [496, 240]
    assert out.read_bytes() == struct.pack("<3iq", 0, 2, 0, 0) + floats.tobytes()
    # float64 tensors are written as float32; any header, seen and trailing bytes
    doubles = {k: v.double() for k, v in state.items()}
    size = write_darknet_weights(out, small_cfg, doubles, header=(0, 1, 9), seen=77, trailing=b"\1\2\3")
    assert out.read_bytes() == struct.pack("<3ii", 0, 1, 9, 77) + floats.tobytes() + b"\1\2\3"
    assert size == 16 + 736 + 3
    size = write_darknet_weights(out, small_cfg, {k: state[k] for k in SMALL_KEYS[:5]}, cutoff=2)
    assert out.read_bytes() == struct.pack("<3iq", 0, 2, 0, 0) + floats[:124].tobytes() and size == 20 + 496


def test_write_refuses_missing_or_misshapen_tensors_before_creating_the_file(tmp_path, small_cfg):
    from converters.darknet_weights import write_darknet_weights

    src = tmp_path / "src.weights"
    small_file(src)
    state = dict(read_darknet_weights(src, small_cfg).tensors)
    out = tmp_path / "out.weights"
    missing = {k: v for k, v in state.items() if k != "layers.2.conv.bias"}
    with pytest.raises(DarknetFormatError) as e:
        write_darknet_weights(out, small_cfg, missing)
    assert message(e) == (f"state dict has no layers.2.conv.bias, which {small_cfg} needs "
                          "(pass the cfg the model was built from (--cfg))")
    state["layers.2.conv.weight"] = state["layers.2.conv.weight"].reshape(12, 4)
    with pytest.raises(DarknetFormatError) as e:
        write_darknet_weights(out, small_cfg, state)
    assert message(e) == (f"layers.2.conv.weight is (12, 4), {small_cfg} needs (12, 4, 1, 1) "
                          "(pass the cfg the model was built from (--cfg))")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.cfg", "src.weights"]


def test_read_refuses_trailing_bytes_by_default(tmp_path, small_cfg):
    path = tmp_path / "t.weights"
    small_file(path, extra=bytes(8))
    with pytest.raises(DarknetFormatError, match=r"8 bytes \(2 floats\) left after the last layer"):
        read_darknet_weights(path, small_cfg)


# --------------------------------------------------------------------------- convert: report, .pt and .h5 layouts


def test_convert_report_every_field(tmp_path, small_cfg):
    from converters.darknet_weights import ConvertReport

    src = tmp_path / "s.weights"
    small_file(src, header=(0, 2, 1), seen=123, extra=b"\7" * 6)
    out = tmp_path / "s.h5"
    calls = []
    report = convert_weights(src, cfg=small_cfg, out=out, allow_trailing=True, progress=calls.append)
    assert report == ConvertReport(src=src, out=out, format="h5", cfg="small", cfg_auto=False, num_classes=1,
                                   header=(0, 2, 1), seen=123, tensors=7, floats=184, cutoff=None, trailing_bytes=6,
                                   bytes_in=20 + 736 + 6, bytes_out=out.stat().st_size)
    assert calls == [496, 240]


def test_convert_default_output_name_beside_the_source(tmp_path, small_cfg):
    src = tmp_path / "small.weights"
    small_file(src)
    assert convert_weights(src, cfg=small_cfg).out == tmp_path / "small.pt"
    part = tmp_path / "small.conv.1"  # darknet's name for a partial file: the suffix is kept
    small_file(part, floats=124)
    report = convert_weights(part, cfg=small_cfg)
    assert report.out == tmp_path / "small.conv.1.pt" and report.cutoff == 1 and report.floats == 124
    bare = tmp_path / "weights"
    small_file(bare)
    assert convert_weights(bare, cfg=small_cfg).out == tmp_path / "weights.pt"


@pytest.mark.parametrize("suffix, kind", [(".pt", "pt"), (".pth", "pt"), (".PT", "pt"), (".h5", "h5"),
                                          (".hdf5", "h5"), (".H5", "h5")])
def test_convert_output_type_from_the_suffix(tmp_path, small_cfg, suffix, kind):
    src = tmp_path / "s.weights"
    small_file(src)
    out = tmp_path / f"out{suffix}"
    assert convert_weights(src, cfg=small_cfg, out=out).format == kind
    assert out.read_bytes()[:4] == (b"PK\x03\x04" if kind == "pt" else b"\x89HDF")


def test_convert_refuses_unknown_types_missing_sources_and_existing_outputs(tmp_path, small_cfg):
    from vocli.errors import OutputError

    src = tmp_path / "s.weights"
    small_file(src)
    with pytest.raises(DarknetFormatError) as e:
        convert_weights(src, cfg=small_cfg, out=tmp_path / "s.bin")
    assert message(e) == f"{tmp_path / 's.bin'}: unknown output type '.bin'; use .pt or .h5"
    with pytest.raises(DarknetFormatError) as e:
        convert_weights(tmp_path / "none.weights", cfg=small_cfg)
    assert message(e) == f"{tmp_path / 'none.weights'}: no such file (check the path, or `vocli fetch` it)"
    out = tmp_path / "s.pt"
    out.write_bytes(b"keep")
    with pytest.raises(OutputError, match="already exists"):
        convert_weights(src, cfg=small_cfg, out=out)
    assert out.read_bytes() == b"keep"
    assert convert_weights(src, cfg=small_cfg, out=out, overwrite=True).bytes_out == out.stat().st_size
    assert torch.load(out, weights_only=True)["format"] == "vocli-darknet-1"
    named_pt = tmp_path / "odd.pt"  # darknet weights under a .pt name: never written over
    named_pt.write_bytes(src.read_bytes())
    with pytest.raises(OutputError, match="is the input"):
        convert_weights(named_pt, cfg=small_cfg, out=named_pt, overwrite=True)
    assert named_pt.read_bytes() == src.read_bytes()


def test_convert_cutoff_option_beats_the_plain_name(tmp_path):
    src = tmp_path / "first.weights"
    src.write_bytes(struct.pack("<3iq", 0, 2, 0, 9) + bytes(4 * 496))  # yolov3-tiny's first layer only
    report = convert_weights(src, out=tmp_path / "f.pt", cutoff=1)
    assert (report.cfg, report.cfg_auto, report.cutoff, report.floats, report.tensors) == ("yolov3-tiny", True, 1, 496, 5)
    assert report.num_classes == 80 and report.seen == 9


def test_convert_cfg_without_yolo_layers_has_no_classes(tmp_path):
    cfg = tmp_path / "backbone.cfg"
    cfg.write_text(SMALL_CFG[: SMALL_CFG.index("[yolo]")])
    src = tmp_path / "b.weights"
    small_file(src)
    report = convert_weights(src, cfg=cfg, out=tmp_path / "b.pt")
    assert report.num_classes == 0 and report.cfg == "backbone" and report.floats == 184


def test_pt_payload_layout(tmp_path, small_cfg):
    src = tmp_path / "s.weights"
    small_file(src, header=(0, 2, 4), seen=31, extra=b"\x00\xff\x10")
    convert_weights(src, cfg=small_cfg, out=tmp_path / "s.pt", allow_trailing=True, cutoff=4)
    payload = torch.load(tmp_path / "s.pt", weights_only=True)
    assert sorted(payload) == ["cfg", "cfg_name", "cutoff", "format", "header", "seen", "state_dict", "trailing"]
    assert payload["format"] == "vocli-darknet-1" and payload["cfg"] == SMALL_CFG and payload["cfg_name"] == "small"
    assert payload["header"] == [0, 2, 4] and payload["seen"] == 31 and type(payload["seen"]) is int
    assert payload["cutoff"] == 4 and list(payload["state_dict"]) == SMALL_KEYS
    assert payload["trailing"].dtype == torch.uint8 and payload["trailing"].tolist() == [0, 255, 16]
    small_file(src)
    convert_weights(src, cfg=small_cfg, out=tmp_path / "plain.pt")
    plain = torch.load(tmp_path / "plain.pt", weights_only=True)
    assert plain["trailing"] is None and plain["cutoff"] is None


def test_h5_layout_attributes_and_datasets(tmp_path, small_cfg):
    import h5py

    from converters.darknet_weights import save_h5

    src = tmp_path / "s.weights"
    floats = small_file(src, header=(0, 2, 4), seen=2 ** 35, extra=b"\x00\xff\x10")
    convert_weights(src, cfg=small_cfg, out=tmp_path / "s.h5", allow_trailing=True)
    with h5py.File(tmp_path / "s.h5", "r") as f:
        assert set(f.attrs) == {"format", "cfg", "cfg_name", "header", "seen", "cutoff"}
        assert f.attrs["format"] == "vocli-darknet-1" and f.attrs["cfg"] == SMALL_CFG and f.attrs["cfg_name"] == "small"
        assert f.attrs["header"].dtype == np.int64 and f.attrs["header"].tolist() == [0, 2, 4]
        assert f.attrs["seen"] == 2 ** 35 and f.attrs["cutoff"] == -1  # -1: no cutoff
        assert sorted(f) == ["state_dict", "trailing"] and sorted(f["state_dict"]) == sorted(SMALL_KEYS)
        np.testing.assert_array_equal(f["state_dict"]["layers.2.conv.bias"][()], floats[124:136])
        assert f["state_dict"]["layers.2.conv.weight"].shape == (12, 4, 1, 1)
        assert f["trailing"].dtype == np.uint8 and f["trailing"][()].tolist() == [0, 255, 16]
    # a cfg without a name (parsed from text) and a cutoff; no trailing bytes, no dataset for them
    weights = read_darknet_weights(src, parse_cfg(SMALL_CFG), cutoff=1, allow_trailing=True)
    weights.trailing = None
    save_h5(tmp_path / "p.h5", weights)
    with h5py.File(tmp_path / "p.h5", "r") as f:
        assert f.attrs["cfg_name"] == "" and f.attrs["cutoff"] == 1 and "trailing" not in f
        assert sorted(f["state_dict"]) == sorted(SMALL_KEYS[:5])


# --------------------------------------------------------------------------- what .pt / .h5 / checkpoints carry


def test_from_dict_reads_a_converted_payload():
    from converters.darknet_weights import _from_dict, _Loaded

    sd = {"layers.0.conv.weight": torch.ones(2)}
    full = {"format": "vocli-darknet-1", "state_dict": sd, "cfg": "[net]\n", "cfg_name": "mine", "header": [1, 2, 3],
            "seen": 5, "cutoff": 2, "trailing": torch.tensor([1, 2, 255], dtype=torch.uint8), "img_size": 320}
    assert _from_dict(full, "x.pt") == _Loaded(sd, "[net]\n", "mine", (1, 2, 3), 5, 2, b"\x01\x02\xff", img_size=320)
    bare = {"format": "vocli-darknet-1", "state_dict": sd}  # the defaults: header 0.2.0, seen 0
    assert _from_dict(bare, "x.pt") == _Loaded(sd, None, None, (0, 2, 0), 0, None, None, None, None)


def test_from_dict_reads_a_train_checkpoint():
    from converters.darknet_weights import _from_dict, _Loaded

    w = torch.ones(2)
    cfg_text = "[net]\nwidth=64\n"
    ckpt = {"model": {"module.layers.0.conv.weight": w}, "cfg_text": cfg_text, "header": [0, 2, 5], "seen": 7,
            "config": {"cfg": "yolov3-tiny-voc", "classes": ["a", "b"], "img_size": 320}}
    assert _from_dict(ckpt, "last.pt") == _Loaded({"layers.0.conv.weight": w}, cfg_text, "yolov3-tiny-voc", (0, 2, 5),
                                                  7, names=("a", "b"), img_size=320)
    # the cfg text in config, the cfg reference itself a text, top-level classes first; seen None is 0
    ckpt = {"model": {"model.x": w}, "config": {"cfg_text": cfg_text, "cfg": "[net]\nother", "classes": ["z"]},
            "classes": ("p", "q"), "seen": None, "img_size": 416}
    assert _from_dict(ckpt, "c.pt") == _Loaded({"x": w}, cfg_text, None, (0, 2, 0), 0, names=("p", "q"), img_size=416)
    ckpt = {"model": {"x": w}, "config": {"cfg": "[net]\nother"}, "cfg_text": 5}  # only the reference is a cfg
    assert _from_dict(ckpt, "c.pt") == _Loaded({"x": w}, "[net]\nother", None, (0, 2, 0), 0)
    ckpt = {"model": {"x": w}, "config": "not a dict", "seen": 3, "header": []}  # an empty header: the default
    assert _from_dict(ckpt, "c.pt") == _Loaded({"x": w}, None, None, (0, 2, 0), 3)


@pytest.mark.parametrize("classes, names", [(["a"], ("a",)), ([], None), ("abc", None), ([1, 2], None),
                                            (["a", 2], None), (None, None)])
def test_class_names_only_from_a_list_of_strings(classes, names):
    from converters.darknet_weights import _from_dict

    assert _from_dict({"model": {}, "classes": classes}, "c.pt").names == names


@pytest.mark.parametrize("top, config, size", [(320, None, 320), (1, None, 1), (None, 416, 416), (0, 416, 416),
                                               (True, 416, 416), (-32, None, None), (True, None, None), ("320", None, None),
                                               (None, 0, None)])
def test_trained_size_only_from_a_positive_int(top, config, size):
    from converters.darknet_weights import _from_dict

    ckpt = {"model": {}, "img_size": top, "config": {"img_size": config}}
    assert _from_dict(ckpt, "c.pt").img_size == size
    assert _from_dict({"format": "vocli-darknet-1", "state_dict": {}, "img_size": top,
                       "config": {"img_size": config}}, "c.pt").img_size == size


def test_plain_state_dicts_lose_a_shared_prefix_only():
    from converters.darknet_weights import _from_dict

    a, b = torch.zeros(1), torch.ones(1)
    assert _from_dict({"module.model.x": a, "module.model.y": b}, "s").state_dict == {"x": a, "y": b}
    assert _from_dict({"module.x": a, "y": b}, "s").state_dict == {"module.x": a, "y": b}
    assert _from_dict({"model.x": a, "module.y": b}, "s").state_dict == {"model.x": a, "module.y": b}


@pytest.mark.parametrize("obj", [{}, {"a": 1}, {"w": torch.zeros(1), "n": 3}, [torch.zeros(1)], "text",
                                 {"format": "other", "state_dict": {}}])
def test_anything_else_is_not_a_weights_file(obj):
    from converters.darknet_weights import _from_dict

    with pytest.raises(DarknetFormatError) as e:
        _from_dict(obj, "src.pt")
    assert message(e) == ("src.pt: not a vocli weights file, train checkpoint or state dict "
                          "(convert Darknet weights with `vocli convert-weights` first)")


def test_load_payload_of_h5_files(tmp_path, small_cfg):
    import h5py

    from converters.darknet_weights import load_payload

    src = tmp_path / "s.weights"
    floats = small_file(src, header=(0, 2, 6), seen=99, extra=b"\x05\x06")
    convert_weights(src, cfg=small_cfg, out=tmp_path / "s.hdf5", allow_trailing=True)
    loaded = load_payload(tmp_path / "s.hdf5")
    assert (loaded.cfg_text, loaded.cfg_name, loaded.header, loaded.seen, loaded.cutoff, loaded.trailing) == (
        SMALL_CFG, "small", (0, 2, 6), 99, None, b"\x05\x06")
    assert sorted(loaded.state_dict) == sorted(SMALL_KEYS)
    np.testing.assert_array_equal(loaded.state_dict["layers.0.conv.weight"].numpy().ravel(), floats[16:124])
    weights = read_darknet_weights(src, parse_cfg(SMALL_CFG), cutoff=1, allow_trailing=True)  # no name, cutoff 1
    weights.trailing = None
    from converters.darknet_weights import save_h5

    save_h5(tmp_path / "p.H5", weights)
    loaded = load_payload(tmp_path / "p.H5")
    assert (loaded.cfg_name, loaded.cutoff, loaded.trailing) == (None, 1, None)
    with h5py.File(tmp_path / "p.H5", "r+") as f:
        f.attrs["format"] = "something-else"
    with pytest.raises(DarknetFormatError) as e:
        load_payload(tmp_path / "p.H5")
    assert message(e) == f"{tmp_path / 'p.H5'}: not a vocli Darknet HDF5 file (no format=vocli-darknet-1 attribute)"
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"\0" * 64)
    with pytest.raises(DarknetFormatError) as e:
        load_payload(bad)
    assert message(e) == f"{bad}: not a readable vocli Darknet HDF5 file: not an HDF5 file"
    with pytest.raises(DarknetFormatError) as e:
        load_payload(tmp_path / "none.pt")
    assert message(e) == f"{tmp_path / 'none.pt'}: no such file"


def test_load_payload_names_an_unreadable_pt_as_a_weights_file(tmp_path):
    from converters.darknet_weights import load_payload
    from vocli.errors import CheckpointError

    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x80\x02not a pickle at all")
    with pytest.raises(CheckpointError) as e:
        load_payload(bad)
    assert message(e).startswith(f"{bad}: holds objects other than tensors and plain values; refused "
                                 "(vocli loads weights files with weights_only=True and never runs pickled code)")
    other = tmp_path / "other.pt"  # a readable .pt that holds no weights
    torch.save({"epoch": 3}, other)
    with pytest.raises(DarknetFormatError) as e:
        load_payload(other)
    assert message(e) == (f"{other}: not a vocli weights file, train checkpoint or state dict "
                          "(convert Darknet weights with `vocli convert-weights` first)")


def test_an_h5_with_cutoff_0_is_refused_not_read_whole(tmp_path, small_cfg):
    import h5py

    src = tmp_path / "s.weights"
    small_file(src)
    convert_weights(src, cfg=small_cfg, out=tmp_path / "s.h5")
    with h5py.File(tmp_path / "s.h5", "r+") as f:
        f.attrs["cutoff"] = 0  # never written by vocli: cutoffs start at 1, -1 means none
    with pytest.raises(DarknetFormatError, match=r"cutoff 0 is outside 1\.\.4"):
        export_weights(tmp_path / "s.h5", tmp_path / "back.weights")


# --------------------------------------------------------------------------- export


def test_export_report_every_field_and_progress(tmp_path, small_cfg):
    from converters.darknet_weights import ExportReport

    src = tmp_path / "s.weights"
    floats = small_file(src, header=(0, 1, 2), seen=55)
    convert_weights(src, cfg=small_cfg, out=tmp_path / "s.pt")
    calls = []
    out = tmp_path / "back.weights"
    report = export_weights(tmp_path / "s.pt", out, progress=calls.append)
    assert report == ExportReport(src=tmp_path / "s.pt", out=out, cfg="small", header=(0, 1, 2), seen=55, floats=184,
                                  bytes_out=16 + 736)
    assert calls == [496, 240] and out.read_bytes() == src.read_bytes()
    assert floats.size == 184


def test_export_of_a_partial_file_counts_its_floats(tmp_path, small_cfg):
    src = tmp_path / "s.conv.1"
    small_file(src, floats=124)
    convert_weights(src, cfg=small_cfg, out=tmp_path / "p.pt")
    report = export_weights(tmp_path / "p.pt", tmp_path / "back.conv.1")
    assert report.floats == 124 and report.bytes_out == 20 + 496
    assert (tmp_path / "back.conv.1").read_bytes() == src.read_bytes()


def test_export_refuses_existing_outputs_and_its_own_input(tmp_path, small_cfg):
    from vocli.errors import OutputError

    src = tmp_path / "s.weights"
    small_file(src)
    convert_weights(src, cfg=small_cfg, out=tmp_path / "s.pt")
    out = tmp_path / "o.weights"
    out.write_bytes(b"keep")
    with pytest.raises(OutputError, match="already exists"):
        export_weights(tmp_path / "s.pt", out)
    assert out.read_bytes() == b"keep"
    assert export_weights(tmp_path / "s.pt", out, overwrite=True).bytes_out == 756
    assert out.read_bytes() == src.read_bytes()
    before = (tmp_path / "s.pt").read_bytes()
    with pytest.raises(OutputError, match="is the input"):
        export_weights(tmp_path / "s.pt", tmp_path / "s.pt", overwrite=True)
    assert (tmp_path / "s.pt").read_bytes() == before


def test_export_cfg_from_the_option_the_embedded_text_or_the_name(tmp_path, small_cfg):
    from converters.darknet_weights import FORMAT

    src = tmp_path / "s.weights"
    small_file(src)
    state = read_darknet_weights(src, small_cfg).tensors
    pt = tmp_path / "s.pt"
    # the embedded text wins over the name; the report names the cfg by its name
    torch.save({"format": FORMAT, "state_dict": state, "cfg": SMALL_CFG, "cfg_name": "yolov3"}, pt)
    assert export_weights(pt, tmp_path / "a.weights").cfg == "yolov3"
    assert (tmp_path / "a.weights").read_bytes() == src.read_bytes()
    # embedded text without a name: the report names its source
    torch.save({"format": FORMAT, "state_dict": state, "cfg": SMALL_CFG}, pt)
    assert export_weights(pt, tmp_path / "b.weights").cfg == f"{pt} (embedded cfg)"
    # the option wins over the embedded text
    torch.save({"format": FORMAT, "state_dict": state, "cfg": SMALL_CFG.replace("filters=4", "filters=8")}, pt)
    assert export_weights(pt, tmp_path / "c.weights", cfg=small_cfg).cfg == "small"
    with pytest.raises(DarknetFormatError) as e:  # the embedded cfg alone does not fit
        export_weights(pt, tmp_path / "d.weights")
    assert message(e) == (f"layers.0.bn.bias is (4,), {pt} (embedded cfg) needs (8,) "
                          "(pass the cfg the model was built from (--cfg))")
    # only a shipped name
    torch.save({"format": FORMAT, "state_dict": state, "cfg_name": "yolov3-tiny"}, pt)
    with pytest.raises(DarknetFormatError, match=r"layers.0.bn.bias is \(4,\), yolov3-tiny.cfg needs \(16,\)"):
        export_weights(pt, tmp_path / "e.weights")
    torch.save(state, pt)  # a bare state dict carries no cfg
    with pytest.raises(DarknetFormatError) as e:
        export_weights(pt, tmp_path / "f.weights")
    assert message(e) == f"{pt}: carries no cfg (pass --cfg NAME|PATH)"
    assert export_weights(pt, tmp_path / "f.weights", cfg=small_cfg).header == (0, 2, 0)
    assert (tmp_path / "f.weights").read_bytes() == src.read_bytes()


# --------------------------------------------------------------------------- into a model

# helpers.TWO_CLASS_CFG: conv 0 (8 filters 3x3 on 3 channels, BN) = 216 + 32 = 248 floats,
# conv 1 (21 filters 1x1 on 8, bias) = 168 + 21 = 189 floats: 437 in all.
TWO_KEYS = ["layers.0.bn.bias", "layers.0.bn.weight", "layers.0.bn.running_mean", "layers.0.bn.running_var",
            "layers.0.conv.weight", "layers.1.conv.bias", "layers.1.conv.weight"]


def two_class_model():
    from helpers import TWO_CLASS_CFG

    torch.manual_seed(0)
    return Darknet(parse_cfg(TWO_CLASS_CFG))


def test_load_weights_with_the_models_own_cfg(tmp_path):
    model = two_class_model()
    path = tmp_path / "two.weights"
    values = small_file(path, floats=437)
    report = load_weights(model, path)
    assert report.loaded == TWO_KEYS and report.skipped == [] and report.missing == []  # no num_batches_tracked
    np.testing.assert_array_equal(model.layers[1].conv.bias.detach().numpy(), values[248:269])
    np.testing.assert_array_equal(model.layers[0].bn.running_var.numpy(), values[24:32])


def test_load_weights_partial_by_name_and_by_size(tmp_path):
    for name in ("two.conv.1", "renamed.weights"):  # a .conv.N name, or the size of the first layers
        model = two_class_model()
        bias_before = model.layers[1].conv.bias.detach().clone()
        path = tmp_path / name
        values = small_file(path, floats=248, seed=1)
        report = load_weights(model, path)
        assert report.loaded == TWO_KEYS[:5] and report.skipped == []
        assert report.missing == ["layers.1.conv.weight", "layers.1.conv.bias"]  # model order
        np.testing.assert_array_equal(model.layers[0].bn.bias.detach().numpy(), values[:8])
        assert torch.equal(model.layers[1].conv.bias, bias_before)


def test_load_weights_refuses_sizes_nothing_fits(tmp_path):
    model = two_class_model()
    path = tmp_path / "odd.weights"
    small_file(path, floats=248, extra=b"\0\0")  # the first layer and 2 bytes
    with pytest.raises(DarknetFormatError) as e:
        load_weights(model, path)
    assert message(e) == (f"{path}: 994 bytes after the header fit neither the model's cfg (1,748 bytes) nor a shipped "
                          f"cfg ({SHIPPED_SIZES}) (convert it with `vocli convert-weights --cfg ...` first)")
    part = tmp_path / "tiny.conv.1"  # yolov3-tiny's first layer and 2 bytes, with a cutoff in the name
    small_file(part, floats=496, extra=b"\0\0")
    with pytest.raises(DarknetFormatError) as e:
        load_weights(model, part)
    assert message(e) == (f"{part}: 1,986 bytes after the header fit neither the model's cfg (992 bytes) nor a shipped "
                          f"cfg ({FIRST_LAYER_SIZES}) (convert it with `vocli convert-weights --cfg ...` first)")


def test_load_weights_takes_a_shipped_cfg_that_fits(tmp_path):
    model = Darknet("yolov3-tiny-voc")
    part = tmp_path / "tiny.conv.1"  # yolov3-tiny's first layer: the same in the voc model
    values = small_file(part, floats=496, seed=2)
    report = load_weights(model, part)
    assert report.loaded == ["layers.0.bn.bias", "layers.0.bn.weight", "layers.0.bn.running_mean",
                             "layers.0.bn.running_var", "layers.0.conv.weight"]
    np.testing.assert_array_equal(model.layers[0].conv.weight.detach().numpy().ravel(), values[64:])


def test_load_weights_from_a_dict_and_every_converted_suffix(tmp_path):
    model = two_class_model()
    w = torch.arange(21.0)
    report = load_weights(model, {"layers.1.conv.bias": w, "foo.bar": torch.zeros(1),
                                  "layers.0.bn.bias": torch.zeros(3)})
    assert report.loaded == ["layers.1.conv.bias"]
    assert report.skipped == [("foo.bar", "not in model"), ("layers.0.bn.bias", "shape (3,) != model (8,)")]
    assert report.missing == [k for k in model.state_dict() if k not in ("layers.1.conv.bias",
                                                                          "layers.0.bn.num_batches_tracked")]
    assert torch.equal(model.layers[1].conv.bias.detach(), w)
    with pytest.raises(DarknetFormatError) as e:
        load_weights(model, {"layers.0.bn.bias": torch.zeros(3)}, strict_shapes=True)
    assert message(e) == "layers.0.bn.bias: shape (3,) != model (8,)"
    with pytest.raises(DarknetFormatError, match=r"^<state dict>: not a vocli weights file"):
        load_weights(model, {"a": 1})
    state = {k: torch.full_like(v, 2.0) for k, v in model.state_dict().items()}
    for suffix in (".pt", ".pth", ".ckpt", ".PT"):
        torch.save(state, tmp_path / f"m{suffix}")
        fresh = two_class_model()
        assert load_weights(fresh, tmp_path / f"m{suffix}").missing == []
        assert torch.equal(fresh.layers[1].conv.weight.detach(), state["layers.1.conv.weight"])
    from helpers import TWO_CLASS_CFG

    cfg = tmp_path / "two.cfg"
    cfg.write_text(TWO_CLASS_CFG)
    src = tmp_path / "two.weights"
    values = small_file(src, floats=437, seed=3)
    for suffix in (".h5", ".hdf5"):
        convert_weights(src, cfg=cfg, out=tmp_path / f"two{suffix}")
        fresh = two_class_model()
        assert sorted(load_weights(fresh, tmp_path / f"two{suffix}").loaded) == sorted(TWO_KEYS)  # h5: sorted keys
        np.testing.assert_array_equal(fresh.layers[1].conv.weight.detach().numpy().ravel(), values[269:])
    with pytest.raises(DarknetFormatError) as e:
        load_weights(model, tmp_path / "none.weights")
    assert message(e) == f"{tmp_path / 'none.weights'}: no such weights file (check the path, or `vocli fetch` it)"


def test_load_weights_reads_a_partial_file_with_the_shipped_cfg_it_fits(tmp_path):
    model = two_class_model()  # its first layer holds 248 floats: the file's 496 are yolov3-tiny's first layer
    part = tmp_path / "tiny.conv.1"
    small_file(part, floats=496)
    report = load_weights(model, part)
    assert report.loaded == []
    assert report.skipped == [("layers.0.bn.bias", "shape (16,) != model (8,)"),
                              ("layers.0.bn.weight", "shape (16,) != model (8,)"),
                              ("layers.0.bn.running_mean", "shape (16,) != model (8,)"),
                              ("layers.0.bn.running_var", "shape (16,) != model (8,)"),
                              ("layers.0.conv.weight", "shape (16, 3, 3, 3) != model (8, 3, 3, 3)")]

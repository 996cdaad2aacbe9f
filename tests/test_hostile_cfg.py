"""Hostile Darknet cfgs: every bad value is one line naming the file, the line, the section and the key;
nothing is allocated for absurd sizes; the inputs are untouched and no run folder is made."""

from __future__ import annotations

import pytest

from hostile_common import error_line, training_set, tree_state
from vocli.cli.app import main
from vocli.darknet.cfg import MAX_LAYER_OUTPUT, MAX_WEIGHTS, parse_cfg
from vocli.errors import DarknetFormatError

# Line numbers matter: the messages name them.
GOOD = """[net]
width=64
height=64
channels=3

[convolutional]
batch_normalize=1
filters=8
size=3
stride=2
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
size=1
stride=1
pad=1
filters=27
activation=linear

[yolo]
mask=0,1,2
anchors=6,8, 12,10, 14,22
classes=4
num=3
"""
LINE = {key: number for number, key in enumerate((line.split("=")[0] for line in GOOD.splitlines()), start=1)}


def with_option(section_line: int, key: str, value: str) -> str:
    """GOOD with ``key=value`` set in the section whose header is on ``section_line`` (replaced or added)."""
    lines = GOOD.splitlines()
    end = next((i for i in range(section_line, len(lines)) if lines[i].startswith("[")), len(lines))
    for i in range(section_line, end):
        if lines[i].split("=")[0] == key:
            lines[i] = f"{key}={value}"
            return "\n".join(lines) + "\n"
    lines.insert(section_line, f"{key}={value}")
    return "\n".join(lines) + "\n"


CONV, POOL, HEAD, YOLO = 6, 14, 18, 25  # header lines of the sections in GOOD


def test_good_cfg_parses():
    cfg = parse_cfg(GOOD, source="good.cfg")
    # 8 * 3 * 3 * 3 + 4 * 8 (BN) = 248; 27 * 8 * 1 * 1 + 27 (bias) = 243
    assert cfg.weight_count() == 248 + 243


@pytest.mark.parametrize("section, key, value, line, message", [
    # the three: a ZeroDivisionError, a ValueError, an 18 TB allocation
    (POOL, "stride", "0", POOL + 2, "[maxpool] stride: 0 is out of range; must be 1 to 64"),
    (YOLO, "anchors", "ten", YOLO + 2, "[yolo] anchors: expected comma-separated numbers, got 'ten'"),
    (CONV, "filters", "1000000000", CONV + 2, "[convolutional] filters: 1000000000 is out of range; must be 1 to 16,384"),
    # and their kin
    (CONV, "stride", "0", CONV + 4, "[convolutional] stride: 0 is out of range"),
    (CONV, "size", "99999999999999999999", CONV + 3, "[convolutional] size: 99999999999999999999 is out of range"),
    (POOL, "size", "0", POOL + 1, "[maxpool] size: 0 is out of range"),
    (YOLO, "anchors", "inf,8, 12,10, 14,22", YOLO + 2, "[yolo] anchors: expected comma-separated numbers"),
    (YOLO, "anchors", "-6,8, 12,10, 14,22", YOLO + 2, "[yolo] anchors: sizes must be positive, got -6"),
    (YOLO, "mask", "inf", YOLO + 1, "[yolo] mask: expected comma-separated integers, got 'inf'"),
    (YOLO, "classes", "0", YOLO + 3, "[yolo] classes: 0 is out of range"),
    (1, "width", "0", 2, "[net] width: 0 is out of range; must be 1 to 16,384"),
    (1, "channels", "nan", 4, "[net] channels: expected an integer, got 'nan'"),
])
def test_bad_values_name_file_line_section_and_key(section, key, value, line, message):
    with pytest.raises(DarknetFormatError) as info:
        parse_cfg(with_option(section, key, value), source="bad.cfg")
    assert str(info.value).startswith(f"bad.cfg:{line}: {message}")
    assert "\n" not in str(info.value)


def test_route_without_layers_and_with_inf():
    text = GOOD.replace("[convolutional]\nsize=1", "[route]\nlayers=\n\n[convolutional]\nsize=1")
    with pytest.raises(DarknetFormatError, match=r"^bad.cfg:19: \[route\] layers: no layer given"):
        parse_cfg(text, source="bad.cfg")
    with pytest.raises(DarknetFormatError, match=r"^bad.cfg:19: \[route\] layers: expected comma-separated integers"):
        parse_cfg(text.replace("layers=\n", "layers=inf\n"), source="bad.cfg")


def test_total_weights_cap():
    # Each filter count is allowed (<= 16,384), together they are not: a 16384 -> 16384 3x3
    # convolution holds 16384 * 16384 * 9 = 2,415,919,104 weights, over 2^28 = 268,435,456.
    text = GOOD.replace("filters=8\n", "filters=16384\n").replace("[maxpool]", "[convolutional]\nfilters=16384\n"
                                                                  "size=3\npad=1\nactivation=leaky\n\n[maxpool]")
    with pytest.raises(DarknetFormatError, match=r"^bad.cfg: the network would hold 2,416,\d{3},\d{3} weights .* "
                                                 r"over the limit of 268,435,456"):
        parse_cfg(text, source="bad.cfg")
    assert MAX_WEIGHTS == 268_435_456


def test_layer_output_cap():
    # 16384 filters on a 16384 x 16384 input (stride 2 -> 8192 x 8192): 2^14 * 2^26 = 2^40 values
    text = GOOD.replace("width=64", "width=16384").replace("height=64", "height=16384").replace(
        "filters=8\n", "filters=16384\n")
    with pytest.raises(DarknetFormatError, match=r"^bad.cfg:6: \[convolutional\] layer 0 output would be "
                                                 r"16384x8192x8192 = 1,099,511,627,776 values"):
        parse_cfg(text, source="bad.cfg")
    assert MAX_LAYER_OUTPUT == 2 ** 28


@pytest.mark.parametrize("section, key, value, message", [
    (POOL, "stride", "0", "[maxpool] stride: 0 is out of range"),
    (YOLO, "anchors", "ten", "[yolo] anchors: expected comma-separated numbers"),
    (CONV, "filters", "1000000000", "[convolutional] filters: 1000000000 is out of range"),
])
def test_cli_train_with_a_bad_cfg_is_one_line(tmp_path, capsys, section, key, value, message):
    data = training_set(tmp_path / "set", "2.png", b"")
    cfg = tmp_path / "set" / "bad.cfg"
    cfg.write_text(with_option(section, key, value))
    before = tree_state(tmp_path)
    rc = main(["train", "--data", str(data), "--cfg", str(cfg), "--img-size", "64", "--epochs", "1",
               "--workers", "0", "--out", str(tmp_path / "run")])
    line = error_line(capsys.readouterr().err)
    assert rc == 1 and line.startswith(f"error: {cfg}:") and message in line
    assert tree_state(tmp_path) == before  # not even the run folder

"""Darknet cfg parser: shipped architectures (published float counts), rewriting, errors."""

import pytest

from vocli.darknet.cfg import load_cfg, parse_cfg, shipped_cfg_names
from vocli.errors import DarknetFormatError

# Published facts: yolov3.weights is 248,007,048 bytes, yolov3-tiny.weights 35,434,956,
# darknet53.conv.74 162,482,580; each has a 20-byte header (3 x int32 + int64 seen).
PUBLISHED = {
    "yolov3": (107, 75, 62_001_757, 248_007_048),
    "yolov3-tiny": (24, 13, 8_858_734, 35_434_956),
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_shipped_cfg_matches_published_weight_files(name):
    layers, convs, floats, size = PUBLISHED[name]
    cfg = load_cfg(name)
    specs = cfg.layer_specs()
    assert len(specs) == layers
    assert sum(s.kind == "convolutional" for s in specs) == convs
    assert cfg.weight_count() == floats
    assert 20 + 4 * floats == size
    assert cfg.num_classes == 80


def test_darknet53_conv74_is_the_first_74_layers_of_yolov3():
    assert 20 + 4 * load_cfg("yolov3").weight_count(cutoff=74) == 162_482_580


def test_yolov3_tiny_float_count_by_hand():
    # conv: filters*in*k*k + 4*filters (BN) ; head convs: filters*in + filters (bias)
    convs = [(16, 3, 3), (32, 16, 3), (64, 32, 3), (128, 64, 3), (256, 128, 3), (512, 256, 3),
             (1024, 512, 3), (256, 1024, 1), (512, 256, 3), (128, 256, 1), (256, 384, 3)]
    total = sum(f * c * k * k + 4 * f for f, c, k in convs)
    total += 255 * 512 + 255 + 255 * 256 + 255
    assert load_cfg("yolov3-tiny").weight_count() == total


def test_shipped_names_and_voc_variants():
    names = shipped_cfg_names()
    assert {"yolov3", "yolov3-tiny", "yolov3-spp", "yolov3-voc", "yolov3-tiny-voc", "yolov3-spp-voc"} <= set(names)
    for name in ("yolov3-voc", "yolov3-tiny-voc", "yolov3-spp-voc"):
        cfg = load_cfg(name)
        assert cfg.num_classes == 20
        for yolo in cfg.yolo_layers:
            assert cfg.layers[yolo.index - 1].get_int("filters") == 75
    spp = load_cfg("yolov3-spp").layer_specs()
    assert len(spp) == 114
    assert [s.size for s in spp if s.kind == "maxpool"] == [5, 9, 13]
    assert spp[83].out_channels == 2048  # SPP concat of 4 x 512


def test_with_classes_rewrites_filters_and_matches_voc_cfg():
    voc = load_cfg("yolov3").with_classes(20)
    assert voc.num_classes == 20
    assert [s.out_channels for s in voc.layer_specs()] == [s.out_channels for s in load_cfg("yolov3-voc").layer_specs()]
    assert voc.weight_count() == load_cfg("yolov3-voc").weight_count()
    one = load_cfg("yolov3-tiny").with_classes(1)
    assert [one.layers[y.index - 1].get_int("filters") for y in one.yolo_layers] == [18, 18]


def test_with_anchors_rewrites_every_yolo_layer():
    anchors = [(5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)]
    cfg = load_cfg("yolov3-tiny").with_anchors(anchors)
    for yolo in cfg.yolo_layers:
        assert yolo.get_str("anchors").replace(" ", "") == "5,6,7,8,9,10,11,12,13,14,15,16"
    with pytest.raises(DarknetFormatError, match="6 anchors, got 2"):
        load_cfg("yolov3-tiny").with_anchors(anchors[:2])


NET = "[net]\nwidth=32\nheight=32\nchannels=3\n"


def test_error_names_file_line_and_key():
    text = NET + "[convolutional]\nfilters=abc\nsize=3\n"
    with pytest.raises(DarknetFormatError, match=r"my\.cfg:6: \[convolutional\] filters: expected an integer"):
        parse_cfg(text, source="my.cfg")


def test_unknown_section_and_bad_route():
    with pytest.raises(DarknetFormatError, match=r"x\.cfg:5: unsupported section \[lstm\]"):
        parse_cfg(NET + "[lstm]\n", source="x.cfg")
    with pytest.raises(DarknetFormatError, match=r"x\.cfg:8: \[route\] layers: layer -5 -> -4"):
        parse_cfg(NET + "[maxpool]\nsize=2\n[route]\nlayers=-5\n", source="x.cfg")


def test_yolo_filter_mismatch_is_reported():
    text = (NET + "[convolutional]\nfilters=30\nsize=1\nactivation=linear\n"
            "[yolo]\nmask=0,1,2\nanchors=1,2,3,4,5,6\nclasses=20\n")
    with pytest.raises(DarknetFormatError, match=r"x\.cfg:12: \[yolo\] classes: the layer before has 30 filters.*needs 75"):
        parse_cfg(text, source="x.cfg")


def test_inline_comments_and_route_groups():
    text = (NET + "[convolutional]\nfilters=8  # eight\nsize=1\nactivation=leaky\n"
            "[route]\nlayers=-1\ngroups=2\ngroup_id=1\n")
    specs = parse_cfg(text).layer_specs()
    assert specs[0].out_channels == 8 and specs[1].out_channels == 4 and specs[1].group_id == 1


def test_unknown_shipped_name_lists_choices(tmp_path):
    with pytest.raises(DarknetFormatError, match="shipped cfgs: yolov3"):
        load_cfg("yolov9")
    (tmp_path / "bin.cfg").write_bytes(b"\xff\xfe\x00\x01")
    with pytest.raises(DarknetFormatError, match="not a text file"):
        load_cfg(tmp_path / "bin.cfg")

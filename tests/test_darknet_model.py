"""Darknet model: output shapes, darknet numerics checked by hand, decoding and NMS."""

import math

import numpy as np
import pytest
import torch

from vocli.darknet.cfg import parse_cfg
from vocli.darknet.decode import decode_outputs, non_max_suppression
from vocli.darknet.model import Darknet, YoloHead


def _tiny_net(body: str, size: int = 4, channels: int = 1) -> Darknet:
    return Darknet(parse_cfg(f"[net]\nwidth={size}\nheight={size}\nchannels={channels}\n" + body))


@pytest.mark.parametrize("name,classes,backbone", [("yolov3-tiny", 80, 13), ("yolov3-tiny-voc", 20, 13)])
@pytest.mark.parametrize("size", [416, 320])
def test_tiny_head_shapes(name, classes, backbone, size):
    model = Darknet(name).eval()
    with torch.no_grad():
        outputs = model(torch.rand(2, 3, size, size))
    assert [tuple(o.shape) for o in outputs] == [(2, 3, size // 32, size // 32, 5 + classes),
                                                 (2, 3, size // 16, size // 16, 5 + classes)]
    assert [h.stride for h in model.heads] == [32, 16]
    assert model.num_classes == classes and model.backbone_layers == backbone
    assert model.heads[0].anchors.tolist() == [[81, 82], [135, 169], [344, 319]]


@pytest.mark.parametrize("name,classes", [("yolov3", 80), ("yolov3-voc", 20)])
def test_yolov3_head_shapes_320(name, classes):
    model = Darknet(name).eval()
    with torch.no_grad():
        outputs = model(torch.rand(1, 3, 320, 320))
    assert [tuple(o.shape) for o in outputs] == [(1, 3, 10, 10, 5 + classes), (1, 3, 20, 20, 5 + classes),
                                                 (1, 3, 40, 40, 5 + classes)]
    assert [h.stride for h in model.heads] == [32, 16, 8]
    assert [h.anchor_indices for h in model.heads] == [[6, 7, 8], [3, 4, 5], [0, 1, 2]]
    assert model.backbone_layers == 75
    assert model.count_parameters() == {"yolov3": 61_949_149, "yolov3-voc": 61_626_049}[name]


@pytest.mark.slow
def test_yolov3_head_shapes_416():
    model = Darknet("yolov3").eval()
    with torch.no_grad():
        outputs = model(torch.rand(1, 3, 416, 416))
    assert [tuple(o.shape) for o in outputs] == [(1, 3, 13, 13, 85), (1, 3, 26, 26, 85), (1, 3, 52, 52, 85)]


def test_state_dict_keys_follow_cfg_indices():
    keys = set(Darknet("yolov3-tiny").state_dict())
    assert {"layers.0.conv.weight", "layers.0.bn.weight", "layers.0.bn.bias", "layers.0.bn.running_mean",
            "layers.0.bn.running_var", "layers.15.conv.weight", "layers.15.conv.bias", "layers.22.conv.bias"} <= keys
    assert "layers.0.conv.bias" not in keys and not any(k.startswith("layers.1.") for k in keys)  # maxpool


def test_conv_bn_leaky_matches_numpy():
    model = _tiny_net("[convolutional]\nbatch_normalize=1\nfilters=2\nsize=1\nstride=1\npad=1\nactivation=leaky\n",
                      size=2, channels=2).eval()
    layer = model.layers[0]
    w = np.array([[1.5, -2.0], [0.5, 0.25]], dtype=np.float32)
    gamma, beta = np.array([2.0, 0.5], np.float32), np.array([-1.0, 0.1], np.float32)
    mean, var = np.array([0.3, -0.2], np.float32), np.array([4.0, 0.25], np.float32)
    with torch.no_grad():
        layer.conv.weight.copy_(torch.from_numpy(w).view(2, 2, 1, 1))
        layer.bn.weight.copy_(torch.from_numpy(gamma))
        layer.bn.bias.copy_(torch.from_numpy(beta))
        layer.bn.running_mean.copy_(torch.from_numpy(mean))
        layer.bn.running_var.copy_(torch.from_numpy(var))
    x = np.array([[[0.1, 0.9], [0.4, 0.0]], [[0.7, 0.2], [1.0, 0.5]]], dtype=np.float32)
    y = np.einsum("oc,chw->ohw", w, x)
    y = (y - mean[:, None, None]) / np.sqrt(var[:, None, None] + 1e-5) * gamma[:, None, None] + beta[:, None, None]
    y = np.where(y > 0, y, 0.1 * y)
    with torch.no_grad():
        got = layer(torch.from_numpy(x)[None])[0].numpy()
    np.testing.assert_allclose(got, y, rtol=1e-5, atol=1e-6)


def test_maxpool_stride1_keeps_size_and_ignores_padding():
    model = _tiny_net("[maxpool]\nsize=2\nstride=1\n", size=3)
    x = torch.tensor([[-5.0, -1.0, -7.0], [-3.0, -9.0, -2.0], [-4.0, -6.0, -8.0]])
    out = model.layers[0](x[None, None])[0, 0]
    # Window at (i, j) covers rows i..i+1, cols j..j+1 inside the image only.
    expected = torch.tensor([[-1.0, -1.0, -2.0], [-3.0, -2.0, -2.0], [-4.0, -6.0, -8.0]])
    assert torch.equal(out, expected)
    assert model.specs[0].out_h == 3


def test_maxpool_odd_input_stride2_rounds_up_like_darknet():
    model = _tiny_net("[maxpool]\nsize=2\nstride=2\n", size=5)
    x = torch.arange(25.0).view(1, 1, 5, 5) * -1
    out = model.layers[0](x)
    assert out.shape[-2:] == (3, 3) and model.specs[0].out_h == 3
    assert out[0, 0, 2, 2].item() == -24.0


def test_route_groups_shortcut_upsample_by_hand():
    body = ("[convolutional]\nfilters=2\nsize=1\nactivation=linear\n"      # 0: x, 2x + 1
            "[route]\nlayers=-1\ngroups=2\ngroup_id=1\n"                    # 1: 2x + 1
            "[upsample]\nstride=2\n"                                        # 2: U = up(2x + 1)
            "[route]\nlayers=0\n"                                           # 3
            "[upsample]\nstride=2\n"                                        # 4
            "[shortcut]\nfrom=-3\nactivation=linear\n"                      # 5
            "[route]\nlayers=-1,2\n"                                        # 6: [2U, U]
            "[route]\nlayers=-1,-1,-1\n"                                    # 7: 6 channels
            "[yolo]\nmask=0\nanchors=1,1\nclasses=1\n")                     # 8: (1, 1, 4, 4, 6)
    with pytest.raises(Exception, match="shapes must match"):   # layer 4 has 2 channels, layer 2 one
        _tiny_net(body, size=2)
    model = _tiny_net(body.replace("[route]\nlayers=0\n", "[route]\nlayers=1\n"), size=2).eval()
    with torch.no_grad():
        model.layers[0].conv.weight.copy_(torch.tensor([1.0, 2.0]).view(2, 1, 1, 1))
        model.layers[0].conv.bias.copy_(torch.tensor([0.0, 1.0]))
        (out,) = model(torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]]))
    up = np.array([[3, 3, 5, 5], [3, 3, 5, 5], [7, 7, 9, 9], [7, 7, 9, 9]], dtype=np.float32)
    assert out.shape == (1, 1, 4, 4, 6)
    for k in range(6):
        np.testing.assert_array_equal(out[0, 0, :, :, k].numpy(), up * (2 if k % 2 == 0 else 1))


def test_decode_by_hand():
    head = YoloHead(anchors=torch.tensor([[10.0, 20.0]]), stride=32, num_classes=2, anchor_indices=[0])
    raw = torch.zeros(1, 1, 2, 2, 7)
    raw[0, 0, 1, 0] = torch.tensor([0.0, 2.0, math.log(2.0), 0.0, 3.0, -1.0, 1.0])
    out = decode_outputs([raw], [head])
    assert out.shape == (1, 4, 7)
    row = out[0, 2]  # cell (gy=1, gx=0) is the third in row-major order
    sig = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    expected = [0.5 * 32, (sig(2.0) + 1) * 32, 20.0, 20.0, sig(3.0), sig(-1.0), sig(1.0)]
    np.testing.assert_allclose(row.numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(out[0, 1, :2].numpy(), [(0.5 + 1) * 32, 0.5 * 32])


def test_nms_scores_classes_and_diou():
    # Columns: cx, cy, w, h, obj, p(class0), p(class1)
    decoded = torch.tensor([[
        [50, 50, 20, 20, 0.9, 0.9, 0.1],   # score .81 class 0
        [52, 50, 20, 20, 0.8, 0.9, 0.1],   # IoU .82 with the first: suppressed
        [52, 50, 20, 20, 0.9, 0.1, 0.8],   # same place, class 1: kept
        [200, 200, 10, 10, 0.3, 0.5, 0.5],  # score .15 < .25: dropped
    ]], dtype=torch.float32)
    (dets,) = non_max_suppression(decoded, conf_threshold=0.25, iou_threshold=0.45)
    np.testing.assert_allclose(dets.numpy(), [[40, 40, 60, 60, 0.81, 0], [42, 40, 62, 60, 0.72, 1]], rtol=1e-6)
    (multi,) = non_max_suppression(decoded, conf_threshold=0.05, iou_threshold=0.45, multi_label=True)
    assert sorted(multi[:, 5].tolist()) == [0, 0, 1, 1]  # boxes 0 and 3 (class 0); 2 and 3 (class 1)
    (diou,) = non_max_suppression(decoded, conf_threshold=0.25, iou_threshold=0.45, method="diou")
    assert diou.shape == (2, 6)
    (capped,) = non_max_suppression(decoded, conf_threshold=0.25, iou_threshold=0.45, max_det=1)
    assert capped.shape == (1, 6)

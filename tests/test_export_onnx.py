"""ONNX export checked in onnxruntime (CPU): raw heads and decoded outputs against the PyTorch forward
to 1e-4 of the output's largest magnitude, NMS against vocli's NMS on the runtime's own boxes, metadata."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from vocli.cli.app import main
from vocli.darknet.model import Darknet

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from vocli.export_onnx import _nms_function, export_module, export_onnx  # noqa: E402

REL = 1e-4


def _model(cfg: str, seed: int = 0) -> Darknet:
    """Random weights; objectness and class biases spread out so scores cover (0, 1), not all ~0.25."""
    torch.manual_seed(seed)
    model = Darknet(cfg)
    with torch.no_grad():
        for head in model.heads:
            bias = model.layers[head.layer_index - 1].conv.bias.view(head.num_anchors, -1)
            bias[:, 4:].normal_(0, 2)
    return model.eval()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("onnx")
    model = _model("yolov3-tiny")
    path = folder / "tiny.pt"
    torch.save({"model": model.state_dict(), "config": {"cfg": "yolov3-tiny"}}, path)  # as `vocli train` saves
    return model, path, folder


def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _close(got: np.ndarray, want: torch.Tensor) -> None:
    want = want.detach().numpy()
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= REL * np.abs(want).max()


INPUTS = [(2, 3, 320, 320), (1, 3, 256, 384)]  # batch and both sides change: dynamic axes


def test_raw_heads_and_metadata(tiny):
    model, weights, folder = tiny
    result = export_onnx(weights, folder / "raw.onnx", img_size=320)
    assert result.outputs == ["head0", "head1"] and result.num_classes == 80
    session = _session(result.path)
    for shape in INPUTS:
        x = torch.rand(*shape, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            want = model(x)
        got = session.run(None, {"images": x.numpy()})
        for g, w in zip(got, want):
            _close(g, w)
    meta = {p.key: p.value for p in onnx.load(str(result.path)).metadata_props}
    # yolov3-tiny.cfg: anchors 10,14 23,27 37,58 81,82 135,169 344,319; the stride-32 head takes mask 3,4,5
    assert json.loads(meta["strides"]) == [32, 16] and meta["cfg"] == "yolov3-tiny"
    assert json.loads(meta["input_size"]) == [320, 320]
    assert json.loads(meta["anchors"])[0] == [[81, 82], [135, 169], [344, 319]]
    assert len(json.loads(meta["names"])) == 80


def test_decoded_boxes_and_scores(tiny):
    model, weights, folder = tiny
    session = _session(export_onnx(weights, folder / "dec.onnx", img_size=320, decode=True).path)
    module = export_module(model, decode=True)
    for shape in INPUTS:
        x = torch.rand(*shape, generator=torch.Generator().manual_seed(2))
        with torch.no_grad():
            boxes, scores = module(x)
        got_boxes, got_scores = session.run(None, {"images": x.numpy()})
        # N = 3 anchors x (H/32 * W/32 + H/16 * W/16)
        assert boxes.shape[1] == 3 * (shape[2] * shape[3] // 32 ** 2 + shape[2] * shape[3] // 16 ** 2)
        _close(got_boxes, boxes)
        _close(got_scores, scores)


def test_nms_in_the_graph(tiny):
    _, weights, folder = tiny
    conf, iou = 0.7, 0.45
    nms_session = _session(export_onnx(weights, folder / "nms.onnx", img_size=320, decode=True, nms=True,
                                       conf=conf, iou=iou).path)
    dec_session = _session(folder / "dec.onnx" if (folder / "dec.onnx").exists()
                           else export_onnx(weights, folder / "dec.onnx", img_size=320, decode=True).path)
    for shape in INPUTS:
        x = torch.rand(*shape, generator=torch.Generator().manual_seed(3)).numpy()
        got = nms_session.run(None, {"images": x})[0]
        boxes, scores = (torch.from_numpy(a) for a in dec_session.run(None, {"images": x}))
        sel = _nms_function().apply(boxes, scores.transpose(1, 2).contiguous(), 300, iou, conf)
        b, c, i = sel.T
        want = torch.cat([b[:, None].float(), boxes[b, i], scores[b, i, c][:, None], c[:, None].float()], 1)
        assert 0 < len(got) < int((scores > conf).sum())  # some suppressed
        np.testing.assert_array_equal(got, want.numpy())
        assert (got[:, 5] > conf).all() and set(np.unique(got[:, 0])) <= set(range(shape[0]))


def test_cli_from_darknet_weights(tiny, tmp_path, capsys):
    from converters.darknet_weights import write_darknet_weights

    model, _, _ = tiny
    weights = tmp_path / "tiny.weights"
    write_darknet_weights(weights, "yolov3-tiny", model.state_dict())
    out = tmp_path / "m.onnx"
    assert main(["export-onnx", str(weights), "--cfg", "yolov3-tiny", "-o", str(out), "--img-size", "256",
                 "--decode", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["outputs"] == ["boxes", "scores"] and result["input_size"] == [256, 256] and out.is_file()
    assert main(["export-onnx", str(weights), "--cfg", "yolov3-tiny", "-o", str(out), "--nms", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["outputs"] == ["detections"]  # --nms implies --decode
    assert main(["export-onnx", str(weights), "--cfg", "yolov3-tiny", "-o", str(out), "--img-size", "100"]) == 1
    assert "multiple of 32" in capsys.readouterr().err


def test_missing_extra_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    assert main(["export-onnx", str(tmp_path / "x.pt"), "-o", str(tmp_path / "x.onnx")]) == 1
    err = capsys.readouterr().err.strip()
    assert "pip install 'vocli[onnx]'" in err.replace("\n", " ") and "Traceback" not in err
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.slow
def test_yolov3_raw_and_decoded_small_input(tmp_path):
    model = _model("yolov3", seed=1)
    path = tmp_path / "yolov3.pt"
    torch.save({"model": model.state_dict(), "config": {"cfg": "yolov3"}}, path)
    for decode in (False, True):
        session = _session(export_onnx(path, tmp_path / f"y{decode}.onnx", img_size=128, decode=decode).path)
        module = export_module(model, decode=decode)
        for shape in ((1, 3, 128, 128), (2, 3, 96, 160)):
            x = torch.rand(*shape, generator=torch.Generator().manual_seed(4))
            with torch.no_grad():
                want = module(x)
            for g, w in zip(session.run(None, {"images": x.numpy()}), want):
                _close(g, w)

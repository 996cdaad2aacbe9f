"""What `vocli train` really writes, used by export-weights, detect and evaluate (issue 20).

One session-scoped tiny run: yolov3-tiny-voc re-classed to the 4 shapes classes, 1 epoch on
8 generated 64-px images. The checkpoint holds the re-classed cfg at its top level
(``cfg_text``) and the shipped name it started from in ``config["cfg"]``; readers that take the
name build a 20-class head and fail on the 4-class tensors.
"""

from __future__ import annotations

import json

import pytest
import torch

from converters.darknet_weights import convert_weights, read_darknet_weights
from vocli.cli.app import main
from vocli.darknet.cfg import parse_cfg
from vocli.datasets.shapes import SHAPES_CLASSES, generate_shapes

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("trained")
    generate_shapes(root, images=12, size=64, seed=3)
    out = root / "run"
    rc = main(["train", "--root", str(root), "--sets", "shapes/train", "--valid-sets", "shapes/test",
               "--cfg", "yolov3-tiny-voc", "--img-size", "64", "--epochs", "1", "--batch-size", "4",
               "--workers", "0", "--threads", "1", "--eval-every", "1", "--seed", "0", "--out", str(out), "--json"])
    assert rc == 0
    return root, out


def _load(path):
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.mark.parametrize("name", ["best.pt", "last.pt"])
def test_export_of_a_reclassed_train_checkpoint_round_trips(trained, tmp_path, capsys, name):
    _, run = trained
    ckpt = _load(run / name)
    assert ckpt["config"]["cfg"] == "yolov3-tiny-voc"  # the layout this test is about
    cfg = parse_cfg(ckpt["cfg_text"])
    assert cfg.num_classes == len(SHAPES_CLASSES) == 4
    capsys.readouterr()
    assert main(["export-weights", str(run / name), "-o", str(tmp_path / "tiny.weights"), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    # 3 * (5 + 4) = 27 filters in each head instead of the shipped 75
    assert doc["floats"] == cfg.weight_count() == sum(v.numel() for k, v in ckpt["model"].items()
                                                        if not k.endswith("num_batches_tracked"))
    assert doc["bytes_out"] == 20 + 4 * doc["floats"]
    back = read_darknet_weights(tmp_path / "tiny.weights", cfg).tensors
    model = {k: v for k, v in ckpt["model"].items() if not k.endswith("num_batches_tracked")}
    assert sorted(back) == sorted(model)
    for key, tensor in model.items():
        assert torch.equal(back[key], tensor), key
    # and through convert-weights into a .pt, which carries the cfg text again
    (tmp_path / "tiny.cfg").write_text(ckpt["cfg_text"])
    report = convert_weights(tmp_path / "tiny.weights", cfg=tmp_path / "tiny.cfg", out=tmp_path / "tiny.pt")
    assert report.num_classes == 4
    converted = _load(tmp_path / "tiny.pt")["state_dict"]
    assert all(torch.equal(converted[k], v) for k, v in model.items())


def _detections(capsys, weights, images, out, *extra):
    capsys.readouterr()
    assert main(["detect", *map(str, images), "--weights", str(weights), "--img-size", "64", "--conf", "0.001",
                 "--out", str(out), "--no-draw", "--save-json", "--json", *extra]) == 0
    doc = json.loads(capsys.readouterr().out)
    return doc["num_detections"], doc["counts"], (out / "detections.jsonl").read_text()


def test_detect_and_evaluate_take_the_checkpoint_and_its_exported_weights(trained, tmp_path, capsys):
    root, run = trained
    ckpt = _load(run / "best.pt")
    assert main(["export-weights", str(run / "best.pt"), "-o", str(tmp_path / "best.weights")]) == 0
    (tmp_path / "shapes4.cfg").write_text(ckpt["cfg_text"])
    images = sorted((root / "VOCdevkit" / "VOCshapes" / "JPEGImages").glob("*.jpg"))[:3]
    from_ckpt = _detections(capsys, run / "best.pt", images, tmp_path / "a")
    from_weights = _detections(capsys, tmp_path / "best.weights", images, tmp_path / "b",
                               "--cfg", str(tmp_path / "shapes4.cfg"), "--names", str(_names(tmp_path)))
    assert from_ckpt[0] > 0
    assert from_ckpt == from_weights  # same boxes, scores and class names
    scores = []
    for weights, extra in ((run / "best.pt", []), (tmp_path / "best.weights", ["--cfg", str(tmp_path / "shapes4.cfg")])):
        capsys.readouterr()
        assert main(["evaluate", "--weights", str(weights), *extra, "--root", str(root), "--sets", "shapes/test",
                     "--img-size", "64", "--conf", "0.001", "--json"]) == 0
        scores.append(json.loads(capsys.readouterr().out))
    assert scores[0]["num_detections"] == scores[1]["num_detections"] > 0
    assert scores[0]["map"] == scores[1]["map"]
    assert [c["ap"] for c in scores[0]["per_class"]] == [c["ap"] for c in scores[1]["per_class"]]
    # the shipped 20-class cfg does not fit the 4-class weights: one clear error, no traceback
    capsys.readouterr()
    assert main(["evaluate", "--weights", str(tmp_path / "best.weights"), "--cfg", "yolov3-tiny-voc",
                 "--root", str(root), "--sets", "shapes/test", "--img-size", "64"]) == 1
    assert "Traceback" not in capsys.readouterr().err


def _names(folder):
    path = folder / "shapes.names"
    path.write_text("".join(f"{c}\n" for c in SHAPES_CLASSES))
    return path

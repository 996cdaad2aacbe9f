"""vocli demo: the budget arithmetic by hand, and a tiny end-to-end run checked artefact by artefact."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from vocli.cli.app import main
from vocli.demo import SpeedProbe, training_seconds

STEPS = ["fetch", "convert yolo", "convert ssd", "anchors", "train", "evaluate", "detect"]
STOCK_TINY_ANCHORS = [(10, 14), (23, 27), (37, 58), (81, 82), (135, 169), (344, 319)]


def test_training_seconds_hand_worked():
    # 300 s budget, 30 s spent; inference 20 img/s on 200 test + 8 detect images at 1.5 passes each:
    # 15.6 s, + 2 x 3 s fixed + max(2, 0.04 x 300) = 12 s margin -> 33.6 s kept for after training.
    probe = SpeedProbe(images_per_s=20.0, seconds=1.0)
    assert training_seconds(300.0, 30.0, probe, test_images=200, detect_images=8) == pytest.approx(236.4)


def test_training_seconds_spent_budget_still_trains():
    probe = SpeedProbe(images_per_s=1.0, seconds=1.0)
    assert training_seconds(30.0, 40.0, probe, test_images=50, detect_images=8) == 1.0


def test_bad_image_size_is_one_line_error(tmp_path, capsys):
    rc = main(["demo", "--out", str(tmp_path / "d"), "--img-size", "100"])
    assert rc == 1
    assert "--img-size 100" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


def _click_params(argv: list[str]) -> dict:
    """Parse ``argv`` (after ``vocli``) with the real command tree; a usage error raises."""
    import typer.main

    from vocli.cli.app import app

    command, name, args = typer.main.get_command(app), "vocli", list(argv)
    while hasattr(command, "commands"):  # groups: the root app, `convert`
        name, args = args[0], args[1:]
        assert name in command.commands, f"unknown command {name!r} in {argv}"
        command = command.commands[name]
    return command.make_context(name, args).params


def _yolo_sections(cfg_text: str) -> list[dict]:
    """[yolo] sections as dicts, plus the filters= of the convolution before each (independent reader)."""
    sections, current = [], None
    for raw in cfg_text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if line.startswith("["):
            current = {"_type": line.strip("[]")}
            sections.append(current)
        elif "=" in line and current is not None:
            key, value = line.split("=", 1)
            current[key.strip()] = value.strip()
    out = []
    for i, s in enumerate(sections):
        if s["_type"] == "yolo":
            out.append({**s, "_filters": int(sections[i - 1]["filters"])})
    return out


@pytest.mark.slow
def test_demo_end_to_end(tmp_path, monkeypatch, capsys):
    from PIL import Image

    monkeypatch.setenv("VOCLI_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    rc = main(["demo", "--out", "demo", "--images", "60", "--img-size", "64", "--minutes", "0.4", "--json"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    result = json.loads(captured.out)  # exactly one JSON document on stdout
    demo = (tmp_path / "demo").resolve()
    assert f"$ vocli fetch shapes --root {demo}/data" in captured.err  # each command announced before it runs

    # steps, in order, each a command the CLI accepts (absolute paths: valid from any folder)
    assert [s["name"] for s in result["steps"]] == STEPS
    params = {}
    for step in result["steps"]:
        argv = shlex.split(step["command"])
        assert argv[0] == "vocli"
        params[step["name"]] = _click_params(argv[1:])
        assert step["seconds"] >= 0
    assert params["fetch"]["names"] == ["shapes"] and params["fetch"]["images"] == 60
    assert params["anchors"]["k"] == 6 and params["anchors"]["img_size"] == 64
    assert params["anchors"]["write_cfg"] == demo / "yolov3-tiny-shapes.cfg"
    assert params["train"]["img_size"] == 64 and params["train"]["eval_every"] == 0
    assert params["train"]["epochs"] == result["epochs"]
    assert params["train"]["time_limit"] * 60 == pytest.approx(result["train_budget_seconds"])
    assert params["evaluate"]["weights"] == params["detect"]["weights"] == demo / "train" / "last.pt"
    assert len(params["detect"]["sources"]) == 8
    assert sum(s["seconds"] for s in result["steps"]) <= result["seconds"]

    voc = demo / "data" / "VOCdevkit" / "VOCshapes"
    ids = {split: (voc / "ImageSets" / "Main" / f"{split}.txt").read_text().split() for split in ("trainval", "test")}
    assert len(ids["trainval"]) + len(ids["test"]) == 60

    # YOLO labels for every image and a .data naming the four classes
    labels = demo / "VOCshapes" / "labels"
    assert all((labels / f"{i}.txt").is_file() for i in ids["trainval"] + ids["test"])
    data = dict(line.split(" = ") for line in (demo / "shapes.data").read_text().splitlines())
    assert data["classes"] == "4"
    assert Path(data["names"]).read_text().split() == ["circle", "square", "triangle", "star"]
    assert len(Path(data["train"]).read_text().split()) == len(ids["trainval"])

    # SSD targets: one file per set, one row per image
    import h5py

    for split in ("trainval", "test"):
        with h5py.File(demo / "ssd" / f"shapes_{split}.h5", "r") as h5:
            assert [x.decode() if isinstance(x, bytes) else x for x in h5["image_ids"][()]] == ids[split]

    # cfg: four classes, the fitted anchors (not the stock ones), heads sized 3 x (5 + 4)
    yolos = _yolo_sections((demo / "yolov3-tiny-shapes.cfg").read_text())
    assert [y["mask"].replace(" ", "") for y in yolos] == ["3,4,5", "0,1,2"]
    for y in yolos:
        values = [int(v) for v in y["anchors"].replace(" ", "").split(",")]
        anchors = list(zip(values[::2], values[1::2]))
        assert len(anchors) == 6 and anchors != STOCK_TINY_ANCHORS
        assert all(1 <= w <= 64 and 1 <= h <= 64 for w, h in anchors)
        assert y["classes"] == "4" and y["_filters"] == 27

    # checkpoints, plots, annotated images
    import torch

    ckpt = torch.load(demo / "train" / "last.pt", map_location="cpu", weights_only=True)
    assert ckpt["classes"] == ["circle", "square", "triangle", "star"]
    assert ckpt["epoch"] == result["epochs_run"]  # the weights evaluated are the last ones trained
    for plot in ("pr_curves.png", "ap_per_class.png"):
        with Image.open(demo / "eval" / plot) as im:
            assert im.format == "PNG" and im.width > 100 and im.height > 100
    drawn = sorted((demo / "detect").glob("*.jpg"))
    assert [p.stem for p in drawn] == sorted(ids["test"])[:8]
    for p in drawn:
        with Image.open(p) as im:
            assert im.format == "JPEG" and im.size == (256, 256)

    # the mAP is the mean of the per-class APs, all in [0, 1]
    ap = result["ap_per_class"]
    assert set(ap) == {"circle", "square", "triangle", "star"}
    assert all(0.0 <= v <= 1.0 for v in ap.values())
    assert 0.0 <= result["map"] <= 1.0
    assert result["map"] == pytest.approx(sum(ap.values()) / 4)
    assert result["paths"]["pr_curves"] == str(demo / "eval" / "pr_curves.png")

    # a second run in the same folder reuses the data and rewrites the outputs
    from vocli.demo import demo as run_demo

    before = (demo / "train" / "last.pt").stat().st_mtime_ns
    again = run_demo(out="demo", minutes=0.25, images=60, img_size=64)
    assert again.steps[0].summary.endswith("(already fetched)")
    assert (demo / "train" / "last.pt").stat().st_mtime_ns > before
    assert 0.0 <= again.map <= 1.0

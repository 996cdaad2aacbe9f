"""vocli demo: the budget arithmetic by hand, and a tiny end-to-end run checked artefact by artefact."""

from __future__ import annotations

import json
import math
import re
import shlex
from pathlib import Path

import pytest

from vocli.cli.app import main
from vocli.demo import (SpeedProbe, demo_cfg_text, predicted_images, probe_speed, suggested_minutes,
                        training_seconds)

STEPS = ["fetch", "convert yolo", "convert ssd", "anchors", "train", "evaluate", "detect"]
STOCK_TINY_ANCHORS = [(10, 14), (23, 27), (37, 58), (81, 82), (135, 169), (344, 319)]


def test_training_seconds_hand_worked():
    # 300 s budget, 30 s spent; training 8 img/s, so inference 8 x 2.5 = 20 img/s, on 200 test + 8 detect
    # images at 1.5 passes each: 15.6 s, + 2 x 3 s fixed + max(2, 0.04 x 300) = 12 s margin -> 33.6 s kept.
    probe = SpeedProbe(images_per_s=8.0, seconds=1.0)
    assert training_seconds(300.0, 30.0, probe, test_images=200, detect_images=8) == pytest.approx(236.4)


def test_training_seconds_spent_budget_still_trains():
    probe = SpeedProbe(images_per_s=0.4, seconds=1.0)
    assert training_seconds(30.0, 40.0, probe, test_images=50, detect_images=8) == 1.0


def test_predicted_images_and_suggested_minutes_hand_worked():
    probe = SpeedProbe(images_per_s=10.0, seconds=1.0)
    assert predicted_images(200.0, probe) == 1600  # 200 s x 10 img/s x 0.8
    # 5,000 images at 8 img/s: 625 s; after training (400 + 8) x 1.5 / 25 = 24.48 s + 6 s + 2 s;
    # with the 30 s before: 687.48 s, / 0.96 (margin) = 716.13 s, x 1.25 = 895.2 s = 14.9 -> 15 minutes
    assert suggested_minutes(30.0, probe, test_images=400, detect_images=8) == 15


def test_demo_cfg_halves_every_convolution_but_the_heads():
    from vocli.darknet.cfg import load_cfg

    filters = [int(v) for v in re.findall(r"^filters=(\d+)", demo_cfg_text(4), flags=re.M)]
    assert filters == [8, 16, 32, 64, 128, 256, 512, 128, 256, 27, 64, 128, 27]  # heads: 3 x (5 + 4)
    assert demo_cfg_text(4, width=1.0) == load_cfg("yolov3-tiny-voc").with_classes(4).text


def test_probe_times_one_thread_and_every_core_and_keeps_the_faster(monkeypatch):
    import torch

    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1}, raising=False)
    before = torch.get_num_threads()
    probe = probe_speed(demo_cfg_text(4), 32, "cpu", batch=2)
    assert sorted(probe.rates) == [1, 2] and all(r > 0 for r in probe.rates.values())
    assert probe.images_per_s == max(probe.rates.values()) and probe.rates[probe.threads] == probe.images_per_s
    assert torch.get_num_threads() == before


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
    result = json.loads(captured.out)  # exactly one JSON document on stdout, also when the model falls short
    demo = (tmp_path / "demo").resolve()
    assert f"$ vocli fetch shapes --root {demo}/data" in captured.err  # each command announced before it runs

    # 24 seconds cannot train a detector: the demo says so, with the budget to pass, and exits 1
    assert rc == 1 and result["reached"] is False
    # the suggestion holds the recipe's 5,000 training images at the rate this run had (the advice names it),
    # and is at least half the given budget again; on a fast machine that can be 1 minute
    rate = float(re.search(r"([0-9.]+) images/s with", result["advice"]).group(1))
    assert result["suggested_minutes"] * 60 >= 5000 / (rate + 0.05)
    assert result["suggested_minutes"] >= math.ceil(0.4 * 1.5)
    last = captured.err.strip().splitlines()[-1]
    assert last.startswith("the model does not work yet:")
    assert last.endswith(f"Give it more time: vocli demo --minutes {result['suggested_minutes']}")
    assert "training images/s: training with" in captured.err  # the probe's note before training

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
    # 24 s fit far fewer images than the recipe needs: no val evaluations, no target, train to the limit
    assert params["train"]["img_size"] == 64 and params["train"]["eval_every"] == 0
    assert params["train"]["target_map"] is None and params["train"]["threads"] == result["threads"]
    assert result["images_predicted"] < 5000 and result["train_stopped"] == "time_limit"
    assert result["threads"] == result["probe"]["threads"]
    assert params["train"]["epochs"] == result["epochs"]
    assert params["train"]["time_limit"] * 60 == pytest.approx(result["train_budget_seconds"])
    assert params["evaluate"]["weights"] == params["detect"]["weights"] == demo / "train" / "best.pt"
    assert len(params["detect"]["sources"]) == 8
    assert sum(s["seconds"] for s in result["steps"]) <= result["seconds"]

    voc = demo / "data" / "VOCdevkit" / "VOCshapes"
    ids = {split: (voc / "ImageSets" / "Main" / f"{split}.txt").read_text().split()
           for split in ("train", "val", "trainval", "test")}
    assert len(ids["trainval"]) + len(ids["test"]) == 60

    # YOLO labels for the train and val images; a .data training on train, stopping on val
    labels = demo / "VOCshapes" / "labels"
    assert all((labels / f"{i}.txt").is_file() for i in ids["trainval"])
    data = dict(line.split(" = ") for line in (demo / "shapes.data").read_text().splitlines())
    assert data["classes"] == "4"
    assert Path(data["names"]).read_text().split() == ["circle", "square", "triangle", "star"]
    assert [Path(p).stem for p in Path(data["train"]).read_text().split()] == ids["train"]
    assert [Path(p).stem for p in Path(data["valid"]).read_text().split()] == ids["val"]

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

    ckpt = torch.load(demo / "train" / "best.pt", map_location="cpu", weights_only=True)
    assert ckpt["classes"] == ["circle", "square", "triangle", "star"]
    assert ckpt["epoch"] == result["epochs_run"]  # never evaluated: best.pt is the last epoch
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
    monkeypatch.setattr("vocli.demo.MAP_GOAL", 0.0)  # any mAP passes: then the detections decide
    again = run_demo(out="demo", minutes=0.25, images=60, img_size=64)
    assert again.steps[0].summary.endswith("(already fetched)")
    assert (demo / "train" / "last.pt").stat().st_mtime_ns > before
    assert 0.0 <= again.map <= 1.0
    assert again.reached == (again.detections > 0) and (again.advice == "") == again.reached


@pytest.mark.slow
def test_demo_on_a_fast_machine_evaluates_each_epoch_and_stops_at_the_target(tmp_path, monkeypatch):
    from vocli import demo as demo_module

    monkeypatch.setenv("VOCLI_HOME", str(tmp_path / "home"))
    # As if this machine trained fast: the prediction clears 1.5 x the images needed, and any val mAP is enough
    monkeypatch.setattr(demo_module, "probe_speed", lambda *a, **k: SpeedProbe(1e6, 0.0, 1, {1: 1e6}))
    monkeypatch.setattr(demo_module, "TARGET_VAL_MAP", 0.0)
    steps = []
    result = demo_module.demo(out=tmp_path / "d", minutes=0.3, images=30, img_size=32, on_step=steps.append)
    train_step = next(s for s in steps if s.name == "train")
    assert "--eval-every 1 --target-map 0 " in train_step.command
    assert result.train_stopped == "target_map" and result.epochs_run == 1

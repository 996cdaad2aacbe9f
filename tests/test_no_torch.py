"""Commands that need no tensor never import torch (issue 16: torch alone costs seconds of a cold start).

Each command runs in a fresh interpreter (``python -c``) that calls ``vocli.cli.app.main`` and
then reports whether ``torch`` is in ``sys.modules``; the command's own exit code is checked too,
so a command that failed early (and so imported little) cannot pass by accident.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from PIL import Image

_PROBE = """
import json, sys
from vocli.cli.app import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "torch": "torch" in sys.modules}), file=sys.stderr)
"""


def _run(args, env_home) -> dict:
    env = {"VOCLI_HOME": str(env_home), "PATH": "/usr/bin:/bin", "HOME": str(env_home)}
    done = subprocess.run([sys.executable, "-c", _PROBE, *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=120)
    last = done.stderr.strip().splitlines()[-1]
    return json.loads(last)


@pytest.fixture
def tree(tiny_voc, tmp_path):
    det = tmp_path / "det"
    det.mkdir()
    (det / "comp4_det_test_dog.txt").write_text("000001 0.9 10 20 50 60\n")
    (det / "comp4_det_test_cat.txt").write_text("000002 0.6 5 5 20 30\n")
    return tiny_voc, det


def _commands(root, det, tmp_path):
    return {
        "--help": (["--help"], 0),
        "stats": (["stats", "--root", root, "--json"], 0),
        "anchors": (["anchors", "--k", "2", "--root", root, "--sets", "2007/trainval", "--json"], 0),
        "evaluate --detections": (["evaluate", "--detections", det, "--root", root, "--sets", "2007/trainval",
                                   "--json"], 0),
        "verify": (["verify", "--root", tmp_path / "nothing"], None),
        "datasets": (["datasets", "--root", tmp_path / "nothing"], 0),
        "models": (["models", "--json"], 0),
        "convert yolo": (["convert", "yolo", "--root", root, "--sets", "2007/trainval", "--json"], 0),
        "convert voc": (["convert", "voc", tmp_path / "images", "--labels", tmp_path / "labels", "--classes",
                         tmp_path / "out" / "voc.names", "--out", tmp_path / "VOCback", "--json"], 0),
        "convert coco": (["convert", "coco", "--root", root, "--sets", "2007/trainval", "--out", tmp_path / "coco",
                          "--json"], 0),
        "convert voc --from-coco": (["convert", "voc", "--from-coco", tmp_path / "coco" / "instances_2007_trainval.json",
                                     "--images", tmp_path / "images", "--out", tmp_path / "VOCcoco", "--json"], 0),
        "evaluate --metric coco": (["evaluate", "--detections", det, "--root", root, "--sets", "2007/trainval",
                                    "--metric", "coco", "--json"], 0),
    }


def test_commands_without_tensors_never_import_torch(tree, tmp_path):
    root, det = tree
    commands = _commands(root, det, tmp_path)
    # convert voc reads the class list convert yolo wrote: run them in this order.
    (tmp_path / "out").mkdir()
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    Image.new("RGB", (40, 30)).save(tmp_path / "images" / "a.jpg")
    (tmp_path / "labels" / "a.txt").write_text("11 0.5 0.5 0.25 0.5\n")
    commands["convert yolo"] = (commands["convert yolo"][0] + ["--out", tmp_path / "out"], 0)
    for name, (args, expected) in commands.items():
        seen = _run(args, tmp_path / "home")
        if expected is not None:
            assert seen["code"] == expected, f"{name}: exit {seen['code']}"
        assert not seen["torch"], f"`vocli {name}` imported torch"


def test_the_probe_sees_torch_once_the_network_is_imported(tmp_path):
    # The check above would pass vacuously if torch never showed in sys.modules this way.
    pytest.importorskip("torch")
    probe = subprocess.run([sys.executable, "-c", "import sys, vocli.darknet.model; print('torch' in sys.modules)"],
                           capture_output=True, text=True, timeout=120)
    assert probe.stdout.strip() == "True"

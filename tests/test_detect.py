"""detect: NMS on hand-made boxes, source resolution, and end to end with a tiny model whose output is known."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from vocli.boxes import batched_nms, nms
from vocli.cli.app import main
from vocli.datasets.voc import parse_annotation
from helpers import TWO_CLASS_CFG as TINY_CFG
from vocli.detect import resolve_sources
from vocli.images import LetterboxInfo
from vocli.predict import _to_prediction

# --------------------------------------------------------------------------- NMS (vocli.boxes)


def test_standard_nms_hand_boxes():
    boxes = torch.tensor([[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30], [0, 0, 10, 10.]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.9])
    # box 1 overlaps box 0 by 90 / 110 = .82 > .45; box 3 equals box 0 with the same score:
    # the stable order keeps the earlier index (0) and suppresses 3.
    assert nms(boxes, scores, 0.45).tolist() == [0, 2]
    # at a threshold of .85 box 1 (IoU .82) survives, the identical box 3 (IoU 1) does not
    assert nms(boxes, scores, 0.85).tolist() == [0, 1, 2]
    assert nms(torch.zeros((0, 4)), torch.zeros(0), 0.5).numel() == 0


def test_diou_nms_keeps_boxes_with_distant_centres():
    # IoU = 80 / 120 = 2/3; centres 2 px apart, enclosing box 12 x 10 -> DIoU = 2/3 - 4/244 = .6503
    boxes = torch.tensor([[0, 0, 10, 10], [2, 0, 12, 10.]])
    scores = torch.tensor([0.9, 0.8])
    assert nms(boxes, scores, 0.66, method="standard").tolist() == [0]
    assert nms(boxes, scores, 0.66, method="diou").tolist() == [0, 1]
    assert nms(boxes, scores, 0.64, method="diou").tolist() == [0]


def test_batched_nms_is_class_wise():
    boxes = torch.tensor([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10.]])
    scores = torch.tensor([0.5, 0.9, 0.7])
    classes = torch.tensor([0, 1, 0])
    assert batched_nms(boxes, scores, classes, 0.5).tolist() == [1, 2]


# --------------------------------------------------------------------------- pieces


def test_boxes_are_mapped_back_and_padding_boxes_dropped(tmp_path):
    # 128 x 64 letterboxed to 64: scale .5, 16 rows of padding on top
    info = LetterboxInfo(scale=0.5, pad_x=0.0, pad_y=16.0, orig_w=128, orig_h=64)
    det = np.array([[10, 20, 30, 40, 0.9, 1], [0, 0, 10, 10, 0.8, 0]])  # second lies in the padding
    pred = _to_prediction(tmp_path / "x.png", info, det, None)
    np.testing.assert_allclose(pred.boxes, [[20, 8, 60, 48]])
    assert pred.scores.tolist() == [0.9] and pred.class_ids.tolist() == [1]


def test_resolve_sources(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for name in ("b.jpg", "a.png", "notes.md", ".hidden.jpg"):
        (folder / name).write_bytes(b"x")
    listed = tmp_path / "list.txt"
    listed.write_text(f"{folder / 'a.png'}\nimgs/b.jpg\n")
    images, skipped = resolve_sources([folder, str(tmp_path / "*" / "*.jpg"), listed, tmp_path / "missing.jpg"])
    assert images == [folder / "a.png", folder / "b.jpg"]
    assert (str(folder / "notes.md"), "not an image file (suffix)") in skipped
    assert (str(tmp_path / "missing.jpg"), "not found") in skipped


# --------------------------------------------------------------------------- end to end



@pytest.fixture
def tiny_weights(tmp_path):
    """A 2-class model whose every cell predicts the same 8 x 8 box of class 0 with score sigmoid(2)^2."""
    from converters.darknet_weights import FORMAT
    from vocli.darknet.cfg import parse_cfg
    from vocli.darknet.model import Darknet

    torch.manual_seed(0)
    model = Darknet(parse_cfg(TINY_CFG))
    head = model.layers[1].conv
    with torch.no_grad():
        head.weight.zero_()
        bias = torch.full((3, 7), -10.0)
        bias[0] = torch.tensor([0, 0, 0, 0, 2, 2, -10])  # anchor 0: tx ty tw th = 0, obj and class 0 logits 2
        head.bias.copy_(bias.reshape(-1))
    path = tmp_path / "tiny.pt"
    torch.save({"format": FORMAT, "state_dict": model.state_dict(), "cfg": TINY_CFG, "cfg_name": None}, path)
    names = tmp_path / "tiny.names"
    names.write_text("alpha\nbeta\n")
    return path, names


SCORE = float(torch.sigmoid(torch.tensor(2.0)) ** 2)


@pytest.mark.slow
def test_detect_writes_every_output(tmp_path, tiny_weights, capsys):
    weights, names = tiny_weights
    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(src / "a.jpg")
    Image.fromarray(rng.integers(0, 255, (64, 128, 3), dtype=np.uint8)).save(src / "wide.png")
    (src / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (src / "notes.md").write_text("hello")
    out = tmp_path / "out"
    rc = main(["detect", str(src), "--weights", str(weights), "--names", str(names), "--img-size", "64",
               "--out", str(out), "--save-txt", "--save-xml", "--save-json", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert rc == 0 and result["images"] == 2
    assert {p for p, _ in result["skipped"]} == {str(src / "broken.jpg"), str(src / "notes.md")}
    for name, size in (("a.jpg", (64, 64)), ("wide.png", (128, 64))):
        with Image.open(out / name) as im:
            assert im.size == size
    lines = [json.loads(line) for line in (out / "detections.jsonl").read_text().splitlines()]
    assert [rec["image_id"] for rec in lines] == ["a", "wide"]
    first = lines[0]["detections"][0]
    # cell (0, 0): centre (0.5 * 2, 0.5 * 2) = (1, 1), 8 x 8 -> (-3, -3, 5, 5) clipped to (0, 0, 5, 5); VOC + 1
    assert first["class"] == "alpha" and first["score"] == pytest.approx(SCORE, rel=1e-6)
    assert first["bbox"] == pytest.approx([1, 1, 6, 6])
    assert result["counts"]["alpha"] == sum(len(rec["detections"]) for rec in lines)
    assert result["counts"]["beta"] == 0
    for rec in lines:
        stem, w, h = rec["image_id"], rec["width"], rec["height"]
        dets = rec["detections"]
        # YOLO lines agree with the JSON boxes (darknet convention: VOC corner - 1 = pixel; VOC corners
        # clipped to 1 <= x <= w, 1 <= y <= h)
        rows = [list(map(float, line.split())) for line in (out / "labels" / f"{stem}.txt").read_text().splitlines()]
        assert len(rows) == len(dets) > 0
        for (cls, cx, cy, bw, bh), det in zip(rows, dets):
            pixels = np.array([(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h])
            assert cls == 0 and det["bbox"] == pytest.approx(np.clip(pixels + 1, 1, [w, h, w, h]), abs=2e-4)
        # the VOC parser reads the XML back: same objects, whole pixels inside the image
        ann = parse_annotation(out / "Annotations" / f"{stem}.xml", classes=("alpha", "beta"))
        assert (ann.width, ann.height) == (w, h) and len(ann.objects) == len(dets)
        for obj, det in zip(ann.objects, dets):
            assert 1 <= obj.xmin <= obj.xmax <= w and 1 <= obj.ymin <= obj.ymax <= h
            assert obj.bbox == pytest.approx(np.clip(np.floor(np.array(det["bbox"]) + 0.5), 1, [w, h, w, h]))
    # the wide image's boxes lie in its 128 x 64 frame, none left in the padding
    assert all(d["bbox"][3] > d["bbox"][1] for d in lines[1]["detections"])
    # JSON boxes are clipped into the image as the XML ones are: the cells at the right edge of the
    # 64 x 64 image predict boxes reaching past it (to 67), which end exactly at its last pixel, 64.
    for rec in lines:
        boxes = np.array([d["bbox"] for d in rec["detections"]])
        assert boxes.min() >= 1 and boxes[:, [0, 2]].max() <= rec["width"] and boxes[:, [1, 3]].max() <= rec["height"]
    assert max(d["bbox"][2] for d in lines[0]["detections"]) == 64


@pytest.mark.slow
def test_detect_class_filter_no_draw_and_diou(tmp_path, tiny_weights, capsys):
    from vocli.detect import detect

    weights, names = tiny_weights
    Image.new("RGB", (64, 64), (90, 120, 30)).save(tmp_path / "a.jpg")
    out = tmp_path / "out"
    result = detect([tmp_path / "a.jpg"], weights, img_size=64, out=out, classes=["beta"],
                    names=["alpha", "beta"], draw=False)
    assert result.num_detections == 0 and not (out / "a.jpg").exists()
    standard = detect([tmp_path / "a.jpg"], weights, img_size=64, out=out, names=["alpha", "beta"], draw=False)
    diou = detect([tmp_path / "a.jpg"], weights, img_size=64, out=out, names=["alpha", "beta"], draw=False,
                  nms="diou")
    # DIoU subtracts a centre-distance term, so it suppresses no more than standard NMS
    assert diou.num_detections >= standard.num_detections > 0
    assert main(["detect", str(tmp_path / "a.jpg"), "--weights", str(weights), "--img-size", "63",
                 "--out", str(out)]) == 1
    assert "multiple of the model's stride" in capsys.readouterr().err


# Worked by hand (VOC07 11-point AP, a match needs IoU > 0.5 on inclusive pixels). Every detection
# scores sigmoid(2)^2, so they rank in file order: image 1's 300, image 2's 284, image 3's 252. Alpha
# has 6 truths (2 an image); the true positives are image 1's first box, (1,1,6,6) itself (rank 1),
# and the 17th box of images 2 and 3, squeezed by the letterbox: (1,1,7.25,4.75), IoU 28.5/41.94 =
# 0.68 (rank 300 + 17), and (1,1,8.5,5.5), IoU 33/49.75 = 0.66 (rank 584 + 17). Precision: 1 at
# recall 1/6 (recall points 0, 0.1), 2/317 at 2/6 (0.2, 0.3), 3/601 at 3/6 (0.4, 0.5), none beyond.
# Beta: no detections, AP 0.
ALPHA_AP = (2 * 1 + 2 * 2 / 317 + 2 * 3 / 601) / 11


@pytest.mark.slow
def test_model_evaluation_equals_scoring_its_detection_file(tmp_path, tiny_weights, capsys):
    from helpers import write_voc_xml

    weights, names = tiny_weights
    voc = tmp_path / "VOCdevkit" / "VOC2007"
    rng = np.random.default_rng(1)
    ids = ["000001", "000002", "000003"]
    for i, image_id in enumerate(ids):
        image = voc / "JPEGImages" / f"{image_id}.jpg"
        image.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (64, 64 + 16 * i, 3), dtype=np.uint8)).save(image)
        write_voc_xml(voc / "Annotations" / f"{image_id}.xml", f"{image_id}.jpg", 64 + 16 * i, 64,
                      [("alpha", 1, 1, 6, 6, 0), ("alpha", 20, 20, 40, 40, 0), ("beta", 3, 3, 30, 30, i == 1)])
    (voc / "ImageSets" / "Main").mkdir(parents=True)
    (voc / "ImageSets" / "Main" / "test.txt").write_text("\n".join(ids) + "\n")
    common = ["--root", str(tmp_path), "--sets", "2007/test", "--classes", str(names), "--json"]
    rc = main(["evaluate", "--weights", str(weights), "--img-size", "64", *common])
    by_model = json.loads(capsys.readouterr().out)
    assert rc == 0 and by_model["metric"] == "voc07"
    rc = main(["detect", str(voc / "JPEGImages"), "--weights", str(weights), "--names", str(names), "--img-size", "64",
               "--conf", "0.005", "--out", str(tmp_path / "det"), "--save-json", "--no-draw", "--json"])
    assert rc == 0
    capsys.readouterr()
    rc = main(["evaluate", "--detections", str(tmp_path / "det" / "detections.jsonl"), *common])
    by_file = json.loads(capsys.readouterr().out)
    assert rc == 0
    lines = [json.loads(line) for line in (tmp_path / "det" / "detections.jsonl").read_text().splitlines()]
    assert [len(line["detections"]) for line in lines] == [300, 284, 252]  # the premises of ALPHA_AP
    assert [lines[i]["detections"][k]["bbox"] for i, k in ((0, 0), (1, 16), (2, 16))] == \
        [[1, 1, 6, 6], [1, 1, 7.25, 4.75], [1, 1, 8.5, 5.5]]
    assert [(c["name"], c["ap"]) for c in by_model["per_class"]] == [("alpha", pytest.approx(ALPHA_AP, abs=1e-12)),
                                                                     ("beta", 0.0)]
    assert by_model["map"] == pytest.approx(ALPHA_AP / 2, abs=1e-12)
    assert by_file["map"] == pytest.approx(by_model["map"], abs=1e-12)
    assert [c["ap"] for c in by_file["per_class"]] == pytest.approx([c["ap"] for c in by_model["per_class"]])
    # COCO: detect writes a COCO results file; vocli scores it as it scores the model, and so does pycocotools
    capsys.readouterr()
    assert main(["detect", str(voc / "JPEGImages"), "--weights", str(weights), "--names", str(names), "--img-size",
                 "64", "--conf", "0.005", "--out", str(tmp_path / "coco"), "--save-json", "--json-format", "coco",
                 "--no-draw", "--json"]) == 0
    capsys.readouterr()
    results = json.loads((tmp_path / "coco" / "detections.json").read_text())
    assert {r["image_id"] for r in results} == {1, 2, 3} and {r["category_id"] for r in results} == {1}
    # model box (0, 0, 5, 5) -> VOC (1, 1, 6, 6) -> COCO x 0, y 0, w 6, h 6
    assert any(r["bbox"] == pytest.approx([0, 0, 6, 6], abs=1e-5) for r in results if r["image_id"] == 1)
    coco = ["--metric", "coco", *common]
    assert main(["evaluate", "--weights", str(weights), "--img-size", "64", *coco]) == 0
    model_stats = json.loads(capsys.readouterr().out)["coco_stats"]
    assert main(["evaluate", "--detections", str(tmp_path / "coco" / "detections.json"), *coco]) == 0
    file_stats = json.loads(capsys.readouterr().out)["coco_stats"]
    assert model_stats["AP"] > 0 and file_stats == pytest.approx(model_stats, abs=1e-12)
    pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    assert main(["convert", "coco", "--root", str(tmp_path), "--sets", "2007/test", "--classes", str(names),
                 "--out", str(tmp_path / "gt"), "--json"]) == 0
    capsys.readouterr()
    gt = COCO(str(tmp_path / "gt" / "instances_2007_test.json"))
    ev = COCOeval(gt, gt.loadRes(str(tmp_path / "coco" / "detections.json")), "bbox")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    assert list(file_stats.values()) == pytest.approx(list(ev.stats), abs=1e-9)


def test_json_boxes_are_clipped_into_the_image_like_the_xml():
    from vocli.detection_files import to_voc_pixels

    # 0-based continuous pixels of a 335 x 200 image; + 1 makes VOC corners, then 1 <= x <= 335, 1 <= y <= 200.
    boxes = np.array([[0.0, 2.5, 335.0, 100.0], [334.5, 199.0, 335.0, 200.0], [-0.0, 0.0, 10.25, 20.0]])
    np.testing.assert_array_equal(to_voc_pixels(boxes, 335, 200),
                                  [[1.0, 3.5, 335.0, 101.0], [335.0, 200.0, 335.0, 200.0], [1.0, 1.0, 11.25, 21.0]])


def test_detect_and_evaluate_default_to_the_size_the_checkpoint_was_trained_at(tmp_path, tiny_weights, capsys):
    from tests.conftest import write_voc_xml
    from vocli.detect import detect

    weights, names = tiny_weights
    trained = tmp_path / "trained.pt"
    torch.save({**torch.load(weights, weights_only=True), "config": {"img_size": 64}}, trained)
    Image.new("RGB", (64, 64), (90, 120, 30)).save(tmp_path / "a.jpg")
    common = dict(names=["alpha", "beta"], draw=False, save_json=True)
    own = detect([tmp_path / "a.jpg"], trained, out=tmp_path / "own", **common)
    # At 64 px the 64 x 64 image is not scaled: cell (0, 0) predicts (-3, -3, 5, 5) -> VOC (1, 1, 6, 6).
    first = json.loads((tmp_path / "own" / "detections.jsonl").read_text())["detections"][0]
    assert own.img_size == 64 and first["bbox"] == pytest.approx([1, 1, 6, 6])
    # A flag overrides it; weights that do not say (no config) get 416.
    assert detect([tmp_path / "a.jpg"], trained, img_size=32, out=tmp_path / "o32", **common).img_size == 32
    assert detect([tmp_path / "a.jpg"], weights, out=tmp_path / "o416", **common).img_size == 416
    # evaluate: the same default, said in the source line
    voc = tmp_path / "VOCdevkit" / "VOC2007"
    (voc / "JPEGImages").mkdir(parents=True)
    Image.new("RGB", (64, 64), (90, 120, 30)).save(voc / "JPEGImages" / "000001.jpg")
    write_voc_xml(voc / "Annotations" / "000001.xml", "000001.jpg", 64, 64, [("alpha", 1, 1, 6, 6, 0)])
    (voc / "ImageSets" / "Main").mkdir(parents=True)
    (voc / "ImageSets" / "Main" / "test.txt").write_text("000001\n")
    assert main(["evaluate", "--weights", str(trained), "--root", str(tmp_path), "--sets", "2007/test",
                 "--classes", str(names), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["source"].endswith("on 1 images at 64 px")


def test_missing_weights_hint_names_commands_that_exist(tmp_path, capsys):
    Image.new("RGB", (8, 8)).save(tmp_path / "a.jpg")
    assert main(["detect", str(tmp_path / "a.jpg"), "--weights", str(tmp_path / "none.pt"),
                 "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "weights file not found" in err and "`vocli fetch yolov3.weights`" in err
    assert "vocli weights" not in err


def test_detect_fails_when_no_input_could_be_read(tmp_path, tiny_weights, capsys):
    weights, _ = tiny_weights
    (tmp_path / "a.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (tmp_path / "b.png").write_bytes(b"")
    rc = main(["detect", str(tmp_path / "a.jpg"), str(tmp_path / "b.png"), "--weights", str(weights),
               "--img-size", "64", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 1 and "none of the 2 image(s) could be read" in err
    # one readable image among them is a success
    Image.new("RGB", (64, 64)).save(tmp_path / "c.jpg")
    assert main(["detect", str(tmp_path / "a.jpg"), str(tmp_path / "c.jpg"), "--weights", str(weights),
                 "--img-size", "64", "--out", str(tmp_path / "out2"), "--no-draw"]) == 0

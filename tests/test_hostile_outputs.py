"""Hostile outputs: no command writes over its inputs or over files that are not its own (issue 18, item 2).

Each case checks the exit code, the one error line naming the file, and that the input tree is
byte-for-byte unchanged (hashed before and after).
"""

from __future__ import annotations

import pytest
from hostile_common import error_line, run, tree_state, write_tiny_pt
from PIL import Image

@pytest.fixture
def tiny_pt(tmp_path):
    """A converted .pt of a 2-class two-layer model, and its .names."""
    return write_tiny_pt(tmp_path / "models")


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, colour in enumerate([(200, 10, 10), (10, 200, 10)]):
        Image.new("RGB", (64, 48), colour).save(folder / f"p{i}.jpg")
    return folder


def test_detect_out_into_the_image_folder_is_refused_even_with_exist_ok(tmp_path, tiny_pt, photos, capsys):
    weights, names = tiny_pt
    before = tree_state(tmp_path)
    for extra in ([], ["--exist-ok"]):
        rc, err = run(capsys, "detect", photos, "--weights", weights, "--names", names, "--out", photos, *extra)
        # the input clash is named first, and --exist-ok (files there may be replaced) does not lift it
        assert rc == 1
        assert f"{photos}: writing p0.jpg there would replace the input {photos / 'p0.jpg'}" in error_line(err)
    assert tree_state(tmp_path) == before


def test_detect_xml_over_ground_truth_annotations_is_refused(tmp_path, tiny_pt, capsys):
    from helpers import write_voc_xml

    weights, names = tiny_pt
    voc = tmp_path / "VOCdevkit" / "VOCshapes"
    write_voc_xml(voc / "Annotations" / "s0.xml", "s0.jpg", 64, 48, [("alpha", 2, 2, 30, 30, 0)])
    (voc / "JPEGImages").mkdir()
    Image.new("RGB", (64, 48), (9, 9, 9)).save(voc / "JPEGImages" / "s0.jpg")
    before = tree_state(tmp_path)
    rc, err = run(capsys, "detect", voc / "JPEGImages", "--weights", weights, "--names", names,
                  "--save-xml", "--no-draw", "--out", voc)
    assert rc == 1
    assert f"{voc}: already exists and is not empty" in error_line(err)
    assert tree_state(tmp_path) == before


def test_detect_default_out_is_a_fresh_run_folder(tmp_path, tiny_pt, photos, capsys, monkeypatch):
    weights, names = tiny_pt
    monkeypatch.chdir(tmp_path)
    before = tree_state(photos)
    for expected in ("exp", "exp2"):
        rc, err = run(capsys, "detect", photos, "--weights", weights, "--names", names, "--img-size", "64")
        assert rc == 0, err
        assert sorted(p.name for p in (tmp_path / "runs" / "detect" / expected).iterdir()) == ["p0.jpg", "p1.jpg"]
    assert sorted(p.name for p in (tmp_path / "runs" / "detect").iterdir()) == ["exp", "exp2"]
    assert tree_state(photos) == before


def test_export_weights_onto_its_own_checkpoint_is_refused(tmp_path, tiny_pt, capsys):
    weights, _ = tiny_pt
    before = tree_state(tmp_path)
    for extra in ([], ["--overwrite"]):
        rc, err = run(capsys, "export-weights", weights, "-o", weights, *extra)
        assert rc == 1
        assert f"{weights}: is the input {weights}; refusing to write over it" in error_line(err)
    assert tree_state(tmp_path) == before


def test_export_weights_replaces_an_existing_file_only_when_asked(tmp_path, tiny_pt, capsys):
    weights, _ = tiny_pt
    out = tmp_path / "old.weights"
    out.write_bytes(b"someone's file")
    rc, err = run(capsys, "export-weights", weights, "-o", out)
    assert rc == 1 and f"{out}: already exists" in error_line(err) and "--overwrite" in err
    assert out.read_bytes() == b"someone's file"
    rc, err = run(capsys, "export-weights", weights, "-o", out, "--overwrite")
    assert rc == 0, err
    # 20-byte header then 8 (conv) + 4 * 8 (batch norm) + 21 + 21 * 8 (head) floats
    assert out.stat().st_size == 20 + 4 * (8 * 3 * 3 * 3 + 4 * 8 + 21 + 21 * 8)


def test_convert_weights_onto_its_source_is_refused(tmp_path, capsys):
    src = tmp_path / "same.pt"
    src.write_bytes(b"\0" * 64)
    before = tree_state(tmp_path)
    rc, err = run(capsys, "convert-weights", src, "-o", src, "--overwrite")
    assert rc == 1 and f"{src}: is the input {src}" in error_line(err)
    assert tree_state(tmp_path) == before


def test_output_rule_unit_cases(tmp_path):
    from vocli.errors import OutputError
    from vocli.outputs import check_output_dir, check_output_file, next_run_dir

    a = tmp_path / "a.pt"
    a.write_bytes(b"x")
    link = tmp_path / "link.pt"
    link.symlink_to(a)
    hard = tmp_path / "hard.pt"
    hard.hardlink_to(a)
    for same in (a, link, hard, tmp_path / "sub" / ".." / "a.pt"):
        with pytest.raises(OutputError, match="is the input"):
            check_output_file(same, [a], overwrite=True)
    assert check_output_file(tmp_path / "new.pt", [a]) == tmp_path / "new.pt"
    with pytest.raises(OutputError, match="is a folder"):
        check_output_file(tmp_path, [a], overwrite=True)
    assert check_output_dir(tmp_path / "fresh", [a], [tmp_path / "fresh" / "a.pt"]) == tmp_path / "fresh"
    with pytest.raises(OutputError, match="would replace the input"):
        check_output_dir(tmp_path, [a], [tmp_path / "a.pt"], overwrite=True)
    with pytest.raises(OutputError, match="exists and is not a folder"):
        check_output_dir(a, [], [])
    (tmp_path / "runs" / "exp").mkdir(parents=True)
    (tmp_path / "runs" / "exp2").mkdir()
    assert next_run_dir(tmp_path / "runs", "exp") == tmp_path / "runs" / "exp3"


def test_convert_yolo_lists_never_replace_the_split_lists(tiny_voc, capsys):
    main_dir = tiny_voc / "VOCdevkit" / "VOC2007" / "ImageSets" / "Main"
    before = tree_state(tiny_voc)
    rc, err = run(capsys, "convert", "yolo", "--root", tiny_voc, "--sets", "2007/train", "--out", main_dir,
                  "--workers", "1")
    assert rc == 1
    assert f"{main_dir}: writing train.txt there would replace the input {main_dir / 'train.txt'}" in error_line(err)
    assert tree_state(tiny_voc) == before


def test_train_out_is_new_empty_or_a_run_folder_and_never_over_its_weights(tmp_path):
    from vocli.errors import OutputError
    from vocli.outputs import check_run_folder

    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.jpg").write_bytes(b"jpeg")
    with pytest.raises(OutputError, match=r"photos: holds files and is not a vocli run folder \(no config.json\)"):
        check_run_folder(photos)
    run_dir = tmp_path / "runs" / "exp"
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text("{}")
    (run_dir / "best.pt").write_bytes(b"weights")
    assert check_run_folder(run_dir, [tmp_path / "other.pt"]) == run_dir  # ours: a rerun may replace it
    with pytest.raises(OutputError, match=r"writing best.pt there would replace the input"):
        check_run_folder(run_dir, [run_dir / "best.pt"])
    assert check_run_folder(tmp_path / "new") == tmp_path / "new"

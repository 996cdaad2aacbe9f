import os
import stat

import pytest

from vocli.errors import VocliError
from vocli.paths import atomic_path, atomic_write_text, data_root, staged_folder, vocli_home


def test_home_and_data_root_follow_env(monkeypatch, tmp_path):
    monkeypatch.setenv("VOCLI_HOME", str(tmp_path / "home"))
    assert vocli_home() == tmp_path / "home"
    assert data_root() == tmp_path / "home" / "data"


def test_atomic_write_gives_the_usual_file_mode(tmp_path):
    target = tmp_path / "out.txt"
    atomic_write_text(target, "hello")
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask
    assert target.read_text() == "hello"


def test_failed_write_leaves_old_file_and_no_temp(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_bare_weights_name_is_found_in_the_weights_dir(monkeypatch, tmp_path):
    from vocli.paths import find_weights_file, weights_dir

    monkeypatch.setenv("VOCLI_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    assert find_weights_file("yolov3.weights") == tmp_path.joinpath("yolov3.weights").relative_to(tmp_path)
    weights_dir().mkdir(parents=True)
    (weights_dir() / "yolov3.weights").write_bytes(b"x")
    assert find_weights_file("yolov3.weights") == weights_dir() / "yolov3.weights"
    (tmp_path / "yolov3.weights").write_bytes(b"here")  # a file in the working folder wins
    assert find_weights_file("yolov3.weights").resolve() == tmp_path / "yolov3.weights"
    assert find_weights_file("sub/yolov3.weights") == tmp_path.joinpath("sub/yolov3.weights").relative_to(tmp_path)


def test_staged_folder_appears_whole_or_not_at_all(tmp_path):
    target = tmp_path / "labels"
    with staged_folder(target) as stage:
        assert stage is not None and stage.parent == tmp_path and not target.exists()
        (stage / "a.txt").write_text("1")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels"]
    assert (target / "a.txt").read_text() == "1"
    # A folder with files in it is written in place (None), file by file.
    with staged_folder(target) as stage:
        assert stage is None


def test_failed_staged_run_leaves_nothing(tmp_path):
    target = tmp_path / "labels"
    target.mkdir()  # empty: still staged
    with pytest.raises(KeyboardInterrupt):
        with staged_folder(target) as stage:
            (stage / "a.txt").write_text("half")
            raise KeyboardInterrupt
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels"] and not any(target.iterdir())


def test_staged_folder_filled_meanwhile_is_a_clear_error(tmp_path):
    target = tmp_path / "labels"
    with pytest.raises(VocliError, match="filled by something else"):
        with staged_folder(target) as stage:
            (stage / "a.txt").write_text("mine")
            target.mkdir()
            (target / "b.txt").write_text("theirs")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels"]

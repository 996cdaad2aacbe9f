import os
import stat

import pytest

from vocli.paths import atomic_path, atomic_write_text, data_root, vocli_home


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

"""Hostile tars: cut short, folder/file clashes, members naming vocli's own files, bombs, --force over the source.

Each case checks the exit code, the one error line naming the file, and that the data root is unchanged
(hashed before and after) apart from the copy of the tar itself that `fetch` keeps.
"""

from __future__ import annotations

import gzip
import io
import json
import shutil
import tarfile

import pytest
from hostile_common import error_line, run, tree_state

BLOCK = 512


def tar_bytes(members: list[tuple[str, bytes]], mode: str = "w") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


MEMBERS = [("VOCdevkit/VOC2007/Annotations/000001.xml", b"<annotation/>" * 10),
           ("VOCdevkit/VOC2007/ImageSets/Main/train.txt", b"000001\n")]


def without_tar_copy(state: dict, name: str) -> dict:
    """The tree less the tar copy `fetch` keeps (with its checksum sidecar) and vocli's empty lock files."""
    return {k: v for k, v in state.items()
            if not (k == name or k.startswith(f".{name}.") or (k.startswith(".") and k.endswith(".lock")))}


def test_a_tar_cut_at_a_member_boundary_is_not_imported(tmp_path, capsys):
    whole = tar_bytes(MEMBERS)
    # header + 130 bytes of data padded to one block: the first member ends at 1024; no end marker follows
    cut = tmp_path / "cut.tar"
    cut.write_bytes(whole[:2 * BLOCK])
    with tarfile.open(cut) as tar:  # what Python's tarfile makes of it: one member, no error
        assert [m.name for m in tar.getmembers()] == [MEMBERS[0][0]]
    root = tmp_path / "root"
    root.mkdir()
    rc, err = run(capsys, "fetch", "--tar", cut, "--root", root)
    assert rc == 1
    assert f"{root / 'cut.tar'}: the archive is cut short (no end-of-archive marker after its last member)" \
        in error_line(err)
    assert without_tar_copy(tree_state(root), "cut.tar") == {}


@pytest.mark.parametrize("keep", [100, -8])
def test_a_cut_compressed_tar_is_not_imported(tmp_path, capsys, keep):
    data = gzip.compress(tar_bytes(MEMBERS))
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(data[:keep])
    root = tmp_path / "root"
    rc, err = run(capsys, "fetch", "--tar", cut, "--root", root)
    assert rc == 1
    line = error_line(err)
    assert str(root / "cut.tar.gz") in line and ("cut short" in line or "not a readable tar" in line)
    assert without_tar_copy(tree_state(root), "cut.tar.gz") == {}


def test_a_folder_file_clash_is_refused_before_anything_is_written(tmp_path, capsys):
    root = tmp_path / "root"
    voc = root / "VOCdevkit" / "VOC2007"
    (voc / "Annotations").mkdir(parents=True)
    (voc / "Annotations" / "000001.xml").write_text("the user's own annotation")
    (voc / "ImageSets").write_text("a file where the archive has a folder")
    before = tree_state(root)
    tar = tmp_path / "clash.tar"
    tar.write_bytes(tar_bytes(MEMBERS))  # Annotations/000001.xml comes first and would be merged first
    rc, err = run(capsys, "fetch", "--tar", tar, "--root", root)
    assert rc == 1
    assert (f"{voc / 'ImageSets'}: the archive clash.tar holds a folder there but a file is in the way"
            in error_line(err))
    assert without_tar_copy(tree_state(root), "clash.tar") == before


@pytest.mark.parametrize("member", [".vocli-fetch.json", "VOCdevkit/VOC2007/labels/.vocli-labels.cache",
                                    ".clash.tar.verified.json", "clash.tar"])
def test_members_never_touch_vocli_files(tmp_path, capsys, member):
    root = tmp_path / "root"
    root.mkdir()
    (root / ".vocli-fetch.json").write_text(json.dumps({"voc2007": {"kind": "dataset"}}))
    before = tree_state(root)
    tar = tmp_path / "clash.tar"
    tar.write_bytes(tar_bytes([*MEMBERS, (member, b"{}")]))
    rc, err = run(capsys, "fetch", "--tar", tar, "--root", root)
    assert rc == 1
    assert f"{tar_in_root(root)}: refusing to extract {member!r}" in error_line(err)
    after = tree_state(root)
    assert after[".vocli-fetch.json"] == before[".vocli-fetch.json"]
    assert not (root / "VOCdevkit").exists()


def tar_in_root(root):
    return root / "clash.tar"


def test_members_larger_than_the_free_space_are_refused_before_extracting(tmp_path, capsys, monkeypatch):
    big = tar_bytes([("VOCdevkit/VOC2007/JPEGImages/zeros.jpg", bytes(8 * 1024 * 1024))], mode="w:gz")
    assert len(big) < 64 * 1024  # 8 MiB of members from a small .tar.gz
    tar = tmp_path / "bomb.tar.gz"
    tar.write_bytes(big)
    root = tmp_path / "root"
    root.mkdir()
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage",
                        lambda p: real(p)._replace(free=4 * 1024 * 1024) if "root" in str(p) else real(p))
    rc, err = run(capsys, "fetch", "--tar", tar, "--root", root)
    assert rc == 1
    line = error_line(err)
    # 8,388,608 bytes of members + the 16 MiB margin - 4 MiB free = 20,971,520 more needed
    assert (f"{root / 'bomb.tar.gz'}: its members hold 8,388,608 bytes but {root} has 4,194,304 bytes free "
            f"(needs 20,971,520 more)") in line
    assert without_tar_copy(tree_state(root), "bomb.tar.gz") == {}


def test_force_never_deletes_the_source_tar(tmp_path, capsys):
    root = tmp_path / "R"
    root.mkdir()
    tar = root / "my.tar"
    data = tar_bytes(MEMBERS)
    tar.write_bytes(data)
    assert run(capsys, "fetch", "--tar", tar, "--root", root)[0] == 0
    rc, err = run(capsys, "fetch", "--tar", tar, "--root", root, "--force")
    assert rc == 0, err
    assert tar.read_bytes() == data
    assert not (root / "my.tar.part").exists()
    assert (root / "VOCdevkit" / "VOC2007" / "ImageSets" / "Main" / "train.txt").read_text() == "000001\n"


def test_a_wrong_checksum_on_the_source_in_place_keeps_it(tmp_path, capsys):
    root = tmp_path / "R"
    root.mkdir()
    tar = root / "my.tar"
    data = tar_bytes(MEMBERS)
    tar.write_bytes(data)
    rc, err = run(capsys, "fetch", "--tar", tar, "--root", root, "--md5", "0" * 32, "--force")
    assert rc == 1
    assert f"{tar}: md5 is " in error_line(err) and "left as it is" in err
    assert tar.read_bytes() == data
    assert not (root / "my.tar.part").exists() and not (root / "VOCdevkit").exists()


@pytest.mark.parametrize("mode, suffix", [("w:bz2", ".tar.bz2"), ("w:xz", ".tar.xz"), ("w:gz", ".tgz")])
def test_every_cut_compression_is_one_line(tmp_path, capsys, mode, suffix):
    data = tar_bytes(MEMBERS, mode=mode)
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(data[:-30])
    root = tmp_path / "root"
    rc, err = run(capsys, "fetch", "--tar", cut, "--root", root)
    assert rc == 1 and str(root / cut.name) in error_line(err)
    assert without_tar_copy(tree_state(root), cut.name) == {}

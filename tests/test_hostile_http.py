"""Hostile servers (a local 127.0.0.1 server, no network): cut tars, wrong bytes, members aimed at vocli's state.

Each case checks the exit code, the one error line naming the file, and what is left under the root.
"""

from __future__ import annotations

import hashlib
import json

from fetch_server import Fault, FileServer
from hostile_common import error_line, run, tree_state
from test_hostile_tar import MEMBERS, tar_bytes


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def test_a_served_tar_cut_at_a_member_boundary_downloads_but_is_not_imported(tmp_path, capsys):
    cut = tar_bytes(MEMBERS)[:1024]  # the first member whole, then nothing: no end-of-archive blocks
    root = tmp_path / "root"
    with FileServer({"/cut.tar": cut}) as server:
        rc, err = run(capsys, "fetch", server.url("/cut.tar"), "--md5", md5(cut), "--root", root)
    assert rc == 1
    assert f"{root / 'cut.tar'}: the archive is cut short" in error_line(err)
    assert (root / "cut.tar").read_bytes() == cut  # the verified download is kept; nothing was extracted
    assert not (root / "VOCdevkit").exists() and not list(root.glob(".vocli-extract-*"))


def test_wrong_bytes_leave_no_empty_part(tmp_path, capsys):
    good = tar_bytes(MEMBERS)
    root = tmp_path / "root"
    with FileServer({"/a.tar": good}) as server:
        server.add_faults("/a.tar", *[Fault("wrong", body=b"x" * len(good))] * 10)
        rc, err = run(capsys, "fetch", server.url("/a.tar"), "--md5", md5(good), "--root", root)
    assert rc == 1
    assert "could not fetch a.tar" in error_line(err)
    assert [p.name for p in root.iterdir() if p.name.endswith(".part")] == []
    assert not (root / "a.tar").exists()


def test_a_served_member_cannot_replace_the_fetch_state(tmp_path, capsys):
    root = tmp_path / "root"
    root.mkdir()
    state = {"voc2007": {"kind": "dataset", "files": {}}}
    (root / ".vocli-fetch.json").write_text(json.dumps(state))
    before = tree_state(root)
    evil = tar_bytes([*MEMBERS, (".vocli-fetch.json", b'{"voc2007": "gone"}')])
    with FileServer({"/evil.tar": evil}) as server:
        rc, err = run(capsys, "fetch", server.url("/evil.tar"), "--md5", md5(evil), "--root", root)
    assert rc == 1
    assert (f"{root / 'evil.tar'}: refusing to extract '.vocli-fetch.json': names one of vocli's own files"
            in error_line(err))
    assert tree_state(root)[".vocli-fetch.json"] == before[".vocli-fetch.json"]
    assert not (root / "VOCdevkit").exists()


def test_a_download_too_big_for_the_disk_is_refused_before_the_first_byte(tmp_path, capsys, monkeypatch):
    import shutil

    from vocli.datasets import registry
    from vocli.datasets.registry import DatasetSpec, RemoteFile, SplitCount

    data = tar_bytes(MEMBERS)
    spec = DatasetSpec("voc2007", "fake", (RemoteFile("VOCtrainval_06-Nov-2007.tar", 5_000_000, (), md5(data)),),
                       splits=(SplitCount("VOC2007", "train", 1),))
    monkeypatch.setattr(registry, "_SPECS", (spec,))
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=1_000_000))
    root = tmp_path / "root"
    with FileServer({"/VOCtrainval_06-Nov-2007.tar": data}) as server:
        rc, err = run(capsys, "fetch", "voc2007", "--root", root, "--mirror", server.base)
        assert server.requests == []
    assert rc == 1
    assert (f"{root / 'VOCtrainval_06-Nov-2007.tar'}: cannot write: needs 5,000,000 bytes, 1,000,000 free there "
            f"(4,000,000 more needed)") in error_line(err)

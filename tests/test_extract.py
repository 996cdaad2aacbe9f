"""Safe extraction: malicious members refused with nothing written, merging, interruption, packing."""

from __future__ import annotations

import errno
import io
import os
import posixpath
import tarfile
import time
from pathlib import Path

import pytest

from vocli.datasets import extract as ex
from vocli.datasets.extract import pack_tree, safe_extract
from vocli.errors import UnsafeArchiveError, VocliError, WriteError

from helpers import md5


def write_tar(path: Path, entries) -> Path:
    """entries: (name, kind, payload): kind file (payload bytes), dir, sym/hard (payload = link target), chr, fifo."""
    with tarfile.open(path, "w") as tar:
        for name, kind, payload in entries:
            info = tarfile.TarInfo(name)
            info.mode = 0o644
            if kind == "file":
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE, "hard": tarfile.LNKTYPE,
                         "chr": tarfile.CHRTYPE, "blk": tarfile.BLKTYPE, "fifo": tarfile.FIFOTYPE}[kind]
            if kind in ("sym", "hard"):
                info.linkname = payload
            if kind in ("chr", "blk"):
                info.devmajor, info.devminor = 1, 3
            tar.addfile(info)
    return path


def snapshot(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")}


GOOD = ("VOCdevkit/VOC2007/Annotations/000001.xml", "file", b"<annotation/>")

MALICIOUS = {
    "absolute path": [GOOD, ("{outside}/evil.txt", "file", b"x")],  # under the test's own folder
    "dotdot": [GOOD, ("VOCdevkit/../../evil.txt", "file", b"x")],
    "leading dotdot": [("../evil.txt", "file", b"x")],
    "symlink absolute": [GOOD, ("VOCdevkit/link", "sym", "/etc")],
    "symlink escaping": [GOOD, ("VOCdevkit/link", "sym", "../../outside")],
    "write through symlink": [("VOCdevkit/inner", "sym", "VOC2007"), ("VOCdevkit/inner/evil.txt", "file", b"x")],
    "hardlink escaping": [GOOD, ("VOCdevkit/hl", "hard", "../outside.txt")],
    "hardlink absolute": [GOOD, ("VOCdevkit/hl", "hard", "/etc/passwd")],
    "char device": [GOOD, ("VOCdevkit/null", "chr", None)],
    "block device": [GOOD, ("VOCdevkit/sda", "blk", None)],
    "fifo": [GOOD, ("VOCdevkit/pipe", "fifo", None)],
    # each link alone stays inside; followed on disk, y = VOCdevkit/up/.. = the target's parent
    "two-link chain": [GOOD, ("VOCdevkit/up", "sym", ".."), ("VOCdevkit/y", "sym", "up/..")],
    "two-link chain, links in reverse order": [("VOCdevkit/y", "sym", "up/.."), ("VOCdevkit/up", "sym", "..")],
    "hard link through a symlink": [GOOD, ("VOCdevkit/up", "sym", ".."), ("VOCdevkit/hl", "hard", "VOCdevkit/up/../x")],
    "symlink loop": [("VOCdevkit/a", "sym", "b"), ("VOCdevkit/b", "sym", "a")],
}


@pytest.mark.parametrize("data_filter", [True, False], ids=["data-filter", "no-data-filter"])
@pytest.mark.parametrize("case", sorted(MALICIOUS))
def test_malicious_tar_is_refused_and_nothing_is_written(tmp_path, monkeypatch, case, data_filter):
    """Refused by the member check alone too: Pythons before 3.9.17 / 3.10.12 / 3.11.4 lack the filter."""
    if not data_filter:
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    outside = tmp_path / "outside"
    outside.mkdir()
    target = outside / "target"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    entries = [(name.format(outside=outside), kind, payload) for name, kind, payload in MALICIOUS[case]]
    tar = write_tar(tmp_path / "evil.tar", entries)
    before_outside, before_target = snapshot(outside), snapshot(target)
    with pytest.raises(UnsafeArchiveError) as err:
        safe_extract(tar, target)
    assert "refusing to extract" in str(err.value)
    assert snapshot(outside) == before_outside and snapshot(target) == before_target


def test_two_link_chain_passes_a_per_link_check_but_not_the_member_check(tmp_path):
    members = [("VOCdevkit/up", "sym", ".."), ("VOCdevkit/y", "sym", "up/..")]
    tar = write_tar(tmp_path / "chain.tar", members)
    with tarfile.open(tar) as t:
        infos = t.getmembers()
        # lexically, VOCdevkit/up/.. is VOCdevkit: inside; on disk it is the target's parent
        assert posixpath.normpath("VOCdevkit/up/..") == "VOCdevkit"
        with pytest.raises(UnsafeArchiveError, match="'VOCdevkit/y'.*outside"):
            ex.check_members(tar, infos)
        ex.check_members(tar, infos[:1])  # `up -> ..` alone points at the target itself: fine


def test_links_inside_the_target_are_fine(tmp_path):
    tar = write_tar(tmp_path / "ok.tar", [
        GOOD, ("VOCdevkit/VOC2007/readme", "file", b"hello"),
        ("VOCdevkit/VOC2007/alias", "sym", "readme"), ("VOCdevkit/VOC2007/hard", "hard", "VOCdevkit/VOC2007/readme")])
    result = safe_extract(tar, tmp_path / "out")
    voc = tmp_path / "out" / "VOCdevkit" / "VOC2007"
    assert (voc / "alias").read_bytes() == b"hello" and (voc / "hard").read_bytes() == b"hello"
    assert result.top_level == ["VOCdevkit"] and result.files == 2 and result.members == 4


def test_trainval_and_test_merge_into_one_voc2007(tmp_path):
    trainval = write_tar(tmp_path / "trainval.tar", [
        ("VOCdevkit/VOC2007/Annotations/000001.xml", "file", b"a1"),
        ("VOCdevkit/VOC2007/ImageSets/Main/trainval.txt", "file", b"000001\n"),
    ])
    test = write_tar(tmp_path / "test.tar", [
        ("VOCdevkit/VOC2007/Annotations/000002.xml", "file", b"a2"),
        ("VOCdevkit/VOC2007/ImageSets/Main/test.txt", "file", b"000002\n"),
    ])
    root = tmp_path / "root"
    safe_extract(trainval, root)
    safe_extract(test, root)
    assert snapshot(root / "VOCdevkit" / "VOC2007") == {
        "Annotations", "Annotations/000001.xml", "Annotations/000002.xml",
        "ImageSets", "ImageSets/Main", "ImageSets/Main/trainval.txt", "ImageSets/Main/test.txt"}
    assert not [p for p in root.iterdir() if p.name.startswith(".vocli-extract")]


def test_interrupted_extraction_leaves_nothing_behind(tmp_path, monkeypatch):
    tar = write_tar(tmp_path / "t.tar", [(f"VOCdevkit/VOC2007/Annotations/{i:06d}.xml", "file", b"x") for i in range(6)])
    calls = {"n": 0}
    real_extract = tarfile.TarFile.extract

    def flaky(self, member, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real_extract(self, member, *args, **kwargs)

    monkeypatch.setattr(tarfile.TarFile, "extract", flaky)
    root = tmp_path / "root"
    with pytest.raises(KeyboardInterrupt):
        safe_extract(tar, root)
    assert list(root.iterdir()) == []  # no VOCdevkit, no temp folder


def test_replace_swaps_an_owned_folder(tmp_path):
    root = tmp_path / "root"
    old = root / "VOCdevkit" / "VOCshapes" / "Annotations"
    old.mkdir(parents=True)
    (old / "stale.xml").write_text("old")
    tar = write_tar(tmp_path / "s.tar", [("VOCdevkit/VOCshapes/Annotations/new.xml", "file", b"new")])
    safe_extract(tar, root, replace=("VOCdevkit/VOCshapes",))
    assert snapshot(root / "VOCdevkit" / "VOCshapes") == {"Annotations", "Annotations/new.xml"}


def test_file_where_folder_exists_is_an_error(tmp_path):
    root = tmp_path / "root"
    (root / "VOCdevkit" / "thing").mkdir(parents=True)
    tar = write_tar(tmp_path / "c.tar", [("VOCdevkit/thing", "file", b"x")])
    with pytest.raises(VocliError, match="in the way"):
        safe_extract(tar, root)


def test_not_a_tar(tmp_path):
    bad = tmp_path / "bad.tar"
    bad.write_bytes(b"this is not a tar archive" * 40)
    with pytest.raises(VocliError, match="not a readable tar"):
        safe_extract(bad, tmp_path / "out")


def test_pack_tree_is_reproducible_and_round_trips(tmp_path):
    src = tmp_path / "src"
    (src / "VOCdevkit" / "VOCshapes" / "JPEGImages").mkdir(parents=True)
    (src / "VOCdevkit" / "VOCshapes" / "JPEGImages" / "b.jpg").write_bytes(b"\xff\xd8b")
    (src / "VOCdevkit" / "VOCshapes" / "a.txt").write_text("a")
    first = pack_tree(src, "VOCdevkit", tmp_path / "one.tar")
    time.sleep(0.01)
    os.utime(src / "VOCdevkit" / "VOCshapes" / "a.txt", (1, 1))  # mtimes on disk do not leak in
    second = pack_tree(src, "VOCdevkit", tmp_path / "two.tar")
    digest = [md5(p.read_bytes()) for p in (first, second)]
    assert digest[0] == digest[1]
    with tarfile.open(first) as tar:
        names = tar.getnames()
        assert names == sorted(names) and names[0] == "VOCdevkit"
        assert all(m.mtime == ex.PACK_MTIME and m.uid == 0 for m in tar.getmembers())
    safe_extract(first, tmp_path / "back")
    assert (tmp_path / "back" / "VOCdevkit" / "VOCshapes" / "JPEGImages" / "b.jpg").read_bytes() == b"\xff\xd8b"


# --------------------------------------------------------------------------- exact behaviour (mutation testing)


def test_refusal_message_and_hint_in_full(tmp_path):
    tar = write_tar(tmp_path / "evil.tar", [("../evil.txt", "file", b"x")])
    with pytest.raises(UnsafeArchiveError) as err:
        safe_extract(tar, tmp_path / "out")
    assert err.value.args[0] == f"{tar}: refusing to extract '../evil.txt': '..' in the path"
    assert err.value.hint == "the archive is damaged or malicious; nothing was extracted"


@pytest.mark.parametrize("entries, why", [
    ([("/abs.txt", "file", b"x")], "absolute path"),
    ([("\\win.txt", "file", b"x")], "absolute path"),
    ([("C:/win.txt", "file", b"x")], "absolute path"),
    ([("a\\..\\b.txt", "file", b"x")], "'..' in the path"),
    ([("a/l", "sym", "/etc")], "symlink to the absolute path '/etc'"),
    ([("a/l", "sym", "\\etc")], "symlink to the absolute path '\\\\etc'"),
    ([("a/l", "sym", "D:/x")], "symlink to the absolute path 'D:/x'"),
    ([("a/l", "sym", "../..")], "symlink to '../..' points outside the target folder"),
    ([("a/h", "hard", "/etc/passwd")], "hard link to '/etc/passwd' outside the target folder"),
    ([("a/h", "hard", "C:/x")], "hard link to 'C:/x' outside the target folder"),
    ([("a/h", "hard", "../x")], "hard link to '../x' outside the target folder"),
    ([("a/l", "sym", "b"), ("a/l/f.txt", "file", b"x")], "writes through the link 'a/l'"),
    ([("a/h", "hard", "a/x"), ("a/h/f.txt", "file", b"x")], "writes through the link 'a/h'"),
    ([("a/d", "chr", None)], "device entries are not allowed"),
    ([("a/d", "blk", None)], "device entries are not allowed"),
    ([("a/p", "fifo", None)], "FIFO entries are not allowed"),
])
def test_each_refusal_names_its_reason(tmp_path, entries, why):
    tar = write_tar(tmp_path / "evil.tar", entries)
    with tarfile.open(tar) as t:
        with pytest.raises(UnsafeArchiveError) as err:
            ex.check_members(tar, t.getmembers())
    assert err.value.args[0] == f"{tar}: refusing to extract {entries[-1][0]!r}: {why}"


def test_escapes_and_resolve_by_hand():
    assert ex._escapes("..") and ex._escapes("../x") and not ex._escapes("..x") and not ex._escapes("a/..")
    assert ex._resolve("a/./b//c", {}) == "a/b/c"
    assert ex._resolve("a/../b", {}) == "b"
    assert ex._resolve("a/../..", {}) is None
    links = {"d/up": "..", "d/sub": "x/y", "d/abs": "/etc", "d/win": "\\x", "d/drive": "C:/x"}
    assert ex._resolve("d/up/d/sub", links) == "d/x/y"       # up -> the root, then d/sub -> d/x/y
    assert ex._resolve("d/up/..", links) is None               # the root's parent
    assert ex._resolve("d/sub/../z", links) == "d/x/z"        # .. after a link climbs from its target
    for name in ("d/abs", "d/win", "d/drive"):
        assert ex._resolve(name, links) is None
    # a chain of exactly 40 links resolves; 41 is treated as a loop (Linux's limit)
    chain = {f"c{i}": f"c{i + 1}" for i in range(40)}
    assert ex._resolve("c0", chain) == "c40"
    chain["c40"] = "c41"
    assert ex._resolve("c0", chain) is None


def test_extract_result_counts_and_progress(tmp_path):
    entries = [("VOCdevkit/", "dir", None)] + [(f"VOCdevkit/f{i:04d}", "file", b"x" * (i % 3)) for i in range(1000)]
    entries.append(("extra.txt", "file", b"12345"))
    tar = write_tar(tmp_path / "many.tar", entries)
    events = []
    result = safe_extract(tar, tmp_path / "out", progress=events.append)
    # sizes i % 3: 334 files of 0 bytes, 333 of 1, 333 of 2, and 5 bytes of extra.txt
    assert (result.members, result.files, result.bytes) == (1002, 1001, 333 * 1 + 333 * 2 + 5)
    assert result.top_level == ["VOCdevkit", "extra.txt"] and result.dest == tmp_path / "out"
    assert [(e.stage, e.label, e.done, e.total) for e in events] == [
        ("extract", "many.tar", 500, 1002), ("extract", "many.tar", 1000, 1002), ("extract", "many.tar", 1002, 1002)]


def test_merge_messages_name_what_is_in_the_way(tmp_path):
    root = tmp_path / "root"
    (root / "VOCdevkit" / "thing").mkdir(parents=True)
    tar = write_tar(tmp_path / "c.tar", [("VOCdevkit/thing", "file", b"x")])
    with pytest.raises(VocliError) as err:
        safe_extract(tar, root)
    assert err.value.args[0] == f"{root / 'VOCdevkit' / 'thing'}: the archive c.tar holds a file there but a folder is in the way"
    assert err.value.hint == "move it away or fetch into another --root; nothing was extracted"
    (root / "VOCdevkit" / "other").write_text("mine")
    tar = write_tar(tmp_path / "d.tar", [("VOCdevkit/other/inside.txt", "file", b"x")])
    with pytest.raises(VocliError) as err:
        safe_extract(tar, root)
    assert err.value.args[0] == f"{root / 'VOCdevkit' / 'other'}: the archive d.tar holds a folder there but a file is in the way"
    link = root / "VOCdevkit" / "dangling"
    link.symlink_to(tmp_path / "nowhere")
    tar = write_tar(tmp_path / "e.tar", [("VOCdevkit/dangling/inside.txt", "file", b"x")])
    with pytest.raises(VocliError, match="e.tar holds a folder there but a file is in the way"):
        safe_extract(tar, root)
    assert (root / "VOCdevkit" / "other").read_text() == "mine"


def test_replace_only_touches_the_named_folder_when_the_archive_has_it(tmp_path):
    root = tmp_path / "root"
    for name in ("VOCshapes", "VOC2007"):
        (root / "VOCdevkit" / name).mkdir(parents=True)
        (root / "VOCdevkit" / name / "old.xml").write_text("old")
    tar = write_tar(tmp_path / "s.tar", [("VOCdevkit/VOCshapes/new.xml", "file", b"new")])
    safe_extract(tar, root, replace=("VOCdevkit/VOCshapes", "VOCdevkit/VOC2007", "VOCdevkit/absent"))
    assert snapshot(root / "VOCdevkit") == {"VOCshapes", "VOCshapes/new.xml", "VOC2007", "VOC2007/old.xml"}


def test_damaged_archive_messages(tmp_path):
    bad = tmp_path / "bad.tar"
    bad.write_bytes(b"this is not a tar archive" * 40)
    with pytest.raises(VocliError) as err:
        safe_extract(bad, tmp_path / "out")
    assert err.value.args[0].startswith(f"{bad}: not a readable tar archive (")
    assert err.value.hint == "re-fetch it with --force"
    good = write_tar(tmp_path / "good.tar", [GOOD, ("VOCdevkit/b.txt", "file", b"y" * 2000)])
    cut = tmp_path / "cut.tar"
    cut.write_bytes(good.read_bytes()[:1536 + 700])  # the second member's data ends early
    with pytest.raises(VocliError) as err:
        safe_extract(cut, tmp_path / "out2")
    assert "damaged" in err.value.args[0] and err.value.hint == "re-fetch it with --force"
    assert not (tmp_path / "out2" / "VOCdevkit").exists()


@pytest.mark.parametrize("data_filter", [True, False], ids=["data-filter", "no-data-filter"])
def test_benign_archive_extracts_the_same_with_or_without_the_filter(tmp_path, monkeypatch, data_filter):
    if not data_filter:
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    tar = tmp_path / "ok.tar"
    with tarfile.open(tar, "w") as t:
        for name, kind, mode, payload in [("VOCdevkit/", tarfile.DIRTYPE, 0o700, b""),
                                          ("VOCdevkit/private.txt", tarfile.REGTYPE, 0o600, b"secret"),
                                          ("VOCdevkit/alias", tarfile.SYMTYPE, 0o777, b"private.txt")]:
            info = tarfile.TarInfo(name)
            info.type, info.mode = kind, mode
            if kind == tarfile.SYMTYPE:
                info.linkname = payload.decode()
                t.addfile(info)
            else:
                info.size = len(payload)
                t.addfile(info, io.BytesIO(payload) if payload else None)
    result = safe_extract(tar, tmp_path / "out")
    out = tmp_path / "out" / "VOCdevkit"
    assert (out / "alias").read_bytes() == b"secret" and os.readlink(out / "alias") == "private.txt"
    assert (out / "private.txt").stat().st_mode & 0o777 == 0o600  # files keep their mode
    assert (result.members, result.files, result.bytes, result.top_level) == (3, 1, 6, ["VOCdevkit"])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["VOCdevkit"]  # no temp folder left


@pytest.mark.parametrize("entries, link", [
    ([("l", "sym", "VOCdevkit"), ("l/f.txt", "file", b"x")], "l"),                  # a top-level link
    ([("a/l/f.txt", "file", b"x"), ("a/l", "sym", "elsewhere")], "a/l"),            # the link comes later
])
def test_writes_through_any_link_of_the_archive_are_refused(tmp_path, entries, link):
    tar = write_tar(tmp_path / "evil.tar", entries)
    with tarfile.open(tar) as t:
        with pytest.raises(UnsafeArchiveError, match=f"writes through the link '{link}'"):
            ex.check_members(tar, t.getmembers())


def test_merge_moves_across_file_systems(tmp_path, monkeypatch):
    # os.replace cannot cross devices (EXDEV): the merge falls back to a copying move
    real_replace, crossed = os.replace, []

    def cross_device(src, dst):
        if str(dst).startswith(str(tmp_path / "root")):
            crossed.append(dst)
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return real_replace(src, dst)

    monkeypatch.setattr(ex.os, "replace", cross_device)
    tar = write_tar(tmp_path / "t.tar", [GOOD])
    safe_extract(tar, tmp_path / "root")
    assert crossed and (tmp_path / "root" / GOOD[0]).read_bytes() == b"<annotation/>"


def test_merge_passes_on_other_os_errors(tmp_path, monkeypatch):
    def refuse(src, dst):
        raise OSError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(ex.os, "replace", refuse)
    with pytest.raises(OSError) as err:
        safe_extract(write_tar(tmp_path / "t.tar", [GOOD]), tmp_path / "root")
    assert err.value.errno == errno.EACCES


def test_pack_tree_member_attributes(tmp_path):
    src = tmp_path / "src"
    (src / "VOCdevkit" / "B").mkdir(parents=True)
    (src / "VOCdevkit" / "a.txt").write_text("aa")
    (src / "VOCdevkit" / "B" / "c.txt").write_text("c")
    (src / "VOCdevkit" / "link").symlink_to("a.txt")  # links are left out
    tar = pack_tree(src, "VOCdevkit", tmp_path / "p.tar")
    with tarfile.open(tar) as t:
        members = t.getmembers()
    assert [m.name for m in members] == ["VOCdevkit", "VOCdevkit/B", "VOCdevkit/B/c.txt", "VOCdevkit/a.txt"]
    assert [(m.type, m.mode, m.size) for m in members] == [
        (tarfile.DIRTYPE, 0o755, 0), (tarfile.DIRTYPE, 0o755, 0), (tarfile.REGTYPE, 0o644, 1), (tarfile.REGTYPE, 0o644, 2)]
    assert all((m.uid, m.gid, m.uname, m.gname, m.mtime) == (0, 0, "", "", ex.PACK_MTIME) for m in members)
    with pytest.raises(VocliError, match="nothing to pack"):
        pack_tree(src, "missing", tmp_path / "q.tar")


# --------------------------------------------------------------------------- more exact behaviour (mutation round 2)


def test_one_line_joins_lines_and_cuts_at_200():
    assert ex._one_line(ValueError("a\n  b\tc")) == "a b c"
    assert ex._one_line(ValueError("x" * 200)) == "x" * 200          # exactly the limit: kept whole
    assert ex._one_line(ValueError("x" * 201)) == "x" * 197 + "..."  # one over: 197 + 3 dots = 200
    assert ex._one_line(ValueError("abcdef"), limit=5) == "ab..."


class _Stream:
    """A tar's fileobj stand-in: serves ``data``, or raises ``error`` on the first read."""

    def __init__(self, data=b"", error=None):
        self.io, self.error = io.BytesIO(data), error

    def seek(self, offset):
        self.io.seek(offset)

    def read(self, n=-1):
        if self.error is not None:
            raise self.error
        return self.io.read(n)


class _Tar:
    def __init__(self, fileobj):
        self.fileobj, self.offset = fileobj, 0


def test_check_archive_end_by_hand(tmp_path):
    t = tmp_path / "x.tar"
    ex.check_archive_end(t, _Tar(_Stream(b"\0" * 1024)))                 # the two zero blocks: fine
    ex.check_archive_end(t, _Tar(_Stream(b"\0" * 1024 + b"junk" * 10)))  # only 1024 bytes are the marker
    for data in (b"\0" * 1023, b"\0" * 1023 + b"x"):                      # short, or not all zero
        with pytest.raises(VocliError) as err:
            ex.check_archive_end(t, _Tar(_Stream(data)))
        assert err.value.args[0] == f"{t}: the archive is cut short (no end-of-archive marker after its last member)"
        assert err.value.hint == "the download or copy is incomplete; fetch it again with --force"
    with pytest.raises(VocliError) as err:
        ex.check_archive_end(t, _Tar(_Stream(error=EOFError("stream ended"))))
    assert err.value.args[0] == f"{t}: the archive is cut short or damaged (EOFError: stream ended)"
    assert err.value.hint == "the download or copy is incomplete; fetch it again with --force"
    with pytest.raises(VocliError) as err:
        ex.check_archive_end(t, _Tar(_Stream(error=RuntimeError("odd codec"))))
    assert err.value.args[0] == f"{t}: damaged compressed stream (RuntimeError)"
    assert err.value.hint == "fetch it again with --force"


def test_vocli_owned_by_hand(tmp_path):
    dl, out = tmp_path / "dl", tmp_path / "out"
    dl.mkdir(), out.mkdir()
    tar = dl / "data.tar"
    assert ex._vocli_owned("a/.vocli-state.json", tar, out) == "names one of vocli's own files (.vocli*)"
    assert ex._vocli_owned(".x.lock", tar, out) == "names one of vocli's lock or checksum files"
    assert ex._vocli_owned(".x.verified.json", tar, out) == "names one of vocli's lock or checksum files"
    assert ex._vocli_owned(".hidden", tar, out) is None      # a dot alone is not a lock file
    assert ex._vocli_owned("x.lock", tar, out) is None       # a lock file name starts with a dot
    assert ex._vocli_owned("x.part", tar, out) == "names a download in progress (.part)"
    assert ex._vocli_owned("a/x.part", tar, out) is None     # only at the top
    assert ex._vocli_owned("data.tar", tar, out) is None     # the archive lives elsewhere
    assert ex._vocli_owned("data.tar", tar, dl) == "would replace the archive being extracted"
    assert ex._vocli_owned(".data.tar.lock", tar, dl) == "names one of vocli's lock or checksum files"


def test_vocli_owned_member_is_refused_with_its_reason(tmp_path):
    tar = write_tar(tmp_path / "t.tar", [GOOD, ("x.part", "file", b"x")])
    with pytest.raises(UnsafeArchiveError) as err:
        safe_extract(tar, tmp_path / "out")
    assert err.value.args[0] == f"{tar}: refusing to extract 'x.part': names a download in progress (.part)"


def test_unknown_member_type_is_a_special_file(tmp_path):
    # tarfile keeps a type it does not know (here 'Z'): neither file, folder, link, device nor FIFO
    tar = tmp_path / "odd.tar"
    with tarfile.open(tar, "w") as t:
        info = tarfile.TarInfo("a/odd")
        info.type = b"Z"
        t.addfile(info)
    with pytest.raises(UnsafeArchiveError) as err:
        safe_extract(tar, tmp_path / "out")
    assert err.value.args[0] == f"{tar}: refusing to extract 'a/odd': special file entries are not allowed"
    assert not (tmp_path / "out" / "a").exists()


def test_hard_link_to_a_backslash_path_is_refused(tmp_path):
    tar = write_tar(tmp_path / "evil.tar", [("a/h", "hard", "\\etc")])
    with tarfile.open(tar) as t, pytest.raises(UnsafeArchiveError) as err:
        ex.check_members(tar, t.getmembers())
    assert err.value.args[0] == f"{tar}: refusing to extract 'a/h': hard link to '\\\\etc' outside the target folder"


MERGE_HINT = "move it away or fetch into another --root; nothing was extracted"


def test_check_merge_messages_for_each_place(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "VOCdevkit").write_text("mine")  # a file where the first folder level goes
    tar = write_tar(tmp_path / "a.tar", [("VOCdevkit/a/b.txt", "file", b"x")])
    with pytest.raises(VocliError) as err:
        safe_extract(tar, root)
    assert err.value.args[0] == f"{root / 'VOCdevkit'}: the archive a.tar holds a folder there but a file is in the way"
    assert err.value.hint == MERGE_HINT
    (root / "VOCdevkit").unlink()
    (root / "VOCdevkit").mkdir()
    (root / "VOCdevkit" / "d").write_text("mine")  # a file where a folder member goes
    tar = write_tar(tmp_path / "b.tar", [("VOCdevkit/", "dir", None), ("VOCdevkit/d/", "dir", None)])
    with pytest.raises(VocliError) as err:
        safe_extract(tar, root)
    assert err.value.args[0] == f"{root / 'VOCdevkit' / 'd'}: the archive b.tar holds a folder there but a file is in the way"
    assert err.value.hint == MERGE_HINT
    (root / "VOCdevkit" / "d").unlink()
    (root / "VOCdevkit" / "d").symlink_to(tmp_path / "nowhere")  # a dangling link counts as a file
    with pytest.raises(VocliError) as err:
        safe_extract(tar, root)
    assert err.value.args[0] == f"{root / 'VOCdevkit' / 'd'}: the archive b.tar holds a folder there but a file is in the way"
    assert snapshot(root) == {"VOCdevkit", "VOCdevkit/d"}


def test_folder_members_merge_into_existing_folders(tmp_path):
    tar = write_tar(tmp_path / "d.tar", [("VOCdevkit/", "dir", None), ("VOCdevkit/A/", "dir", None),
                                         ("VOCdevkit/A/x.txt", "file", b"x")])
    root = tmp_path / "root"
    safe_extract(tar, root)
    (root / "VOCdevkit" / "A" / "x.txt").unlink()
    (root / "VOCdevkit" / "A" / "mine.txt").write_text("mine")
    safe_extract(tar, root)  # the same folders again: merged, not "in the way"
    assert snapshot(root) == {"VOCdevkit", "VOCdevkit/A", "VOCdevkit/A/x.txt", "VOCdevkit/A/mine.txt"}


def test_merge_checks_go_on_after_an_owned_or_dot_member(tmp_path):
    root = tmp_path / "root"
    (root / "VOCdevkit" / "thing").mkdir(parents=True)
    for first in ("VOCdevkit/VOCshapes/a.xml", "./"):
        tar = write_tar(tmp_path / "c.tar", [(first, "dir" if first == "./" else "file", b"a"),
                                             ("VOCdevkit/thing", "file", b"x")])
        with pytest.raises(VocliError) as err:
            safe_extract(tar, root, replace=("VOCdevkit/VOCshapes",))
        assert err.value.args[0] == (f"{root / 'VOCdevkit' / 'thing'}: the archive c.tar holds a file there "
                                     "but a folder is in the way")
        assert err.value.hint == MERGE_HINT


def test_owned_folder_skips_the_pre_flight_check_and_replaces_what_is_there(tmp_path):
    root = tmp_path / "root"
    old = root / "VOCdevkit" / "VOCshapes"
    old.mkdir(parents=True)
    (old / "Annotations").write_text("a file where the archive has a folder")
    tar = write_tar(tmp_path / "s.tar", [("VOCdevkit/VOCshapes/Annotations/new.xml", "file", b"new")])
    safe_extract(tar, root, replace=("VOCdevkit/VOCshapes",))
    assert (old / "Annotations" / "new.xml").read_bytes() == b"new"


def test_owned_folder_with_a_file_in_its_place_is_refused_before_anything_is_written(tmp_path):
    root = tmp_path / "root"
    (root / "VOCdevkit").mkdir(parents=True)
    (root / "VOCdevkit" / "VOCshapes").write_text("mine")
    # "AAA" sorts before "VOCshapes": a check made only while merging would have moved it in already
    tar = write_tar(tmp_path / "s.tar", [("VOCdevkit/AAA/x.txt", "file", b"x"),
                                         ("VOCdevkit/VOCshapes/a.xml", "file", b"new")])
    with pytest.raises(VocliError) as err:
        safe_extract(tar, root, replace=("VOCdevkit/VOCshapes",))
    assert err.value.args[0] == (f"{root / 'VOCdevkit' / 'VOCshapes'}: the archive s.tar holds a folder there "
                                 "but a file is in the way")
    assert err.value.hint == "move it away or fetch into another --root; nothing was extracted"
    assert sorted(p.name for p in (root / "VOCdevkit").iterdir()) == ["VOCshapes"]
    assert (root / "VOCdevkit" / "VOCshapes").read_text() == "mine"


def test_merge_refuses_what_only_it_can_see(tmp_path):
    # an owned path that is a folder is removed only when the archive holds a folder there too: _merge meets the clash
    root = tmp_path / "root"
    tar = write_tar(tmp_path / "s.tar", [("VOCdevkit/VOCshapes/a.xml", "file", b"new")])
    (root / "VOCdevkit" / "VOCshapes" / "a.xml").mkdir(parents=True)
    with pytest.raises(VocliError) as err:
        safe_extract(tar, root, replace=("VOCdevkit/VOCshapes/a.xml",))
    assert err.value.args[0] == (f"{root / 'VOCdevkit' / 'VOCshapes' / 'a.xml'}: the archive holds a file there "
                                 "but a folder is in the way")
    assert err.value.hint == "move it away or fetch into another --root"


def test_space_check_boundary_and_hint(tmp_path, monkeypatch):
    tar = write_tar(tmp_path / "t.tar", [("a.txt", "file", b"12345")])
    monkeypatch.setattr(ex, "free_bytes", lambda dest: 5 + ex.FREE_SPACE_MARGIN)  # exactly enough
    safe_extract(tar, tmp_path / "ok")
    monkeypatch.setattr(ex, "free_bytes", lambda dest: 4 + ex.FREE_SPACE_MARGIN)  # one byte short
    with pytest.raises(VocliError) as err:
        safe_extract(tar, tmp_path / "short")
    free = 4 + 16 * 1024 * 1024
    assert err.value.args[0] == f"{tar}: its members hold 5 bytes but {tmp_path / 'short'} has {free:,} bytes free (needs 1 more)"
    assert err.value.hint == "free some space or fetch into another --root; nothing was extracted"


def test_dest_is_created_with_its_parents_and_the_work_folder_sits_inside(tmp_path, monkeypatch):
    seen = []
    real_extract = tarfile.TarFile.extract

    def spy(self, member, path, *args, **kwargs):
        seen.append(Path(path))
        return real_extract(self, member, path, *args, **kwargs)

    monkeypatch.setattr(tarfile.TarFile, "extract", spy)
    dest = tmp_path / "a" / "b"
    events = []
    safe_extract(write_tar(tmp_path / "t.tar", [GOOD]), dest, progress=events.append)
    assert (dest / GOOD[0]).read_bytes() == b"<annotation/>"
    assert len(seen) == 1 and seen[0].parent == dest and seen[0].name.startswith(".vocli-extract-")
    assert [(e.done, e.total) for e in events] == [(1, 1)]  # one member: one event at 1 of 1


@pytest.mark.parametrize("data_filter", [True, False], ids=["data-filter", "no-data-filter"])
def test_modes_and_times_with_and_without_the_filter(tmp_path, monkeypatch, data_filter):
    if not data_filter:
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    tar = tmp_path / "m.tar"
    with tarfile.open(tar, "w") as t:
        d = tarfile.TarInfo("VOCdevkit")
        d.type, d.mode, d.mtime = tarfile.DIRTYPE, 0o700, 1
        t.addfile(d)
        f = tarfile.TarInfo("VOCdevkit/f.txt")
        f.mode, f.mtime, f.size = 0o666, 1_000_000, 1
        t.addfile(f, io.BytesIO(b"f"))
        e = tarfile.TarInfo("VOCdevkit/empty")  # nothing is written into it after it is made
        e.type, e.mode, e.mtime = tarfile.DIRTYPE, 0o700, 1
        t.addfile(e)
    safe_extract(tar, tmp_path / "out")
    out = tmp_path / "out" / "VOCdevkit"
    # the data filter drops group/other write bits; without it the archive's mode stays
    assert (out / "f.txt").stat().st_mode & 0o777 == (0o644 if data_filter else 0o666)
    assert (out / "f.txt").stat().st_mtime == 1_000_000  # files keep their time
    assert (out / "empty").stat().st_mtime > 1_000_000   # folders get no attributes (not the archive's 1)


def test_a_filter_refusal_is_an_unsafe_archive_error(tmp_path, monkeypatch):
    # a second line of defence refusing what the member check let through (the name "data" is looked up here)
    elsewhere = tmp_path / "elsewhere"  # only named in the message; nothing is written there

    def refuse(member, dest_path):
        raise tarfile.OutsideDestinationError(member, str(elsewhere))

    monkeypatch.setitem(tarfile._NAMED_FILTERS, "data", refuse)
    tar = write_tar(tmp_path / "t.tar", [GOOD])
    with pytest.raises(UnsafeArchiveError) as err:
        safe_extract(tar, tmp_path / "out")
    assert err.value.args[0] == (f"{tar}: refusing to extract {GOOD[0]!r}: {GOOD[0]!r} would be extracted to "
                                 f"{str(elsewhere)!r}, which is outside the destination")
    assert not (tmp_path / "out" / "VOCdevkit").exists()


@pytest.mark.parametrize("code, message", [
    (errno.EACCES, "cannot write: permission denied"),  # a creating failure: named only with creating=True
    (errno.EIO, None),                                   # not a write failure: passed on as it is
])
def test_write_failures_while_extracting(tmp_path, monkeypatch, code, message):
    def fail(self, member, *args, **kwargs):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(tarfile.TarFile, "extract", fail)
    tar = write_tar(tmp_path / "t.tar", [GOOD])
    with pytest.raises(OSError if message is None else WriteError) as err:
        safe_extract(tar, tmp_path / "out")
    if message is None:
        assert err.value.errno == errno.EIO
    else:
        assert err.value.args[0] == f"{tmp_path / 'out' / GOOD[0]}: {message}"
        assert err.value.hint == "write it elsewhere"


def test_damaged_member_and_damaged_listing_messages(tmp_path, monkeypatch):
    good = write_tar(tmp_path / "good.tar", [GOOD, ("VOCdevkit/b.txt", "file", b"y" * 2000)])
    cut = tmp_path / "cut.tar"
    cut.write_bytes(good.read_bytes()[:1536 + 700])  # the second member's data ends early: the listing fails
    with pytest.raises(VocliError) as err:
        safe_extract(cut, tmp_path / "out")
    assert err.value.args[0] == f"{cut}: damaged tar archive (unexpected end of data)"

    def damaged(self, member, *args, **kwargs):  # a member whose data fails to read once listed
        raise tarfile.ReadError("bad\ndata")

    monkeypatch.setattr(tarfile.TarFile, "extract", damaged)
    with pytest.raises(VocliError) as err:
        safe_extract(good, tmp_path / "out2")
    assert err.value.args[0] == f"{good}: damaged tar member {GOOD[0]!r} (bad data)"
    assert err.value.hint == "re-fetch it with --force"


def test_not_a_tar_names_tarfile_reason(tmp_path):
    bad = tmp_path / "bad.tar"
    bad.write_bytes(b"this is not a tar archive" * 40)
    with pytest.raises(VocliError) as err:
        safe_extract(bad, tmp_path / "out")
    # tarfile lists each method it tried, one per line: joined onto one line and cut to 200 characters
    head = f"{bad}: not a readable tar archive ("
    assert err.value.args[0].startswith(head + "file could not be opened successfully: - method gz: ReadError(")
    reason = err.value.args[0][len(head):-1]
    assert len(reason) == 200 and reason.endswith("...") and "\n" not in reason


def test_dot_member_is_not_a_top_level_name(tmp_path):
    tar = write_tar(tmp_path / "dot.tar", [("./", "dir", None), ("./VOCdevkit/a.txt", "file", b"a")])
    result = safe_extract(tar, tmp_path / "out")
    assert result.top_level == ["VOCdevkit"] and (tmp_path / "out" / "VOCdevkit" / "a.txt").read_bytes() == b"a"


def test_pack_tree_order_format_and_links_in_the_middle(tmp_path):
    src = tmp_path / "src"
    (src / "VOCdevkit" / "a").mkdir(parents=True)
    (src / "VOCdevkit" / "a" / "c.txt").write_text("c")
    (src / "VOCdevkit" / "a-b.txt").write_text("ab")
    (src / "VOCdevkit" / "k").symlink_to("a-b.txt")  # left out; "z.txt" after it is still packed
    (src / "VOCdevkit" / "z.txt").write_text("z")
    tar = pack_tree(src, "VOCdevkit", tmp_path / "p.tar")
    with tarfile.open(tar) as t:
        names = t.getnames()
    # sorted as strings: "-" (0x2d) comes before "/" (0x2f), so a-b.txt precedes the folder a's contents
    assert names == ["VOCdevkit", "VOCdevkit/a", "VOCdevkit/a-b.txt", "VOCdevkit/a/c.txt", "VOCdevkit/z.txt"]
    assert tar.read_bytes()[257:265] == b"ustar  \0"  # GNU format's magic and version (POSIX has "ustar\000")

"""fetch / verify / datasets end to end: library and CLI, against fake VOC tars on a local server."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
from fetch_server import FileServer, closed_port_url, fail_invalid_names
from helpers import md5

from vocli.cli.app import main
from vocli.datasets import registry
from vocli.datasets.registry import DatasetSpec, FolderCount, RemoteFile, SplitCount
from vocli.errors import ChecksumMismatch, VocliError
from vocli.fetch import fetch, list_datasets, verify


def voc_tar(ids: list[str], split: str, year: str = "2007") -> bytes:
    """A VOC-layout tar (independent writer): an XML and a JPEG per id plus the split list."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(f"VOCdevkit/VOC{year}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        for i in ids:
            add(f"Annotations/{i}.xml", f"<annotation><filename>{i}.jpg</filename></annotation>".encode())
            add(f"JPEGImages/{i}.jpg", b"\xff\xd8" + i.encode())
        add(f"ImageSets/Main/{split}.txt", "".join(f"{i}\n" for i in ids).encode())
    return buf.getvalue()


TRAINVAL = voc_tar([f"{i:06d}" for i in (1, 2, 3, 5)], "trainval")
TEST = voc_tar([f"{i:06d}" for i in (4, 6, 7)], "test")
WEIGHTS = bytes(range(256)) * 40


@pytest.fixture
def fake_registry(monkeypatch):
    """Registry entries with the fake tars' sizes and md5s and no built-in mirrors (tests never go online)."""
    specs = (
        DatasetSpec("voc2007", "fake trainval", (RemoteFile("VOCtrainval_06-Nov-2007.tar", len(TRAINVAL), (), md5(TRAINVAL)),),
                    splits=(SplitCount("VOC2007", "trainval", 4),), folders=(FolderCount("VOC2007", "Annotations", 4),)),
        DatasetSpec("voc2007-test", "fake test", (RemoteFile("VOCtest_06-Nov-2007.tar", len(TEST), (), md5(TEST)),),
                    splits=(SplitCount("VOC2007", "test", 3),)),
        DatasetSpec("voc07", "both", (), kind="group", members=("voc2007", "voc2007-test")),
        DatasetSpec("tiny.weights", "fake weights", (RemoteFile("tiny.weights", len(WEIGHTS), (), md5(WEIGHTS)),),
                    kind="weights", aliases=("tiny",)),
        registry.get_spec("shapes"),
    )
    monkeypatch.setattr(registry, "_SPECS", specs)
    return specs


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("VOCLI_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("VOCLI_MIRRORS", raising=False)
    return tmp_path / "home"


@pytest.fixture
def server():
    files = {"/voc/VOCtrainval_06-Nov-2007.tar": TRAINVAL, "/voc/VOCtest_06-Nov-2007.tar": TEST,
             "/w/tiny.weights": WEIGHTS, "/any/custom.tar": TEST}
    with FileServer(files) as srv:
        yield srv


def test_group_fetch_merges_verifies_and_skips_second_time(fake_registry, home, server):
    result = fetch(["voc07"], mirrors=[server.url("/voc/")])
    voc = home / "data" / "VOCdevkit" / "VOC2007"
    assert sorted(p.name for p in (voc / "Annotations").iterdir()) == [f"{i:06d}.xml" for i in range(1, 8)]
    assert {i.name: i.splits for i in result.items} == {"voc2007": {"VOC2007/trainval": 4}, "voc2007-test": {"VOC2007/test": 3}}
    assert all(f.md5 == md5(TRAINVAL if i.name == "voc2007" else TEST) for i in result.items for f in i.files)
    assert verify(["voc07"]).ok
    requests = len(server.requests)
    again = fetch(["voc07"], mirrors=[server.url("/voc/")])
    assert all(f.skipped for i in again.items for f in i.files) and len(server.requests) == requests
    status = {d.name: d for d in list_datasets().datasets}
    assert status["voc2007"].extracted and status["voc2007"].files[0].verified


def test_verify_detects_a_deleted_annotation_and_cli_exits_1(fake_registry, home, server, capsys):
    fetch(["voc2007"], mirrors=[server.url("/voc/")])
    (home / "data" / "VOCdevkit" / "VOC2007" / "Annotations" / "000003.xml").unlink()
    result = verify(["voc2007"])
    assert not result.ok
    split = result.items[0].splits[0]
    assert split.missing_annotations == 1 and split.missing_images == 0
    assert split.examples == ["VOC2007/Annotations/000003.xml"]
    capsys.readouterr()
    assert main(["verify", "voc2007", "--json"]) == 1
    out, err = capsys.readouterr()
    assert json.loads(out)["ok"] is False
    assert "error:" in err and "000003.xml" in err


def test_verify_detects_corrupt_tar(fake_registry, home, server):
    fetch(["voc2007"], mirrors=[server.url("/voc/")], extract=False)
    tar = home / "data" / "VOCtrainval_06-Nov-2007.tar"
    data = bytearray(tar.read_bytes())
    data[700] ^= 0xFF
    tar.write_bytes(bytes(data))
    item = verify([str(tar)]).items[0]
    assert not item.ok and "md5" in item.tar_status


def test_delete_tar_and_no_extract(fake_registry, home, server):
    kept = fetch(["voc2007-test"], mirrors=[server.url("/voc/")], extract=False)
    assert kept.items[0].files[0].path.is_file() and not (home / "data" / "VOCdevkit").exists()
    deleted = fetch(["voc2007-test"], mirrors=[server.url("/voc/")], keep_tar=False)
    assert deleted.items[0].files[0].deleted and not (home / "data" / "VOCtest_06-Nov-2007.tar").exists()
    assert verify(["voc2007-test"]).ok  # tree checked; an absent tar is fine once extracted


def test_import_local_tar_offline(fake_registry, home, tmp_path):
    src = tmp_path / "VOCtrainval_06-Nov-2007.tar"
    src.write_bytes(TRAINVAL)
    result = fetch(tar=src)  # recognised by its file name, checked against the registry md5
    assert result.items[0].name == "voc2007" and result.items[0].splits == {"VOC2007/trainval": 4}
    wrong = tmp_path / "other" / "VOCtrainval_06-Nov-2007.tar"
    wrong.parent.mkdir()
    wrong.write_bytes(TEST)
    with pytest.raises(ChecksumMismatch) as err:  # same size, other bytes: the md5 tells
        fetch(["voc2007"], tar=wrong, force=True)
    text = str(err.value)
    assert text.startswith(f"{wrong}: md5 {md5(TEST)} is wrong, expected {md5(TRAINVAL)}")
    assert "mirror" not in text and "--tar" not in text


def test_cli_tar_of_the_wrong_size_talks_about_the_file(fake_registry, home, tmp_path, capsys):
    short = tmp_path / "VOCtrainval_06-Nov-2007.tar"
    short.write_bytes(TRAINVAL[:1000])
    rc = main(["fetch", "--tar", str(short)])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("error:") == 1
    assert f"{short}: 1,000 bytes, but VOCtrainval_06-Nov-2007.tar is {len(TRAINVAL):,} bytes" in err
    assert "mirror" not in err and "--tar" not in err  # a local file's failure is about the file
    data = home / "data"
    assert sorted(p.name for p in data.iterdir()) == [] if data.exists() else True  # no .part, no lock


def test_unknown_tar_says_where_it_went_and_a_rerun_keeps_its_facts(fake_registry, home, tmp_path, capsys):
    src = tmp_path / "custom.tar"
    src.write_bytes(TEST)
    root = home / "data"
    assert main(["fetch", "--tar", str(src)]) == 0
    assert f"custom.tar: extracted to {root / 'VOCdevkit'}" in capsys.readouterr().err
    assert main(["fetch", "--tar", str(src), "--json"]) == 0  # already extracted: skipped
    again = json.loads(capsys.readouterr().out)["items"][0]
    assert again["files"][0]["skipped"] and again["files"][0]["size"] == len(TEST)
    assert again["files"][0]["md5"] == md5(TEST)
    assert again["extracted_to"] == [str(root / "VOCdevkit")]


def test_cli_offline_one_line_per_mirror_and_nothing_left(fake_registry, home, capsys, monkeypatch):
    fail_invalid_names(monkeypatch)
    with closed_port_url("/voc/") as refused:
        mirrors = [refused, "http://mirror-a.invalid/voc/", "http://mirror-b.invalid/voc/"]
        rc = main(["fetch", "voc2007", *[a for m in mirrors for a in ("--mirror", m)]])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("error:") == 1
    notes = [line for line in err.splitlines() if " failed: " in line]
    assert len(notes) == 3 and "retrying" not in err  # one line per mirror, then the error
    assert "connection refused (gave up after 2 tries)" in notes[0]
    assert all("host name not found (gave up after 2 tries)" in line for line in notes[1:])
    assert "from any of 3 mirrors" in err.splitlines()[-1]
    assert not (home / "data").exists()  # nothing was created: no .part, no lock, no empty folder


def test_url_with_md5_and_unknown_url_without(fake_registry, home, server):
    result = fetch([server.url("/any/custom.tar")], md5=md5(TEST))
    assert result.items[0].kind == "url" and (home / "data" / "VOCdevkit" / "VOC2007" / "ImageSets" / "Main" / "test.txt").is_file()
    with pytest.raises(VocliError, match="--md5"):
        fetch([server.url("/any/custom.tar")])


def test_weights_are_stored_unextracted(fake_registry, home, server):
    result = fetch(["tiny"], mirrors=[server.url("/w/")])
    path = home / "weights" / "tiny.weights"
    assert path.read_bytes() == WEIGHTS and result.items[0].files[0].path == path
    assert not result.items[0].files[0].extracted


def test_env_mirrors_come_after_flag_mirrors_and_before_builtin(monkeypatch):
    monkeypatch.setenv("VOCLI_MIRRORS", "http://env-a/x/, http://env-b/")
    from vocli.datasets.fetch import user_mirrors

    mirrors = user_mirrors(["https://flag/"])
    assert mirrors == ("https://flag/", "http://env-a/x/", "http://env-b/")
    urls = registry.get_spec("voc2007").files[0].urls(mirrors)
    assert urls[:3] == ["https://flag/VOCtrainval_06-Nov-2007.tar", "http://env-a/x/VOCtrainval_06-Nov-2007.tar",
                        "http://env-b/VOCtrainval_06-Nov-2007.tar"]
    assert "http://host.robots.ox.ac.uk/pascal/VOC/voc2007/VOCtrainval_06-Nov-2007.tar" in urls
    assert "https://pjreddie.com/media/files/VOCtrainval_06-Nov-2007.tar" in urls


def test_registry_published_facts():
    sizes = {f.filename: (f.size, f.md5) for s in registry.all_specs() for f in s.files}
    assert sizes["VOCtrainval_06-Nov-2007.tar"] == (460032000, "c52e279531787c972589f7e41ab4ae64")
    assert sizes["VOCtest_06-Nov-2007.tar"] == (451020800, "b6e924de25625d8de591ea690078ad9f")
    assert sizes["VOCtrainval_11-May-2012.tar"] == (1999639040, "6cd6e144f989b92b3379bac3b3de84fd")
    assert sizes["yolov3.weights"][0] == 248007048 and sizes["darknet53.conv.74"] == (162482580, None)
    assert [s.name for s in registry.expand(["voc0712", "voc2007"])] == ["voc2007", "voc2007-test", "voc2012"]
    with pytest.raises(VocliError, match="known: voc2007"):
        registry.get_spec("voc2099")


def test_cli_all_mirrors_down_is_one_error_line(fake_registry, home, capsys):
    with closed_port_url("/voc/") as dead:
        rc = main(["fetch", "voc2007", "--mirror", dead, "--retries", "0"])
    out, err = capsys.readouterr()
    assert rc == 1 and out == ""
    assert err.count("error:") == 1 and "connection refused" in err and "--tar" in err


def test_cli_fetch_json_and_datasets(fake_registry, home, server, capsys):
    assert main(["fetch", "voc2007", "--mirror", server.url("/voc/"), "--json"]) == 0
    out, _ = capsys.readouterr()
    doc = json.loads(out)
    assert doc["items"][0]["files"][0]["md5"] == md5(TRAINVAL)
    assert main(["datasets", "--json"]) == 0
    listed = {d["name"]: d for d in json.loads(capsys.readouterr().out)["datasets"]}
    assert listed["voc2007"]["extracted"] and not listed["voc2007-test"]["extracted"]
    assert main(["fetch", "--list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["datasets"][0]["name"] == "voc2007"


def _fake_generate_shapes(root, images=1000, size=256, seed=0, progress=None):
    """Stand-in generator (the contract's layout) so packing/verify are tested on their own."""
    voc = Path(root) / "VOCdevkit" / "VOCshapes"
    (voc / "ImageSets" / "Main").mkdir(parents=True)
    (voc / "Annotations").mkdir()
    (voc / "JPEGImages").mkdir()
    ids = [f"{seed}{i:05d}" for i in range(images)]
    for i in ids:
        (voc / "Annotations" / f"{i}.xml").write_text(f"<annotation><size><width>{size}</width></size></annotation>")
        (voc / "JPEGImages" / f"{i}.jpg").write_bytes(b"\xff\xd8" + i.encode())
    half = images // 2
    for split, chosen in (("train", ids[:half]), ("test", ids[half:]), ("trainval", ids[:half])):
        (voc / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{i}\n" for i in chosen))


def test_shapes_packed_and_fetched_like_a_download(home, monkeypatch):
    import vocli.datasets.shapes as shapes_module

    monkeypatch.setattr(shapes_module, "generate_shapes", _fake_generate_shapes)
    first = fetch(["shapes"], images=6, size=64, seed=1)
    item = first.items[0]
    assert item.splits == {"VOCshapes/train": 3, "VOCshapes/test": 3, "VOCshapes/trainval": 3}
    tar = home / "data" / "VOCshapes.tar"
    assert item.files[0].md5 == md5(tar.read_bytes()) and item.files[0].size == tar.stat().st_size
    with tarfile.open(tar) as t:
        assert all(n.startswith("VOCdevkit") for n in t.getnames())
    assert fetch(["shapes"], images=6, size=64, seed=1).items[0].files[0].skipped
    assert first.items[0].replaced is None and fetch(["shapes"], images=6, size=64, seed=1).items[0].replaced is None
    smaller = fetch(["shapes"], images=2, size=64, seed=1)  # new parameters replace the old tree, and say so
    assert not smaller.items[0].files[0].skipped
    assert smaller.items[0].replaced == ("replaced the shapes set generated with images=6, size=64, seed=1 "
                                         "by this one of 2 images (size 64, seed 1)")
    assert len(list((home / "data" / "VOCdevkit" / "VOCshapes" / "Annotations").iterdir())) == 2
    assert verify(["shapes"]).ok


@pytest.mark.slow
def test_cli_fetch_shapes_json_with_the_real_generator(home, capsys):
    assert main(["fetch", "shapes", "--images", "12", "--size", "64", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    splits = doc["items"][0]["splits"]
    assert splits["VOCshapes/trainval"] + splits["VOCshapes/test"] == 12
    assert main(["verify", "shapes"]) == 0


def test_relative_root_works(home, monkeypatch, tmp_path):
    import vocli.datasets.shapes as shapes_module

    monkeypatch.setattr(shapes_module, "generate_shapes", _fake_generate_shapes)
    monkeypatch.chdir(tmp_path)
    result = fetch(["shapes"], root="rel-data", images=4, size=64, seed=1)
    assert result.root == (tmp_path / "rel-data").resolve() or str(result.root) == str((tmp_path / "rel-data").resolve())
    assert (tmp_path / "rel-data" / "VOCdevkit" / "VOCshapes" / "Annotations").is_dir()

"""Hostile .pt and .h5 files: a pickle holding code, a zip that is not one, truncated or damaged HDF5.
Each is one line naming the file and the cause (never torch's advice to load with weights_only=False),
nothing in the file runs, and the inputs are untouched."""

from __future__ import annotations

import os

import pytest
import torch

from tests.hostile import error_line, tree_digest
from vocli.cli.app import main


class _RunsCode:
    """Pickles as a call of ``os.mkdir(marker)``: if loading ever ran it, the folder would appear."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


@pytest.fixture
def evil_pt(tmp_path):
    path = tmp_path / "in" / "evil.pt"
    path.parent.mkdir()
    torch.save({"model": _RunsCode(tmp_path / "pwned"), "epoch": 1}, path)
    return path


def _check_refused(line: str, path, stderr: str) -> None:
    assert line.startswith(f"error: {path}: not a ")
    assert "weights_only" not in stderr and "arbitrary code" not in stderr


def test_resume_from_a_pickle_holding_code(tmp_path, evil_pt, capsys):
    before = tree_digest(tmp_path)
    rc = main(["train", "--resume", str(evil_pt)])
    stderr = capsys.readouterr().err
    line = error_line(stderr)
    assert rc == 1
    _check_refused(line, evil_pt, stderr)
    # the refused global is named: os.mkdir is posix.mkdir on the machines that run this
    assert "not a vocli checkpoint: it holds objects vocli does not load (" in line and "mkdir)" in line
    assert not (tmp_path / "pwned").exists()
    assert tree_digest(tmp_path) == before


@pytest.mark.parametrize("command", [["detect", "{x}", "--weights", "{pt}", "--out", "{out}"],
                                     ["export-weights", "{pt}", "-o", "{out}/x.weights"]])
def test_other_commands_refuse_it_too(tmp_path, evil_pt, capsys, command):
    image = tmp_path / "in" / "a.jpg"
    image.write_bytes(b"")
    args = [a.format(x=image, pt=evil_pt, out=tmp_path / "out") for a in command]
    before = tree_digest(tmp_path / "in")
    rc = main(args)
    stderr = capsys.readouterr().err
    assert rc == 1
    _check_refused(error_line(stderr), evil_pt, stderr)
    assert not (tmp_path / "pwned").exists()
    assert tree_digest(tmp_path / "in") == before


def test_a_zip_that_is_not_a_checkpoint(tmp_path, capsys):
    path = tmp_path / "broken.pt"
    path.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 4)
    rc = main(["train", "--resume", str(path)])
    line = error_line(capsys.readouterr().err)
    assert rc == 1
    assert line.startswith(f"error: {path}: not a vocli checkpoint: not a readable PyTorch zip (")


def _tiny_h5(path):
    from converters.darknet_weights import DarknetWeights, save_h5
    from tests.test_detect import TINY_CFG
    from vocli.darknet.cfg import parse_cfg
    from vocli.darknet.model import Darknet

    cfg = parse_cfg(TINY_CFG)
    torch.manual_seed(0)
    save_h5(path, DarknetWeights(header=(0, 2, 0), seen=0, tensors=Darknet(cfg).state_dict(), cfg=cfg))
    return path.read_bytes()


def test_weights_h5_truncated_damaged_and_foreign(tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    data = _tiny_h5(folder / "good.h5")
    (folder / "cut.h5").write_bytes(data[:len(data) // 2])
    (folder / "noise.h5").write_bytes(bytes(range(256)) * 8)
    before = tree_digest(folder)
    out = tmp_path / "out"
    assert main(["export-weights", str(folder / "good.h5"), "-o", str(out / "good.weights")]) == 0
    capsys.readouterr()
    expected = {
        "cut.h5": f"the file is cut short ({len(data) // 2:,} of {len(data):,} bytes)",
        "noise.h5": "not an HDF5 file",
    }
    for name, cause in expected.items():
        rc = main(["export-weights", str(folder / name), "-o", str(out / f"{name}.weights")])
        line = error_line(capsys.readouterr().err)
        assert rc == 1
        assert line == f"error: {folder / name}: not a readable vocli Darknet HDF5 file: {cause}"
    assert sorted(p.name for p in out.iterdir()) == ["good.weights"]
    assert tree_digest(folder) == before


def test_ssd_targets_damaged_inside(tiny_voc, tmp_path, capsys):
    from converters.ssd_targets import build_ssd_targets, open_targets
    from vocli.errors import VocliError

    out = tmp_path / "targets"
    (target,) = build_ssd_targets(tiny_voc, sets="2007/trainval", out=out, workers=1).files
    import h5py

    with h5py.File(target.path, "r") as h5:  # where image 0's gzip-compressed loc rows lie
        chunk = h5["loc"].id.get_chunk_info(0)
    data = bytearray(target.path.read_bytes())
    for i in range(chunk.byte_offset, chunk.byte_offset + chunk.size):
        data[i] ^= 0x55
    damaged = tmp_path / "damaged.h5"
    damaged.write_bytes(bytes(data))
    cut = tmp_path / "cut.h5"
    cut.write_bytes(bytes(data[:len(data) // 2]))
    with pytest.raises(VocliError, match=rf"^{cut}: not a readable SSD target file: the file is cut short"):
        open_targets(cut)
    targets = open_targets(damaged)  # the file's structure is intact: it opens
    with pytest.raises(VocliError, match=rf"^{damaged}: not a readable SSD target file: damaged HDF5 data \("):
        targets[0]
    rc = main(["anchors", "--labels", str(cut), "--k", "2"])
    line = error_line(capsys.readouterr().err)
    assert rc == 1 and line.startswith(f"error: {cut}: not a `vocli convert ssd` targets file: the file is cut short")

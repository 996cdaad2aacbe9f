"""Hostile .h5 files (converted weights, SSD targets): cut short, damaged inside, or not HDF5 at all.
Each is one line naming the file and the cause, not the HDF5 library's text; the inputs are untouched.
(.pt files: tests/test_hostile_weights.py.)"""

from __future__ import annotations

import pytest
import torch

from hostile_common import error_line, tree_state
from vocli.cli.app import main


def _tiny_h5(path):
    from converters.darknet_weights import DarknetWeights, save_h5
    from helpers import TWO_CLASS_CFG as TINY_CFG
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
    before = tree_state(folder)
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
    assert tree_state(folder) == before


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

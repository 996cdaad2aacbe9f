"""DistributedDataParallel: sampler shards, gradient all-reduce, and rank 0 as the only writer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vocli.yolo.data import EpochSampler

from helpers import make_darknet_set, write_tiny_cfg

DRIVER = Path(__file__).with_name("ddp_driver.py")


@pytest.mark.parametrize("size, world", [(8, 2), (9, 3), (12, 4)])
def test_distributed_sampler_shards_are_disjoint_and_cover_the_set(size, world):
    for epoch in (0, 1):
        shards = []
        for rank in range(world):
            sampler = EpochSampler(range(size), num_replicas=world, rank=rank, shuffle=True, seed=5)
            sampler.set_epoch(epoch)
            shards.append(list(sampler))
        assert [len(s) for s in shards] == [size // world] * world
        flat = [i for s in shards for i in s]
        assert sorted(flat) == list(range(size))  # disjoint (no repeats) and covering
    # a new epoch is a new permutation: rank 0's shard changes
    first = list(EpochSampler(range(size), num_replicas=world, rank=0, shuffle=True, seed=5))
    sampler = EpochSampler(range(size), num_replicas=world, rank=0, shuffle=True, seed=5)
    sampler.set_epoch(1)
    assert first != list(sampler)


def test_uneven_set_pads_by_repeating_only_what_is_needed():
    shards = [list(EpochSampler(range(7), num_replicas=2, rank=r, shuffle=True, seed=0)) for r in range(2)]
    flat = [i for s in shards for i in s]
    assert [len(s) for s in shards] == [4, 4] and set(flat) == set(range(7)) and len(flat) - len(set(flat)) == 1


def _run_driver(record: Path, config: dict, world: int) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if world == 1:
        cmd = [sys.executable, str(DRIVER), str(record), json.dumps(config)]
    else:  # --standalone: the rendezvous binds a free port itself
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(world),
               str(DRIVER), str(record), json.dumps(config)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.slow
def test_two_ranks_step_like_one_process_on_the_union_batch(tmp_path):
    """Both ranks hold the same weights after each step, equal to one process stepping on both halves.

    Exact equality (up to summation order) needs a loss that is a sum over images: no batch
    norm (its statistics are per rank without --sync-bn, which CPU gloo lacks), one object
    per image, all the same size so all go to one anchor of one head (the box and class
    terms are means over a head's assigned objects: 4 per rank, 8 together), and no ignore
    rule (the objectness mean then runs over every cell).
    """
    cfg = write_tiny_cfg(tmp_path / "nobn.cfg", batch_normalize=False)
    data = make_darknet_set(tmp_path / "set", n=10, box=20, train=8)
    base = dict(data=str(data), cfg=str(cfg), img_size=64, epochs=2, batch_size=8, accumulate=1, workers=0,
                seed=3, eval_every=0, warmup_epochs=0, augment=False, ema=False, ignore_thresh=1.0,
                threads=1, lr=0.05)
    _run_driver(tmp_path / "ddp", {**base, "out": str(tmp_path / "run-ddp")}, world=2)
    _run_driver(tmp_path / "one", {**base, "out": str(tmp_path / "run-one")}, world=1)
    ranks = [torch.load(tmp_path / "ddp" / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    single = torch.load(tmp_path / "one" / "rank0.pt", weights_only=True)
    assert len(single["steps"]) == len(ranks[0]["steps"]) == len(ranks[1]["steps"]) == 2  # one step per epoch
    for p0, p1, p in zip(ranks[0]["steps"], ranks[1]["steps"], single["steps"]):
        assert len(p0) == len(p1) == len(p) == 12  # 6 convolutions, weight and bias each
        for a, b, c in zip(p0, p1, p):
            torch.testing.assert_close(a, b, rtol=0, atol=0)          # all-reduced: identical on both ranks
            torch.testing.assert_close(a, c, rtol=1e-5, atol=1e-6)    # = one process on the union batch
    # each epoch the two shards are disjoint halves of the 8 training images
    for e in range(2):
        halves = [set(r["indices"][e]) for r in ranks]
        assert len(halves[0]) == len(halves[1]) == 4 and halves[0] | halves[1] == set(range(8))
    # only rank 0 writes into the run folder
    assert ranks[1]["writes"] == []
    assert any("last.pt" in w for w in ranks[0]["writes"])

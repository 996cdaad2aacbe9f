"""Run ``vocli.yolo.train.train`` in this process (under torchrun: one rank) and record what it did.

    python ddp_driver.py RECORD_DIR CONFIG_JSON

Writes RECORD_DIR/rank<R>.pt: every parameter after each optimizer step (in the optimizer's
order), the sampler's indices per epoch, and the files this rank opened for writing, renamed
or created under the run folder (from an audit hook, so nothing in vocli is patched).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from vocli.yolo import data as yolo_data
from vocli.yolo.train import TrainConfig, train

WRITE_EVENTS = {"os.rename", "os.replace", "os.mkdir", "os.remove", "shutil.move", "os.symlink", "os.link"}


def main() -> None:
    record_dir, config = Path(sys.argv[1]), TrainConfig(**json.loads(sys.argv[2]))
    rank = int(os.environ.get("RANK", "0"))
    run_dir = os.path.realpath(config.out)
    steps: list[list[torch.Tensor]] = []
    indices: list[list[int]] = []
    writes: list[str] = []

    def under_run(path) -> bool:
        try:
            return os.path.realpath(os.fsdecode(path)).startswith(run_dir)
        except (TypeError, ValueError):
            return False

    def audit(event, args):
        if event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
            mode = args[1] if len(args) > 1 and isinstance(args[1], str) else ""
            flags = args[2] if len(args) > 2 and isinstance(args[2], int) else 0
            writing = any(c in mode for c in "wax+") or flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
            if writing and under_run(args[0]):
                writes.append(f"open {os.fsdecode(args[0])}")
        elif event in WRITE_EVENTS and args and any(under_run(a) for a in args[:2]
                                                    if isinstance(a, (str, bytes, os.PathLike))):
            writes.append(f"{event} {os.fsdecode(args[0])}")

    def after_step(optimizer, *_):
        steps.append([p.detach().clone() for group in optimizer.param_groups for p in group["params"]])

    sampler_iter = yolo_data.EpochSampler.__iter__

    def recording_iter(self):
        order = list(sampler_iter(self))
        indices.append(order)
        return iter(order)

    yolo_data.EpochSampler.__iter__ = recording_iter
    register_optimizer_step_post_hook(after_step)
    sys.addaudithook(audit)
    train(config)
    record_dir.mkdir(parents=True, exist_ok=True)
    torch.save({"steps": steps, "indices": indices, "writes": writes}, record_dir / f"rank{rank}.pt")


if __name__ == "__main__":
    main()

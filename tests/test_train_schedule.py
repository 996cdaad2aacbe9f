"""LR schedules by hand: cosine and step per iteration, and paced by the clock under --time-limit."""

from __future__ import annotations

import math

import pytest

import vocli.yolo.train as train_module
from vocli.yolo.optim import lr_factor
from vocli.yolo.train import TrainConfig, train

from helpers import make_darknet_set, write_tiny_cfg


def test_cosine_and_step_factors_by_hand():
    cosine = lr_factor("cosine", 10, 0.01)
    # (1 - cos(e pi / 10)) / 2 * (0.01 - 1) + 1
    assert cosine(0) == 1.0
    assert cosine(5) == pytest.approx(0.505)            # half way: (1 + 0.01) / 2
    assert cosine(10) == pytest.approx(0.01)
    # (1 - cos(pi / 4)) / 2 = 0.1464466; x -0.99 = -0.1449821; + 1
    assert cosine(2.5) == pytest.approx(0.8550179, abs=1e-7)
    step = lr_factor("step", 10, 0.01)
    # x0.1 from 80 % of the epochs, x0.01 from 90 %
    assert [step(e) for e in (0, 7.99, 8, 8.99, 9, 9.5)] == [1.0, 1.0, 0.1, 0.1, 0.01, 0.01]
    with pytest.raises(ValueError, match="cosine or step"):
        lr_factor("linear", 10, 0.01)


class FakeClock:
    """``time.monotonic`` for the trainer: moves only when a batch's loss is computed."""

    def __init__(self, seconds_per_batch: float):
        self.now, self.per_batch = 1000.0, seconds_per_batch

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clocked(tmp_path, monkeypatch):
    """A run on a fake clock: each batch takes 4 s; 8 training images in batches of 4 (2 per epoch)."""
    clock = FakeClock(4.0)
    real_loss = train_module.yolo_loss

    def timed_loss(*args):
        clock.now += clock.per_batch
        return real_loss(*args)

    monkeypatch.setattr(train_module, "time", clock)
    monkeypatch.setattr(train_module, "yolo_loss", timed_loss)
    monkeypatch.setattr(train_module, "evaluate_map", lambda *args: 0.25)
    cfg = write_tiny_cfg(tmp_path / "tiny.cfg")
    data = make_darknet_set(tmp_path / "set", n=32, train=8)  # 24 validation images
    events = []

    def run(**kw):
        settings = dict(data=str(data), cfg=str(cfg), img_size=64, epochs=100, batch_size=4, accumulate=1,
                        workers=0, seed=1, warmup_epochs=0, augment=False, threads=1, lr=0.01,
                        final_lr_ratio=0.01, time_limit=1.0, out=str(tmp_path / f"run{len(events)}"))
        settings.update(kw)
        seen = []
        result = train(TrainConfig(**settings), progress=seen.append)
        events.append(seen)
        return result, [e.lr for e in seen if e.kind == "batch"]

    return run


def _cosine(progress: float) -> float:
    return 0.01 * ((1 - math.cos(progress * math.pi / 100)) / 2 * (0.01 - 1) + 1)


def test_time_limit_paces_the_cosine_by_the_clock(clocked):
    """No evaluation: training may use the whole minute. Batch k starts at 4k s into it; its LR is
    the cosine at 100 epochs x 4k / 60 (not at k / 2 epochs, where a 100-epoch schedule would be)."""
    result, lrs = clocked(eval_every=0)
    # batch k ends at 4 (k + 1) s; training stops after the batch ending at 60 s: 15 batches
    assert len(lrs) == 15 and result.epochs_run == 8  # 7 full epochs and a cut eighth
    expected = [_cosine(100 * 4 * k / 60) for k in range(15)]
    assert lrs == pytest.approx(expected, rel=1e-9)
    assert lrs[-1] == pytest.approx(_cosine(93.3333333), rel=1e-6)  # near the schedule's end


def test_time_limit_reserves_the_final_evaluation(clocked):
    """With evaluation, training stops early enough for it: before any evaluation has run, the
    reserve is the validation images at 2.5x the training rate: 24 images / (1 image/s) / 2.5 = 9.6 s.
    Training then must stop by 60 - 9.6 = 50.4 s, and the LR is paced to that."""
    result, lrs = clocked(eval_every=1000)
    # after the first batch the rate is 4 images / 4 s; batch k (k >= 1) is paced to 50.4 s
    # batch k ends at 4 (k + 1) s >= 50.4 first for k + 1 = 13
    assert len(lrs) == 13
    expected = [_cosine(0.0)] + [_cosine(100 * 4 * k / 50.4) for k in range(1, 13)]
    assert lrs == pytest.approx(expected, rel=1e-9)
    assert result.final_map == 0.25  # the final evaluation ran


def test_step_schedule_per_iteration_without_time_limit(clocked):
    # 10 epochs x 2 batches; progress k / 2 epochs: x0.1 from epoch 8 (batch 16), x0.01 from 9 (batch 18)
    _, lrs = clocked(epochs=10, time_limit=None, eval_every=0, schedule="step")
    assert lrs == pytest.approx([0.01] * 16 + [0.001] * 2 + [0.0001] * 2, rel=1e-12)

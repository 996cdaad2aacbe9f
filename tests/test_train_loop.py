"""The training loop's options: --freeze-epochs, --multi-scale, and bit-exact resume with loader
workers and evaluation (every piece of state compared)."""

from __future__ import annotations

import pytest
import torch

import vocli.yolo.train as train_module
from vocli.yolo.data import multi_scale_size
from vocli.yolo.setup import build_model
from vocli.yolo.train import TrainConfig, train

from helpers import make_darknet_set, write_tiny_cfg


@pytest.fixture
def tiny(tmp_path):
    return write_tiny_cfg(tmp_path / "tiny.cfg"), make_darknet_set(tmp_path / "set")


def _config(tiny, out, **kw) -> TrainConfig:
    cfg, data = tiny
    settings = dict(data=str(data), cfg=str(cfg), img_size=64, epochs=2, batch_size=4, accumulate=1,
                    workers=0, seed=1, eval_every=0, out=str(out), warmup_epochs=0.5, threads=1)
    settings.update(kw)
    return TrainConfig(**settings)


def _load(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def test_freeze_epochs_unfreezes_the_backbone_after_them(tiny, tmp_path):
    """--freeze backbone --freeze-epochs 1: epoch 1 leaves layers 0-3 as they started, epoch 2 trains them."""
    one = _config(tiny, tmp_path / "one", epochs=1, freeze="backbone", freeze_epochs=1, ema=False)
    start = build_model(one, 4, load_initial=False)[0].state_dict()  # same seed: the runs' starting weights
    train(one)
    after_first = _load(tmp_path / "one" / "last.pt")["model"]
    events = []
    train(_config(tiny, tmp_path / "two", epochs=2, freeze="backbone", freeze_epochs=1, ema=False),
          progress=events.append)
    after_second = _load(tmp_path / "two" / "last.pt")["model"]
    backbone = [k for k in start if int(k.split(".")[1]) < 4 and not k.endswith("num_batches_tracked")]
    assert len(backbone) == 4 * 5  # conv weight + 4 batch-norm tensors per layer
    assert all(torch.equal(after_first[k], start[k]) for k in backbone)
    assert not any(torch.equal(after_second[k], start[k]) for k in backbone)  # weights and statistics move
    assert [(e.epoch, e.message) for e in events if e.kind == "info"] == [(1, "unfroze all layers")]


def test_multi_scale_resizes_each_batch_in_the_loop(tiny, tmp_path, monkeypatch):
    """Each batch runs at multi_scale_size(64, seed, epoch, batch): 64 or 96 px (0.67x..1.5x, multiples of 32)."""
    real_loss, sizes = train_module.yolo_loss, []

    def recording_loss(outputs, targets, heads, config):
        sizes.append(outputs[0].shape[2] * int(heads[0].stride))  # grid x stride = network input
        return real_loss(outputs, targets, heads, config)

    monkeypatch.setattr(train_module, "yolo_loss", recording_loss)
    train(_config(tiny, tmp_path / "ms", epochs=3, multi_scale=True, seed=4))
    assert sizes == [multi_scale_size(64, 4, e, i) for e in range(3) for i in range(2)]
    assert set(sizes) == {64, 96}  # both sizes really ran
    sizes.clear()
    train(_config(tiny, tmp_path / "fixed", epochs=1, seed=4))
    assert sizes == [64, 64]


def _assert_same(a, b, path="checkpoint"):
    """Equal in every piece: dicts key for key, sequences item for item (same lengths), tensors bit for bit."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and sorted(a) == sorted(b), path
        for key in a:
            _assert_same(a[key], b[key], f"{path}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), path
    else:
        assert a == b, path


@pytest.mark.slow
@pytest.mark.parametrize("options", [dict(workers=1), dict(eval_every=1)], ids=["workers-1", "eval-every-1"])
def test_resume_is_bit_exact_with_workers_or_evaluation(tiny, tmp_path, options):
    """Interrupted after epoch 1 of 2 and resumed: every state equals the uninterrupted run's
    (weights, EMA and its update count, optimizer, scheduler, scaler, RNG states, metrics but
    their wall-clock seconds, best mAP and epoch)."""
    settings = dict(augment=True, **options)
    train(_config(tiny, tmp_path / "straight", **settings))

    def stop_after_first_epoch(event):
        if event.kind == "epoch" and event.epoch == 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(_config(tiny, tmp_path / "split", **settings), progress=stop_after_first_epoch)
    assert _load(tmp_path / "split" / "last.pt")["epoch"] == 1
    train(TrainConfig(resume=str(tmp_path / "split" / "last.pt"), threads=1, workers=options.get("workers", 0)))
    a, b = _load(tmp_path / "straight" / "last.pt"), _load(tmp_path / "split" / "last.pt")
    for ck in (a, b):
        ck.pop("config")  # run folders differ
        for row in ck["metrics"]:
            row.pop("seconds")
    assert sorted(a) == sorted(b)
    assert {"model", "raw_model", "ema_updates", "optimizer", "scheduler", "scaler", "rng"} <= set(a)
    _assert_same(a, b)
    if options.get("eval_every"):
        assert [m["map"] is not None for m in a["metrics"]] == [True, True]

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from neuroprune import Checkpointer, TrainingDiverged, create_model, fit
from neuroprune.engine import load_checkpoint
from neuroprune.errors import NeuropruneError


def _loader(seed=0, n=64):
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(n, 1, 8, 8, generator=g), torch.randint(0, 10, (n,), generator=g)
    return DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(seed))


def test_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path):
    torch.manual_seed(0)
    model = create_model("mlp", image_size=8, hidden=(16,))
    calls = {"n": 0}

    def loss_fn(out, y, reduction="mean"):
        calls["n"] += 1
        loss = nn.functional.cross_entropy(out, y, reduction=reduction)
        return loss * float("nan") if calls["n"] == 7 and reduction == "mean" else loss

    path = tmp_path / "checkpoint.pt"
    with pytest.raises(TrainingDiverged, match="loss became nan at epoch 2, step 7"):
        fit(model, _loader(), epochs=3, lr=0.01, loss_fn=loss_fn, callbacks=[Checkpointer(path)])
    state = load_checkpoint(path)
    assert state["epoch"] == 1 and state["step"] == 4
    assert all(torch.isfinite(t).all() for t in state["model"].values())


def test_same_seed_gives_identical_training():
    histories, weights = [], []
    for _ in range(2):
        torch.manual_seed(3)
        model = create_model("mlp", image_size=8, hidden=(16,))
        histories.append(fit(model, _loader(seed=5), epochs=2, lr=0.05, eval_loader=_loader(seed=9)))
        weights.append(model.state_dict())
    assert [r["train_loss"] for r in histories[0]] == [r["train_loss"] for r in histories[1]]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_callbacks_receive_events_in_order_and_can_log():
    events = []

    class Recorder:
        def on_train_begin(self, trainer):
            events.append("begin")

        def on_step_end(self, trainer):
            events.append("step")

        def on_epoch_end(self, trainer):
            events.append("epoch")
            trainer.log(extra=trainer.epoch * 10)

        def on_train_end(self, trainer):
            events.append("end")

    history = fit(create_model("mlp", image_size=8, hidden=(8,)), _loader(), epochs=2, callbacks=[Recorder()])
    assert events == ["begin"] + (["step"] * 4 + ["epoch"]) * 2 + ["end"]
    assert [r["extra"] for r in history] == [10, 20]


def test_bad_epochs_is_rejected():
    with pytest.raises(NeuropruneError, match="epochs"):
        fit(create_model("mlp", image_size=8), _loader(), epochs=0)

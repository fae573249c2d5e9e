"""Checkpointer + resume: stopping after any epoch and resuming gives the uninterrupted run, bit for bit."""

from __future__ import annotations

import pytest
import torch

from neuroprune import Checkpointer, SynapticPruner, create_loader, create_model, fit
from neuroprune.engine import EpochLRScheduler, load_checkpoint, resume
from neuroprune.errors import ModelError


def _setup():
    torch.manual_seed(0)
    model = create_model("mlp", image_size=8, hidden=(16,))
    # checks every 7 steps do not line up with the 10-step epochs: checkpoints hold partial activity
    pruner = SynapticPruner(model, patience=2, check_every=7, warmup_steps=2, stop_step=None)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    schedule = EpochLRScheduler(torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=4))
    return model, pruner, optimizer, schedule


def _run(path, epochs, resume_from=None):
    model, pruner, optimizer, schedule = _setup()
    loader = create_loader("digits", "train", 32, seed=2, limit=320)
    trainer = None
    if resume_from is not None:
        trainer = resume(resume_from, model, optimizer, pruner=pruner, states={"lr": schedule})
    checkpointer = Checkpointer(path, pruner, states={"lr": schedule})
    history = fit(model, loader, epochs=epochs, optimizer=optimizer, callbacks=[pruner, schedule, checkpointer],
                  trainer=trainer)
    return model, pruner, history


@pytest.mark.parametrize("stop_after", [1, 3])
def test_resumed_training_equals_uninterrupted_training(tmp_path, stop_after):
    model, pruner, history = _run(tmp_path / "full.pt", epochs=4)
    _run(tmp_path / "part.pt", epochs=stop_after)
    assert load_checkpoint(tmp_path / "part.pt")["epoch"] == stop_after
    resumed, resumed_pruner, resumed_history = _run(tmp_path / "part.pt", epochs=4, resume_from=tmp_path / "part.pt")

    for name in pruner.layers:
        assert torch.equal(resumed_pruner.mask(name), pruner.mask(name))
        assert torch.equal(resumed_pruner.counters[name], pruner.counters[name])
    for key, value in model.state_dict().items():
        assert torch.equal(resumed.state_dict()[key], value), key
    assert resumed_pruner.history == pruner.history and pruner.sparsity() > 0.2
    assert [r["train_loss"] for r in resumed_history] == [r["train_loss"] for r in history]
    assert [r["lr"] for r in resumed_history] == [r["lr"] for r in history]


def test_checkpoint_holds_every_part_of_the_state(tmp_path):
    _run(tmp_path / "c.pt", epochs=1)
    state = load_checkpoint(tmp_path / "c.pt")
    assert {"model", "optimizer", "pruner", "states", "epoch", "step", "history", "rng", "torch_rng"} <= set(state)
    assert state["pruner"]["activity"]["batches"]  # activity gathered since the last check
    assert "fc1.weight" in state["model"] and not any("parametrizations" in key for key in state["model"])
    assert state["optimizer"]["state"]  # momentum buffers


def test_resume_into_another_architecture_is_refused(tmp_path):
    _run(tmp_path / "c.pt", epochs=1)
    model = create_model("mlp", image_size=8, hidden=(12,))
    with pytest.raises(ModelError, match="do not match|do not fit|has shape"):
        resume(tmp_path / "c.pt", model, torch.optim.SGD(model.parameters(), lr=0.1), pruner=SynapticPruner(model))


def test_loader_order_depends_only_on_seed_and_epoch():
    first = create_loader("digits", "train", 64, seed=7)
    epochs = [[y.tolist() for _, y in first] for _ in range(3)]
    jumped = create_loader("digits", "train", 64, seed=7)
    jumped.sampler.set_epoch(2)
    assert [y.tolist() for _, y in jumped] == epochs[2]
    jumped.sampler.set_epoch(0)
    assert [y.tolist() for _, y in jumped] == epochs[0]
    assert [y.tolist() for _, y in jumped] == epochs[1]  # iterating moves on by itself

"""A damaged or foreign checkpoint is refused whole: one ModelError naming the file and the field,
raised before the model, optimizer, pruner or schedule has changed."""

from __future__ import annotations

import copy
import re

import pytest
import torch
from click.testing import CliRunner

from neuroprune import Checkpointer, SynapticPruner, create_loader, create_model, fit
from neuroprune.cli import main
from neuroprune.engine import EpochLRScheduler, resume
from neuroprune.errors import ModelError
from neuroprune.storage import load_torch, save_torch

EPOCHS = 4


def _objects():
    torch.manual_seed(0)
    model = create_model("mlp", image_size=8, hidden=(16,))
    pruner = SynapticPruner(model, patience=2, check_every=7, warmup_steps=2, stop_step=None)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    schedule = EpochLRScheduler(torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=EPOCHS))
    return model, pruner, optimizer, schedule


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> dict:
    """The state of a real checkpoint after one epoch (activity half gathered, momentum set)."""
    path = tmp_path_factory.mktemp("checkpoint") / "checkpoint.pt"
    model, pruner, optimizer, schedule = _objects()
    loader = create_loader("digits", "train", 32, seed=2, limit=320)
    fit(model, loader, epochs=1, optimizer=optimizer, eval_loader=create_loader("digits", "test", 100, limit=100),
        callbacks=[pruner, schedule, Checkpointer(path, pruner, states={"lr": schedule})])
    return load_torch(path)


def _snapshot(model, pruner, optimizer, schedule):
    return [copy.deepcopy(part) for part in (model.state_dict(), pruner.state_dict(), optimizer.state_dict(),
                                             schedule.state_dict())] + [torch.get_rng_state()]


def _same(a, b) -> bool:
    if torch.is_tensor(a):
        return torch.is_tensor(b) and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(map(_same, a, b))
    return a == b


def _first_layer(state: dict) -> str:
    return next(iter(state["pruner"]["masks"]))


def _set(*keys, value):
    """A change that sets ``state[k1][k2]... = value`` (a callable value gets the old one)."""

    def change(state):
        *path, last = keys
        holder = state
        for key in path:
            holder = holder[key(state) if callable(key) else key]
        last = last(state) if callable(last) else last
        holder[last] = value(holder[last]) if callable(value) else value

    return change


MASK = _first_layer
CHANGES = {
    "epoch is text": (_set("epoch", value="two"), "'epoch'"),
    "epoch is negative": (_set("epoch", value=-5), "'epoch'"),
    "epoch beyond the run": (_set("epoch", value=EPOCHS + 1), r"'epoch'.*beyond the run's 4 epochs"),
    "epoch is a flag": (_set("epoch", value=True), "'epoch'"),
    "step is text": (_set("step", value="3"), "'step'"),
    "step is negative": (_set("step", value=-1), "'step'"),
    "history is text": (_set("history", value="lots"), "'history'"),
    "history of numbers": (_set("history", value=[1]), r"'history'\[0\]"),
    "history too short": (_set("history", value=[]), "'history'"),
    "history record without epoch": (_set("history", 0, value=lambda r: {"train_loss": 1.0}), r"'history'\[0\]"),
    "history without test accuracy": (_set("history", 0, value=lambda r: {"epoch": 1, "seconds": 1.0}),
                                      "test_accuracy"),
    "rng of floats": (_set("rng", 0, "torch", value=lambda t: t.float()), r"'rng'\[0\]\['torch'\]"),
    "rng cut short": (_set("rng", 0, "torch", value=lambda t: t[:100]), r"'rng'\[0\]\['torch'\]"),
    "rng missing": (lambda s: (s.pop("rng"), s.pop("torch_rng")), "'rng'"),
    "old-style rng wrong": (lambda s: (s.pop("rng"), s.update(torch_rng=torch.zeros(3, dtype=torch.uint8))),
                            "'torch_rng'"),
    "momentum of another shape": (_set("optimizer", "state", 0, "momentum_buffer", value=torch.zeros(3)),
                                  "momentum_buffer.*has shape"),
    "momentum of whole numbers": (_set("optimizer", "state", 0, "momentum_buffer", value=lambda t: t.long()),
                                  "momentum_buffer"),
    "learning rate is text": (_set("optimizer", "param_groups", 0, "lr", value="fast"), "'lr'"),
    "optimizer has two groups": (_set("optimizer", "param_groups", value=lambda g: g * 2), "'param_groups'"),
    "mask of another shape": (_set("pruner", "masks", MASK, value=torch.ones(3, 3, dtype=torch.uint8)), "'masks'"),
    "mask that scales weights": (_set("pruner", "masks", MASK, value=lambda m: m * 3), "'masks'.*0 and 1"),
    "mask of another layer": (_set("pruner", "masks", value=lambda m: {"other.weight": next(iter(m.values()))}),
                              "'masks'"),
    "counters of fractions": (_set("pruner", "counters", MASK, value=lambda c: c.float() + 0.5), "'counters'"),
    "negative counters": (_set("pruner", "counters", MASK, value=lambda c: c - 1), "'counters'"),
    "pruner step is negative": (_set("pruner", "step", value=-2), r"'pruner'\['step'\]"),
    "activity of another shape": (_set("pruner", "activity", "sums", MASK, value=torch.zeros(5)), "'activity'"),
    "activity without counts": (_set("pruner", "activity", "batches", value={}), "'activity'"),
    "schedule step is text": (_set("states", "lr", "last_epoch", value="x"), "'last_epoch'"),
    "weights of another shape": (_set("model", "fc1.weight", value=torch.zeros(2, 2)), "fc1.weight"),
    "weights of whole numbers": (_set("model", "fc1.weight", value=lambda w: w.long()), "fc1.weight"),
    "newer format": (_set("format", value=99), "'format'"),
    "bad loss scale": (lambda s: s.update(grad_scaler={"scale": -1.0}), "'grad_scaler'"),
}


@pytest.mark.parametrize("change, field", CHANGES.values(), ids=CHANGES.keys())
def test_a_bad_field_is_named_and_nothing_changes(saved, tmp_path, change, field):
    state = copy.deepcopy(saved)
    change(state)
    path = tmp_path / "checkpoint.pt"
    save_torch(path, state)
    model, pruner, optimizer, schedule = _objects()
    before = _snapshot(model, pruner, optimizer, schedule)
    with pytest.raises(ModelError, match=field) as caught:
        resume(path, model, optimizer, pruner=pruner, states={"lr": schedule}, epochs=EPOCHS,
               history_keys=("test_accuracy",))
    message = str(caught.value)
    assert str(path) in message and "\n" not in message
    assert _same(_snapshot(model, pruner, optimizer, schedule), before)


def test_the_unchanged_checkpoint_still_resumes(saved, tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_torch(path, saved)
    model, pruner, optimizer, schedule = _objects()
    trainer = resume(path, model, optimizer, pruner=pruner, states={"lr": schedule}, epochs=EPOCHS,
                     history_keys=("test_accuracy",))
    assert trainer.epoch == 1 and trainer.step == saved["step"] and len(trainer.history) == 1
    assert torch.equal(model.state_dict()["fc1.weight"], saved["model"]["fc1.weight"])


def test_cli_resume_refuses_a_negative_epoch_instead_of_training_more(tmp_path):
    runner = CliRunner()
    out = tmp_path / "run"
    args = ["synaptic", "--dataset", "digits", "--epochs", "2", "--limit-train", "64", "--no-measure-latency"]
    assert runner.invoke(main, [*args, "--out", str(out)]).exit_code == 0
    state = load_torch(out / "checkpoint.pt")
    state["epoch"] = -5  # accepted once: the resumed run trained 11 more epochs
    save_torch(out / "checkpoint.pt", state)
    result_before = (out / "result.json").read_bytes()
    result = runner.invoke(main, ["synaptic", "--resume", str(out)])
    assert result.exit_code == 2, result.output
    assert re.search(r"checkpoint\.pt: field 'epoch' must be >= 0, got -5", " ".join(result.output.split()))
    assert (out / "result.json").read_bytes() == result_before

"""Restoring a checkpoint is all or nothing: every field that changes the resumed run is required,
and any failure leaves the model, optimizer, pruner, schedule and RNG exactly as they were."""

from __future__ import annotations

import copy
import re

import pytest
import torch
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neuroprune import (
    Checkpointer,
    GradualMagnitudePruner,
    SynapticPruner,
    create_loader,
    create_model,
    fit,
)
from neuroprune.cli import main
from neuroprune.engine import EpochLRScheduler, resume
from neuroprune.errors import ModelError
from neuroprune.storage import load_torch, save_torch

EPOCHS = 4


def _objects(optimizer: str = "sgd", pruner: str = "synaptic"):
    torch.manual_seed(0)
    model = create_model("mlp", image_size=8, hidden=(16,))
    if pruner == "synaptic":
        prune = SynapticPruner(model, patience=2, check_every=7, warmup_steps=2, stop_step=None)
    else:
        prune = GradualMagnitudePruner(model, final_sparsity=0.5, begin_step=3, end_step=25, update_every=4)
    if optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=0.01)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    schedule = EpochLRScheduler(torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=EPOCHS))
    return model, prune, opt, schedule


def _train(path, epochs, kind=("sgd", "synaptic"), resume_from=None):
    model, pruner, optimizer, schedule = _objects(*kind)
    loader = create_loader("digits", "train", 32, seed=2, limit=320)
    trainer = None
    if resume_from is not None:
        trainer = resume(resume_from, model, optimizer, pruner=pruner, states={"lr": schedule}, epochs=EPOCHS)
    checkpointer = Checkpointer(path, pruner, states={"lr": schedule})
    fit(model, loader, epochs=epochs, optimizer=optimizer, callbacks=[pruner, schedule, checkpointer], trainer=trainer)
    return model, pruner


@pytest.fixture(scope="module", params=[("sgd", "synaptic"), ("adam", "synaptic"), ("sgd", "gmp")],
                ids=["sgd", "adam", "gmp"])
def saved(request, tmp_path_factory):
    path = tmp_path_factory.mktemp("restore") / "checkpoint.pt"
    _train(path, epochs=1, kind=request.param)
    return request.param, load_torch(path)


def _snapshot(model, pruner, optimizer, schedule):
    return [copy.deepcopy(part) for part in (model.state_dict(), pruner.state_dict(), optimizer.state_dict(),
                                             schedule.state_dict())] + [torch.get_rng_state()]


def _same(a, b) -> bool:
    if torch.is_tensor(a):
        return torch.is_tensor(b) and a.shape == b.shape and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(map(_same, a, b))
    return a == b


def _refused_whole(state, kind, tmp_path, match: str) -> None:
    path = tmp_path / "checkpoint.pt"
    save_torch(path, state)
    model, pruner, optimizer, schedule = _objects(*kind)
    before = _snapshot(model, pruner, optimizer, schedule)
    with pytest.raises(ModelError, match=match) as caught:
        resume(path, model, optimizer, pruner=pruner, states={"lr": schedule}, epochs=EPOCHS)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)
    assert _same(_snapshot(model, pruner, optimizer, schedule), before)


def _first(mapping):
    return next(iter(mapping))


def _drop_adam(name):
    def change(state):
        for entry in state["optimizer"]["state"].values():
            entry.pop(name)
    return change


def _random_rng(state):
    torch.manual_seed(7)
    state["rng"][0]["torch"] = torch.randint(0, 256, state["rng"][0]["torch"].shape, dtype=torch.uint8)


CASES = {  # the reproductions: (change, which fixtures it applies to, what the message names)
    "activity deleted": (lambda s: s["pruner"].pop("activity"), {"synaptic"}, r"'pruner'.*'activity'"),
    "activity emptied": (lambda s: s["pruner"].update(activity={"sums": {}, "batches": {}}), {"synaptic"},
                         r"'activity'.*batches"),
    "activity count cut": (lambda s: s["pruner"]["activity"]["batches"].update(
        {k: v + 1 for k, v in s["pruner"]["activity"]["batches"].items()}), {"synaptic"}, r"'activity'"),
    "optimizer state emptied": (lambda s: s["optimizer"].update(state={}), {"sgd", "adam"},
                                r"'optimizer'\['state'\] has no state for parameter"),
    "one parameter's state dropped": (lambda s: s["optimizer"]["state"].pop(_first(s["optimizer"]["state"])),
                                      {"sgd", "adam"}, r"has no state for parameter"),
    "adam without exp_avg": (_drop_adam("exp_avg"), {"adam"}, r"has no 'exp_avg'"),
    "adam without step": (_drop_adam("step"), {"adam"}, r"has no 'step'"),
    "schedule with an extra key": (lambda s: s["states"]["lr"].update(surprise=1), {"sgd", "adam", "gmp"},
                                   r"'states'\['lr'\] holds the keys"),
    "schedule without a key": (lambda s: s["states"]["lr"].pop("base_lrs"), {"sgd", "adam", "gmp"},
                               r"'states'\['lr'\]"),
    "rng of random bytes": (_random_rng, {"sgd", "adam", "gmp"}, r"'rng'\[0\]\['torch'\] is not a valid"),
    "gmp mask of 7s": (lambda s: s["pruner"]["masks"].update({_first(s["pruner"]["masks"]): s["pruner"]["masks"][
        _first(s["pruner"]["masks"])] * 7}), {"gmp", "synaptic"}, r"'masks'.*only 0 and 1"),
    "gmp without history": (lambda s: s["pruner"].pop("history"), {"gmp"}, r"'pruner' has no 'history'"),
}


@pytest.mark.parametrize("name", CASES)
def test_restore_refuses_a_checkpoint_missing_what_changes_the_result(saved, tmp_path, name):
    kind, original = saved
    change, applies, match = CASES[name]
    if not applies & set(kind):
        pytest.skip(f"not a {'/'.join(kind)} checkpoint case")
    state = copy.deepcopy(original)
    change(state)
    _refused_whole(state, kind, tmp_path, match)


def test_restore_of_every_kind_resumes_bit_for_bit(saved, tmp_path):
    kind, original = saved
    full_model, full_pruner = _train(tmp_path / "full.pt", epochs=3, kind=kind)
    save_torch(tmp_path / "part.pt", original)
    model, pruner = _train(tmp_path / "part.pt", epochs=3, kind=kind, resume_from=tmp_path / "part.pt")
    for key, value in full_model.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    assert _same(pruner.state_dict()["masks"], full_pruner.state_dict()["masks"])


def test_restore_failing_part_way_puts_everything_back(saved, tmp_path, monkeypatch):
    kind, original = saved
    path = tmp_path / "checkpoint.pt"
    save_torch(path, original)
    model, pruner, optimizer, schedule = _objects(*kind)
    before = _snapshot(model, pruner, optimizer, schedule)
    torch.manual_seed(123)  # the RNG must come back too
    rng = torch.get_rng_state()
    before[-1] = rng

    calls = []
    load = EpochLRScheduler.load_state_dict

    def broken_once(self, state):  # the schedule comes after the pruner, model and optimizer were loaded
        calls.append(state)
        if len(calls) == 1:
            raise RuntimeError("disk went away")
        load(self, state)

    monkeypatch.setattr(EpochLRScheduler, "load_state_dict", broken_once)
    with pytest.raises(ModelError, match="could not be restored.*disk went away.*nothing was changed"):
        resume(path, model, optimizer, pruner=pruner, states={"lr": schedule}, epochs=EPOCHS)
    monkeypatch.undo()
    assert _same(_snapshot(model, pruner, optimizer, schedule), before)


def _paths(value, prefix=()):
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


leaves = st.none() | st.booleans() | st.integers(-3, 3) | st.floats(allow_nan=True) | st.text(max_size=3) | \
    st.builds(torch.zeros, st.integers(0, 3)) | st.just({}) | st.just([])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_restore_is_all_or_nothing_for_every_damaged_field(saved, tmp_path, data):
    kind, original = saved
    state = copy.deepcopy(original)
    path = data.draw(st.sampled_from(_paths(state)), label="field")
    holder = state
    for key in path[:-1]:
        holder = holder[key]
    if data.draw(st.booleans(), label="delete") and isinstance(holder, dict):
        del holder[path[-1]]
    else:
        holder[path[-1]] = data.draw(leaves, label="value")
    file = tmp_path / "checkpoint.pt"
    save_torch(file, state)
    model, pruner, optimizer, schedule = _objects(*kind)
    before = _snapshot(model, pruner, optimizer, schedule)
    try:
        resume(file, model, optimizer, pruner=pruner, states={"lr": schedule}, epochs=EPOCHS)
    except ModelError as exc:
        assert "\n" not in str(exc)
        assert _same(_snapshot(model, pruner, optimizer, schedule), before), path


def test_restore_refusal_in_the_cli_is_one_line_and_keeps_the_run(tmp_path):
    out = tmp_path / "run"
    # checks at steps 9 and 16 of 20: the checkpoint holds activity of steps 17 to 20
    args = ["synaptic", "--dataset", "digits", "--epochs", "2", "--limit-train", "640", "--limit-test", "64",
            "--check-every", "7", "--warmup-steps", "2", "--stop-step", "none", "--no-measure-latency", "--out",
            str(out)]
    assert CliRunner().invoke(main, args).exit_code == 0
    state = load_torch(out / "checkpoint.pt")
    state["pruner"]["activity"] = {"sums": {}, "batches": {}}
    save_torch(out / "checkpoint.pt", state)
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    result = CliRunner().invoke(main, ["synaptic", "--resume", str(out)])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
    assert re.search(r"checkpoint\.pt: field 'pruner'\['activity'\]", " ".join(result.output.split()))
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before

"""Property tests on files a run reads back: a mutated model.json or training checkpoint, and
YAML values under known keys, end in success or the library's one error type, never anything else."""

from __future__ import annotations

import copy
import dataclasses
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import neuroprune as npr
from neuroprune import Checkpointer, SynapticPruner, create_loader, create_model, fit
from neuroprune.config import SynapticConfig, load_config
from neuroprune.depth.config import DepthConfig, TrainConfig
from neuroprune.depth.graph_spec import save_graph_model
from neuroprune.engine import EpochLRScheduler, resume
from neuroprune.errors import ConfigError, ModelError, NeuropruneError
from neuroprune.storage import load_torch, save_torch

FAST = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                       HealthCheck.function_scoped_fixture])
EPOCHS = 2

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**40), 2**40),
                         st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8))
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=5)


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every place in a nested structure of dicts and lists (the root included)."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


def _replace(document: Any, path: tuple, value: Any, delete: bool) -> Any:
    """A copy of ``document`` with the value at ``path`` replaced (or removed from its dict or list)."""
    if not path:
        return value
    changed = copy.deepcopy(document)
    holder = changed
    for key in path[:-1]:
        holder = holder[key]
    if delete:
        del holder[path[-1]]
    else:
        holder[path[-1]] = value
    return changed


# ---- model.json -----------------------------------------------------------------------------


def _saved_models() -> dict[str, Path]:
    root = Path(tempfile.mkdtemp(prefix="saved-models-"))
    torch.manual_seed(0)
    npr.save_model(nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3)), root / "sequential")
    graph = create_model("lenet5", in_channels=1, image_size=16, num_classes=3)
    save_graph_model(graph, root / "graph", {"model": "lenet5"})
    return {"sequential": root / "sequential", "graph": root / "graph"}


SAVED = _saved_models()


def _loads_or_model_error(folder: Path, text: str) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        copy_folder = Path(scratch)
        (copy_folder / "model.safetensors").write_bytes((folder / "model.safetensors").read_bytes())
        (copy_folder / "model.json").write_text(text)
        try:
            model, _ = npr.load_model(copy_folder)
        except ModelError as error:
            assert str(error) and "\n" not in str(error)
            return
        assert isinstance(model, nn.Module)


@pytest.mark.parametrize("kind", sorted(SAVED))
@FAST
@given(data=st.data())
def test_a_mutated_model_json_loads_or_is_a_model_error(kind, data):
    folder = SAVED[kind]
    document = json.loads((folder / "model.json").read_text())
    path = data.draw(st.sampled_from(_paths(document)), label="path")
    delete = bool(path) and data.draw(st.booleans(), label="delete")
    value = None if delete else data.draw(json_values, label="value")
    _loads_or_model_error(folder, json.dumps(_replace(document, path, value, delete)))


@pytest.mark.parametrize("kind", sorted(SAVED))
@FAST
@given(data=st.data())
def test_a_model_json_with_damaged_text_loads_or_is_a_model_error(kind, data):
    folder = SAVED[kind]
    text = (folder / "model.json").read_text()
    position = data.draw(st.integers(0, len(text) - 1), label="position")
    patch = data.draw(st.text(alphabet='{}[]":,0123456789-e.tfn ', min_size=0, max_size=4), label="patch")
    cut = data.draw(st.integers(0, 4), label="cut")
    _loads_or_model_error(folder, text[:position] + patch + text[position + cut:])


# ---- training checkpoints -------------------------------------------------------------------


def _objects():
    torch.manual_seed(0)
    model = create_model("mlp", image_size=8, hidden=(8,))
    pruner = SynapticPruner(model, patience=1, check_every=2, warmup_steps=1, stop_step=None)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    schedule = EpochLRScheduler(torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=EPOCHS))
    return model, pruner, optimizer, schedule


TRAIN = create_loader("digits", "train", 16, seed=1, limit=48)
TEST = create_loader("digits", "test", 50, limit=50)


def _checkpoint_state() -> dict:
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "checkpoint.pt"
        model, pruner, optimizer, schedule = _objects()
        fit(model, TRAIN, epochs=1, optimizer=optimizer, eval_loader=TEST,
            callbacks=[pruner, schedule, Checkpointer(path, pruner, states={"lr": schedule})])
        return load_torch(path)


STATE = _checkpoint_state()
CHECKPOINT_PATHS = [path for path in _paths(STATE) if path]

tensors = st.builds(
    lambda shape, dtype, fill: torch.full(shape, fill).to(dtype),
    st.lists(st.integers(0, 5), max_size=3).map(tuple),
    st.sampled_from([torch.float32, torch.float64, torch.int64, torch.int32, torch.uint8, torch.bool]),
    st.sampled_from([0, 1, 2, -1, 0.5, float("nan"), float("inf")]),
)
checkpoint_values = st.one_of(json_scalars, tensors, st.lists(st.one_of(json_scalars, tensors), max_size=3),
                              st.dictionaries(st.text(max_size=6), st.one_of(json_scalars, tensors), max_size=3))


def _like_neighbour(path: tuple) -> Any:
    """A value of another field of the same checkpoint: plausible, and wrong where it lands."""
    value = STATE
    for key in path:
        value = value[key]
    return copy.deepcopy(value)


@FAST
@given(data=st.data())
def test_a_mutated_checkpoint_resumes_or_is_a_model_error(data):
    path = data.draw(st.sampled_from(CHECKPOINT_PATHS), label="path")
    delete = data.draw(st.booleans(), label="delete")
    value = None if delete else data.draw(
        st.one_of(checkpoint_values, st.sampled_from(CHECKPOINT_PATHS).map(_like_neighbour)), label="value")
    state = _replace(STATE, path, value, delete)
    with tempfile.TemporaryDirectory() as scratch:
        file = Path(scratch) / "checkpoint.pt"
        save_torch(file, state)
        model, pruner, optimizer, schedule = _objects()
        try:
            trainer = resume(file, model, optimizer, pruner=pruner, states={"lr": schedule}, epochs=EPOCHS,
                             history_keys=("test_accuracy",))
        except ModelError as error:
            assert str(file) in str(error) and "\n" not in str(error)
            return
    # accepted: the run goes on to its end like any other, or stops with a clear error (a learning
    # rate the schedule had raised to 1e30 diverges: TrainingDiverged says so)
    try:
        history = fit(model, TRAIN, epochs=EPOCHS, optimizer=optimizer, eval_loader=TEST,
                      callbacks=[pruner, schedule], trainer=trainer)
    except NeuropruneError as error:
        assert str(error) and "\n" not in str(error)
        return
    assert len(history) == EPOCHS and all("test_accuracy" in record for record in history)


# ---- YAML values under known keys -----------------------------------------------------------

CONFIGS = {"synaptic": SynapticConfig, "train": TrainConfig, "depth": DepthConfig}
yaml_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(10**30), 10**30), st.floats(), st.text(max_size=12)),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)


@pytest.mark.parametrize("kind", sorted(CONFIGS))
@FAST
@given(data=st.data())
def test_yaml_values_of_known_keys_give_a_config_or_a_config_error(kind, data):
    cls = CONFIGS[kind]
    keys = [field.name for field in dataclasses.fields(cls)]
    raw = data.draw(st.dictionaries(st.sampled_from(keys), yaml_values, max_size=4), label="values")
    spelled = {key.replace("_", "-") if data.draw(st.booleans(), label=f"dash {key}") else key: value
               for key, value in raw.items()}
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "c.yaml"
        path.write_text(yaml.safe_dump(spelled))
        try:
            config = load_config(cls, path, {"cut": "a:b"} if cls is DepthConfig and "search" not in raw else {})
        except ConfigError as error:
            assert str(error) and "\n" not in str(error)
            return
    assert isinstance(config, cls)

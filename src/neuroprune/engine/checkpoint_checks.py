"""Every field of a training checkpoint checked against the objects it will be loaded into.

:func:`~neuroprune.engine.resume` calls :func:`check_checkpoint` before it changes anything:
a checkpoint is someone else's file as far as this code knows (copied between machines,
edited by hand, damaged on disk), and loading half of it before the other half turns out
not to fit would leave a model, optimizer or pruner in a state no run ever had. Each
problem is one ModelError naming the file and the field.
"""

from __future__ import annotations

import math
import reprlib
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ..errors import ModelError, NeuropruneError
from ..saved_models import check_matching_state

# what fit() writes into every history record, and the types it writes
_RECORD_FIELDS = {"epoch": int}
_PLAIN = (int, float, str, bool, type(None))
_LARGEST_HYPERPARAMETER = float(torch.finfo(torch.float32).max)


class _Checker:
    """Raises the ModelError for one file; ``where`` names the field."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, problem: str) -> ModelError:
        return ModelError(f"checkpoint {self.source}: {where} {problem}; the file is damaged or was not written "
                          "for this run")

    def mapping(self, value: Any, where: str) -> Mapping[Any, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(where, f"must be a mapping, got {type(value).__name__}")
        return value

    def whole(self, value: Any, where: str, low: int = 0) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(where, f"must be a whole number >= {low}, got {_show(value)}")
        if value < low:
            raise self.fail(where, f"must be >= {low}, got {value}")
        return value

    def number(self, value: Any, where: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.fail(where, f"must be a finite number, got {_show(value)}")
        return float(value)

    def tensor(self, value: Any, where: str, shape: Sequence[int] | None = None) -> torch.Tensor:
        if not torch.is_tensor(value):
            raise self.fail(where, f"must be a tensor, got {type(value).__name__}")
        if shape is not None and tuple(value.shape) != tuple(shape):
            raise self.fail(where, f"has shape {tuple(value.shape)}, expected {tuple(shape)}")
        return value

    def same_kind(self, saved: Any, current: Any, where: str) -> None:
        """``saved`` may replace ``current``: a number for a number, a flag for a flag, lists of equal length."""
        if isinstance(current, bool) or current is None:
            if saved is not None and not isinstance(saved, bool):
                raise self.fail(where, f"must be true, false or null, got {_show(saved)}")
        elif isinstance(current, (int, float)):
            if abs(self.number(saved, where)) > _LARGEST_HYPERPARAMETER:  # torch casts these to float32
                raise self.fail(where, f"is {saved:g}, beyond what a float32 holds")
        elif isinstance(current, str):
            if not isinstance(saved, str):
                raise self.fail(where, f"must be text, got {_show(saved)}")
        elif isinstance(current, (list, tuple)):
            if not isinstance(saved, (list, tuple)) or len(saved) != len(current):
                raise self.fail(where, f"must be a list of {len(current)} values, got {_show(saved)}")
            for index, (item, template) in enumerate(zip(saved, current, strict=True)):
                self.same_kind(item, template, f"{where}[{index}]")
        elif isinstance(current, Mapping):
            saved = self.mapping(saved, where)
            for key in current.keys() & saved.keys():
                self.same_kind(saved[key], current[key], f"{where}[{key!r}]")
        elif torch.is_tensor(current):
            self.tensor(saved, where, current.shape)


def check_checkpoint(
    state: Any,
    source: str,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    pruner: Any | None = None,
    states: Mapping[str, Any] | None = None,
    epochs: int | None = None,
    history_keys: Sequence[str] = (),
    total_steps: int | None = None,
    format_version: int,
) -> None:
    """Check every part of a loaded checkpoint ``state`` against the objects it is for; change nothing.

    Args:
        state: what :func:`~neuroprune.engine.load_checkpoint` returned.
        source: the file, named in every message.
        model, optimizer, pruner, states: the objects :func:`~neuroprune.engine.resume`
            will load the state into.
        epochs: the whole run's length, when known: the checkpoint may not be beyond it, and
            (a run starts at epoch 0) its history holds one record per finished epoch.
        history_keys: numbers every history record must hold (e.g. ``test_accuracy``).
        total_steps: the run's length in optimizer steps, when known: it fixes a pruner's
            ``"auto"`` check schedule, and so how much activity the checkpoint must hold.
        format_version: the newest checkpoint format this code reads.

    Raises:
        ModelError: the first field that is missing, of the wrong type or shape, or out of range.
    """
    check = _Checker(source)
    state = check.mapping(state, "the file")
    for key in ("model", "optimizer", "epoch", "step", "history"):
        if key not in state:
            raise ModelError(f"{source} is not a training checkpoint: it has no {key!r}")
    if "format" in state and check.whole(state["format"], "field 'format'") > format_version:
        raise ModelError(f"checkpoint {source}: field 'format' is {state['format']}, newer than this neuroprune "
                         f"reads ({format_version}); update neuroprune to resume it")
    epoch = check.whole(state["epoch"], "field 'epoch'")
    if epochs is not None and epoch > epochs:
        raise check.fail("field 'epoch'", f"is {epoch}, beyond the run's {epochs} epochs")
    step = check.whole(state["step"], "field 'step'")
    _check_history(check, state["history"], epoch, step, epochs, history_keys)
    _check_model(check, state["model"], model)
    _check_optimizer(check, state["optimizer"], optimizer, step)
    if pruner is not None:
        if "pruner" not in state:
            raise ModelError(f"{source} holds no pruner state, but the run has a pruner")
        _check_pruner(check, state["pruner"], pruner, total_steps)
    saved_states = check.mapping(state.get("states", {}), "field 'states'")
    for name, obj in (states or {}).items():
        if name not in saved_states:
            raise ModelError(f"{source} holds no state named {name!r} (it has {sorted(map(str, saved_states))})")
        template = obj.state_dict() if hasattr(obj, "state_dict") else None
        if template is not None:
            where = f"field 'states'[{name!r}]"
            check.same_kind(saved_states[name], template, where)
            if isinstance(template, Mapping) and set(saved_states[name]) != set(template):
                # load_state_dict copies every key onto the object: an extra one breaks it later
                raise check.fail(where, f"holds the keys {_show(sorted(map(str, saved_states[name])))}, not "
                                        f"exactly {_show(sorted(template))}")
    _check_rng(check, state)
    if "world_size" in state:
        check.whole(state["world_size"], "field 'world_size'", low=1)
    if "grad_scaler" in state:
        _check_grad_scaler(check, state["grad_scaler"])


def _check_history(
    check: _Checker, history: Any, epoch: int, step: int, epochs: int | None, history_keys: Sequence[str]
) -> None:
    """A list with one record per finished epoch (numbered up to ``epoch``) of plain values."""
    if not isinstance(history, list):
        raise check.fail("field 'history'", f"must be a list of per-epoch records, got {type(history).__name__}")
    if len(history) > epoch or (epochs is not None and len(history) != epoch):
        raise check.fail("field 'history'", f"holds {len(history)} records for {epoch} finished epochs")
    for index, record in enumerate(history):
        where = f"field 'history'[{index}]"
        record = check.mapping(record, where)
        for key, value in record.items():
            if not isinstance(key, str) or not isinstance(value, _PLAIN):
                raise check.fail(where, f"must map names to plain values, got {_show(key)}: {_show(value)}")
        for key in _RECORD_FIELDS:
            if key not in record:
                raise check.fail(where, f"has no {key!r}")
        check.whole(record["epoch"], f"{where}['epoch']")
        for key in history_keys:
            if key not in record:
                raise check.fail(where, f"has no {key!r}")
            check.number(record[key], f"{where}[{key!r}]")
    numbers = [record["epoch"] for record in history]
    if numbers and numbers != list(range(epoch - len(numbers) + 1, epoch + 1)):
        raise check.fail("field 'history'", f"numbers its epochs {_show(numbers)}, not the epochs up to {epoch}")
    last_step = history[-1].get("step") if history else None
    if isinstance(last_step, int) and not isinstance(last_step, bool) and last_step != step:
        raise check.fail("field 'step'", f"is {step}, but the last history record ends at step {last_step}")


def _check_model(check: _Checker, saved: Any, model: nn.Module) -> None:
    saved = check.mapping(saved, "field 'model'")
    for key, value in saved.items():
        check.tensor(value, f"field 'model'[{_show(key)}]")
    expected = model.state_dict()
    for key, value in saved.items():
        if key in expected and expected[key].is_floating_point() and not value.is_floating_point():
            raise check.fail(f"field 'model'[{key!r}]", f"holds {value.dtype} values, not floating-point weights")
    check_matching_state(model, dict(saved), f"checkpoint {check.source} (field 'model')")


def _check_optimizer(check: _Checker, saved: Any, optimizer: torch.optim.Optimizer, step: int) -> None:
    """Groups and hyperparameters of the same kinds, every state tensor shaped like its parameter, and,
    once training has stepped, the whole state of every parameter (momentum, Adam's moments and step)."""
    saved = check.mapping(saved, "field 'optimizer'")
    groups, state = saved.get("param_groups"), check.mapping(saved.get("state", {}), "field 'optimizer'['state']")
    if not isinstance(groups, list) or len(groups) != len(optimizer.param_groups):
        count = len(groups) if isinstance(groups, list) else _show(groups)
        raise check.fail("field 'optimizer'['param_groups']",
                         f"must list {len(optimizer.param_groups)} parameter group(s), got {count}")
    parameters: dict[Any, torch.Tensor] = {}
    required: dict[Any, set[str]] = {}
    for index, (group, current) in enumerate(zip(groups, optimizer.param_groups, strict=True)):
        where = f"field 'optimizer'['param_groups'][{index}]"
        group = check.mapping(group, where)
        ids = group.get("params")
        if not isinstance(ids, list) or len(ids) != len(current["params"]):
            raise check.fail(f"{where}['params']",
                             f"must list {len(current['params'])} parameter ids, got {_show(ids)}")
        for key in current.keys() - {"params"}:
            if key in group:
                check.same_kind(group[key], current[key], f"{where}[{key!r}]")
            elif not (isinstance(current[key], bool) or current[key] is None):
                # flags missing from an older torch's file get defaults; hyperparameters do not
                raise check.fail(where, f"has no {key!r}")
        if "lr" in group and group["lr"] < 0:
            raise check.fail(f"{where}['lr']", f"must be >= 0, got {group['lr']}")
        for saved_id, parameter in zip(ids, current["params"], strict=True):
            if isinstance(saved_id, bool) or not isinstance(saved_id, int) or saved_id in parameters:
                raise check.fail(f"{where}['params']", f"must hold distinct whole numbers, got {_show(ids)}")
            parameters[saved_id] = parameter
            required[saved_id] = _state_keys(optimizer, {**current, **group})
    for saved_id, entry in state.items():
        where = f"field 'optimizer'['state'][{_show(saved_id)}]"
        if saved_id not in parameters:
            raise check.fail(where, "belongs to no parameter of the saved groups")
        for name, value in check.mapping(entry, where).items():
            _check_optimizer_value(check, name, value, parameters[saved_id], f"{where}[{_show(name)}]")
    if step == 0:
        return  # no step taken: no state yet
    for saved_id, keys in required.items():
        where = f"field 'optimizer'['state'][{_show(saved_id)}]"
        if keys and saved_id not in state:
            raise check.fail("field 'optimizer'['state']", f"has no state for parameter {_show(saved_id)} after "
                                                           f"{step} steps (it needs {', '.join(sorted(keys))})")
        missing = sorted(name for name in keys if state.get(saved_id, {}).get(name) is None)
        if missing:
            raise check.fail(where, f"has no {', '.join(map(repr, missing))} after {step} steps")


def _state_keys(optimizer: torch.optim.Optimizer, group: Mapping[str, Any]) -> set[str]:
    """What ``optimizer`` keeps per parameter once it has stepped (empty when unknown or stateless)."""
    if isinstance(optimizer, (torch.optim.Adam, torch.optim.AdamW)):
        return {"step", "exp_avg", "exp_avg_sq"} | ({"max_exp_avg_sq"} if group.get("amsgrad") else set())
    if isinstance(optimizer, torch.optim.SGD) and group.get("momentum"):
        return {"momentum_buffer"}
    return set()


def _check_optimizer_value(check: _Checker, name: Any, value: Any, parameter: torch.Tensor, where: str) -> None:
    """A buffer shaped like ``parameter`` (momentum, moment estimates), or Adam's step count."""
    if value is None:  # SGD treats a missing momentum buffer as the first step's
        return
    if name == "step":  # a 0-d tensor since torch 1.12, a number before
        number = value.item() if torch.is_tensor(value) and value.dim() == 0 and not value.is_complex() else value
        if check.number(number, where) < 0:
            raise check.fail(where, f"must be >= 0, got {number}")
        return
    check.tensor(value, where, parameter.shape)
    if not value.is_floating_point():
        raise check.fail(where, f"holds {value.dtype} values, not floating-point ones")
    if not bool(torch.isfinite(value).all()):
        raise check.fail(where, "holds NaN or infinite values")


def _check_pruner(check: _Checker, saved: Any, pruner: Any, total_steps: int | None) -> None:
    """The state :meth:`SynapticPruner.state_dict` writes, for this pruner's layers and criterion.

    A pruner with masks but no counters (the GMP baseline) gets its masks, step and history
    checked; a pruner of another kind the generic check: the same keys, each of the kind
    its current state has.
    """
    template = pruner.state_dict()
    if not (isinstance(template, Mapping) and "masks" in template):
        check.same_kind(saved, template, "field 'pruner'")
        if isinstance(template, Mapping) and set(check.mapping(saved, "field 'pruner'")) != set(template):
            raise check.fail("field 'pruner'", f"holds the keys {_show(sorted(map(str, saved)))}, not exactly "
                                               f"{_show(sorted(map(str, template)))}")
        return
    saved = check.mapping(saved, "field 'pruner'")
    check.whole(saved.get("step"), "field 'pruner'['step']")
    missing = sorted(set(template) - set(saved))
    if missing:  # every part changes what the resumed run decides
        raise check.fail("field 'pruner'", f"has no {', '.join(map(repr, missing))}")
    for part in ("masks", "counters") if "counters" in template else ("masks",):
        got = check.mapping(saved.get(part), f"field 'pruner'[{part!r}]")
        if set(got) != set(template[part]):
            raise check.fail(f"field 'pruner'[{part!r}]", f"names layers {sorted(map(str, got))}, this model's "
                                                          f"prunable layers are {sorted(template[part])}")
    for key, expected in template["masks"].items():
        mask = check.tensor(saved["masks"][key], f"field 'pruner'['masks'][{key!r}]", expected.shape)
        if mask.is_complex() or not bool(((mask == 0) | (mask == 1)).all()):
            raise check.fail(f"field 'pruner'['masks'][{key!r}]", "must hold only 0 and 1")
    for part in ("counters", "unit_counters"):
        got = check.mapping(saved.get(part, {}), f"field 'pruner'[{part!r}]")
        for key, counters in got.items():
            where = f"field 'pruner'[{part!r}][{_show(key)}]"
            if key not in template.get(part, {}):
                raise check.fail(where, "names no prunable layer of this model")
            _check_counts(check, counters, where, template[part][key].shape)
    if "activity" in saved:
        _check_activity(check, saved["activity"], pruner, set(template["masks"]))
        _check_activity_amount(check, saved, pruner, total_steps)
    if "latency_costs" in template:
        costs = check.mapping(saved["latency_costs"], "field 'pruner'['latency_costs']")
        if set(costs) != set(template["latency_costs"]) or not all(
                isinstance(c, float) and math.isfinite(c) and c >= 0 for c in costs.values()):
            raise check.fail("field 'pruner'['latency_costs']", f"must give one finite cost >= 0 for each of "
                                                                f"{sorted(template['latency_costs'])}")
    if "history" in saved and (not isinstance(saved["history"], list)
                               or not all(isinstance(record, Mapping) for record in saved["history"])):
        raise check.fail("field 'pruner'['history']", "must be a list of check records")


def _check_counts(check: _Checker, value: Any, where: str, shape: Sequence[int]) -> None:
    counts = check.tensor(value, where, shape)
    if counts.is_floating_point() or counts.is_complex() or counts.dtype == torch.bool:
        raise check.fail(where, f"must hold whole numbers, got {counts.dtype}")
    if counts.numel() and int(counts.min()) < 0:
        raise check.fail(where, "must not be negative")


def _check_activity(check: _Checker, activity: Any, pruner: Any, keys: set[str]) -> None:
    """Running sums and batch counts for some of the layers, shaped as the tracker keeps them."""
    activity = check.mapping(activity, "field 'pruner'['activity']")
    sums = check.mapping(activity.get("sums"), "field 'pruner'['activity']['sums']")
    batches = check.mapping(activity.get("batches"), "field 'pruner'['activity']['batches']")
    if set(sums) != set(batches) or not set(sums) <= keys:
        raise check.fail("field 'pruner'['activity']", f"names layers {sorted(map(str, sums))} with sums and "
                                                       f"{sorted(map(str, batches))} with counts; this model's "
                                                       f"prunable layers are {sorted(keys)}")
    if sums and getattr(getattr(pruner, "tracker", None), "criterion", None) == "magnitude":
        raise check.fail("field 'pruner'['activity']", "holds activity sums, but criterion magnitude gathers none")
    for key, value in sums.items():
        where = f"field 'pruner'['activity']['sums'][{key!r}]"
        shape = _activity_shape(pruner, key.removesuffix(".weight"))
        stat = check.tensor(value, where, shape)
        if not stat.is_floating_point() or not bool(torch.isfinite(stat).all()):
            raise check.fail(where, "must hold finite floating-point numbers")
        check.whole(batches[key], f"field 'pruner'['activity']['batches'][{key!r}]", low=1)


def _check_activity_amount(check: _Checker, saved: Mapping[str, Any], pruner: Any, total_steps: int | None) -> None:
    """As many batches of activity as the pruner gathered since its last check, for every layer it watches.

    Activity cut or emptied would go unnoticed and change every later decision. The count
    follows from the check schedule (known when the pruner was planned, or from
    ``total_steps``), the saved step and ``sample_every``; without a schedule it is skipped.
    """
    schedule = _schedule_of(pruner, total_steps)
    tracker = getattr(pruner, "tracker", None)
    if schedule is None or tracker is None or getattr(tracker, "criterion", None) == "magnitude":
        return
    target = getattr(pruner, "target_sparsity", None)
    if target is not None and _saved_sparsity(saved) >= target - 0.5 / max(1, _saved_connections(saved)):
        return  # tracking stops once the target is met
    step, every = saved["step"], getattr(pruner, "sample_every", 1)
    end = step if schedule.stop_step is None else min(step, schedule.stop_step)  # nothing counts after the stop
    checks = max(0, end - schedule.warmup_steps) // schedule.check_every
    last_check = schedule.warmup_steps + schedule.check_every * checks if checks else 0
    expected = sum(1 for t in range(last_check + 1, end + 1) if schedule.collects(t) and t % every == 0)
    batches = saved["activity"]["batches"]
    watched = sorted(f"{name}.weight" for name in getattr(tracker, "layers", {}))
    got = {key: batches.get(key, 0) for key in watched}
    if any(count != expected for count in got.values()):
        raise check.fail("field 'pruner'['activity']", f"holds {_show(got)} batches, but the pruner gathers "
                                                       f"{expected} per layer between its last check (step "
                                                       f"{last_check}) and step {step}")


def _schedule_of(pruner: Any, total_steps: int | None) -> Any:
    """The check schedule the resumed run will prune on: the one :meth:`SynapticPruner.plan` fixes for ``total_steps``.

    A pruner given whole numbers for its interval and warm-up has a schedule from the start,
    but an ``"auto"`` stop in it stays open until training begins and plans it for the run's
    length; the saved activity was gathered on that planned schedule, so it is the one to count on.
    """
    schedule = getattr(pruner, "schedule", None)
    requested = getattr(pruner, "_requested", None)
    if total_steps and requested is not None:
        # deferred: the engine does not import synaptic/ when it loads
        from ..synaptic.schedule import resolve_schedule

        try:
            schedule = resolve_schedule(*requested, total_steps)
        except NeuropruneError:
            return None
    return schedule


def _saved_sparsity(saved: Mapping[str, Any]) -> float:
    total = _saved_connections(saved)
    return sum(int((mask == 0).sum()) for mask in saved["masks"].values()) / max(1, total)


def _saved_connections(saved: Mapping[str, Any]) -> int:
    return sum(mask.numel() for mask in saved["masks"].values())


def _activity_shape(pruner: Any, name: str) -> tuple[int, ...] | None:
    """The shape of one layer's running activity sum (see ``ActivityTracker._batch_statistic``), if known."""
    tracker, layers = getattr(pruner, "tracker", None), getattr(pruner, "layers", {})
    module = layers.get(name) if isinstance(layers, Mapping) else None
    if tracker is None or module is None:
        return None
    fan_in = module.in_channels if isinstance(module, nn.Conv2d) else getattr(module, "in_features", None)
    if fan_in is None:
        return None
    criterion = getattr(tracker, "criterion", None)
    if criterion == "deviation":
        return (2, fan_in)  # mean x and mean x^2
    if criterion == "hebbian":
        return (module.weight.shape[0], fan_in)
    if criterion in ("contribution", "presynaptic"):
        return (fan_in,)
    return None


def _check_rng(check: _Checker, state: Mapping[str, Any]) -> None:
    """Byte tensors that ``torch.set_rng_state`` takes (and CUDA states of the same kind)."""
    expected = torch.get_rng_state()
    saved = state.get("rng")

    def one(value: Any, where: str, like: torch.Tensor | None) -> None:
        tensor = check.tensor(value, where)
        if tensor.dtype != torch.uint8 or tensor.dim() != 1 or (like is not None and tensor.shape != like.shape):
            size = f" of {like.numel()}" if like is not None else ""
            raise check.fail(where, f"must be a random-generator state (a uint8 vector{size}), got "
                                    f"{tensor.dtype} {tuple(tensor.shape)}")
        if like is not None:
            try:  # a scratch generator: the global one stays as it is
                torch.Generator().set_state(tensor)
            except RuntimeError:
                raise check.fail(where, "is not a valid random-generator state") from None

    if saved is None:  # an older checkpoint: rank 0's CPU state only
        if "torch_rng" not in state:
            raise check.fail("field 'rng'", "is missing (and so is the older 'torch_rng')")
        one(state["torch_rng"], "field 'torch_rng'", expected)
        return
    if not isinstance(saved, list) or not saved:
        raise check.fail("field 'rng'", f"must be a list of every process's states, got {_show(saved)}")
    for rank, entry in enumerate(saved):
        where = f"field 'rng'[{rank}]"
        entry = check.mapping(entry, where)
        one(entry.get("torch"), f"{where}['torch']", expected)
        cuda = entry.get("cuda", [])
        if not isinstance(cuda, list):
            raise check.fail(f"{where}['cuda']", f"must be a list, got {type(cuda).__name__}")
        for device, value in enumerate(cuda):
            one(value, f"{where}['cuda'][{device}]", None)
    if "torch_rng" in state:
        one(state["torch_rng"], "field 'torch_rng'", expected)


def _check_grad_scaler(check: _Checker, saved: Any) -> None:
    saved = check.mapping(saved, "field 'grad_scaler'")
    for key in ("scale", "growth_factor", "backoff_factor"):
        if check.number(saved.get(key), f"field 'grad_scaler'[{key!r}]") <= 0:
            raise check.fail(f"field 'grad_scaler'[{key!r}]", f"must be > 0, got {saved[key]}")
    check.whole(saved.get("growth_interval"), "field 'grad_scaler'['growth_interval']", low=1)
    check.whole(saved.get("_growth_tracker"), "field 'grad_scaler'['_growth_tracker']")


class _ShortRepr(reprlib.Repr):
    """reprlib's bounded rendering, with a tensor as its dtype and shape (its own repr spans lines)."""

    def repr_Tensor(self, value: torch.Tensor, level: int) -> str:
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"


_SHORT = _ShortRepr()  # keyword arguments to Repr() need Python 3.12
_SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxdict, _SHORT.maxstring, _SHORT.maxother = 2, 4, 4, 40, 40


def _show(value: Any) -> str:
    """A short, one-line rendering of a value from the file (it may be huge)."""
    text = " ".join(_SHORT.repr(value).split())
    return text if len(text) <= 60 else text[:57] + "..."

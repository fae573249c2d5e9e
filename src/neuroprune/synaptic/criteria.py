"""Pruning criteria: what a connection's importance is, as one small class each.

A criterion says which statistics it needs from the :class:`~neuroprune.synaptic.ActivityTracker`
(a few named reductions of each layer's input and output, gathered per batch and averaged
between checks) and turns them, with the weight, into one score per connection: low scores
are pruned first. A new criterion is one class and one :func:`register_criterion` line.

Statistics a criterion can ask for (per layer; "feature" is an input channel for Conv2d,
"unit" an output channel; for Conv2d the means run over samples and positions):

    input_abs       (in,)       mean |x_i|
    input_moments   (2, in)     mean x_i and mean x_i^2
    output_moments  (2, out)    mean y_j and mean y_j^2, y the layer's output before any norm
                                or nonlinearity that follows it
    coactivity      (out, in)   mean over samples of |x_i| * |y_j| (Conv2d: spatial means per sample)

Example:
    >>> criterion = create_criterion("normalised")
    >>> criterion.statistics
    ('input_moments', 'output_moments')
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import ClassVar

import torch
from torch import nn

STATISTICS = ("input_abs", "input_moments", "output_moments", "coactivity")

_EPS = 1e-12
_REGISTRY: dict[str, type[Criterion]] = {}


class Criterion:
    """Base class: a connection score from the weight and the tracker's statistics.

    Subclasses set ``name`` and ``statistics`` (names from :data:`STATISTICS`) and implement
    :meth:`score`. ``statistics`` empty means the criterion needs no hooks at all.
    """

    name: ClassVar[str] = ""
    statistics: ClassVar[tuple[str, ...]] = ()

    def score(self, weight: torch.Tensor, stats: Mapping[str, torch.Tensor], module: nn.Module) -> torch.Tensor:
        """Per-connection importance, float32, shaped like ``weight``.

        Args:
            weight: the layer's weight, (out, in) or (out, in/groups, kh, kw).
            stats: statistic name -> its value averaged since the last check (shapes above).
            module: the Linear or Conv2d layer (for groups).
        """
        raise NotImplementedError

    def prepare(self, model: nn.Module, layers: Mapping[str, nn.Module]) -> None:
        """Look up what the score needs beyond the statistics, once, before pruning (default: nothing).

        Args:
            model: the whole network.
            layers: name -> the Linear/Conv2d layers that will be scored.
        """

    @property
    def knows_input_means(self) -> bool:
        """Whether the statistics include the signed mean input (needed to fold pruned connections into the bias)."""
        return "input_moments" in self.statistics

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def register_criterion(cls: type[Criterion]) -> type[Criterion]:
    """Class decorator: make a criterion available by its ``name`` (CLI, YAML, :func:`create_criterion`)."""
    unknown = sorted(set(cls.statistics) - set(STATISTICS))
    if not cls.name or unknown:
        raise ValueError(f"criterion {cls.__name__} needs a name and statistics from {STATISTICS}; got {unknown}")
    _REGISTRY[cls.name] = cls
    return cls


def create_criterion(criterion: str | Criterion) -> Criterion:
    """The criterion registered under ``criterion`` (a Criterion instance passes through).

    Raises:
        ValueError: no criterion has that name.
    """
    if isinstance(criterion, Criterion):
        return criterion
    if criterion not in _REGISTRY:
        raise ValueError(f"unknown criterion {criterion!r}; choose one of: {', '.join(_REGISTRY)}")
    return _REGISTRY[criterion]()


def list_criteria() -> tuple[str, ...]:
    """Names of every registered criterion, in registration order."""
    return tuple(_REGISTRY)


# ---- the criteria ---------------------------------------------------------------------------


@register_criterion
class Deviation(Criterion):
    """``|W[j, i]| * std(x_i)``: the part of a connection's signal that varies (the default).

    The constant part, ``W[j, i] * mean x_i``, can move into the bias when the connection goes.
    """

    name = "deviation"
    statistics = ("input_moments",)

    def score(self, weight: torch.Tensor, stats: Mapping[str, torch.Tensor], module: nn.Module) -> torch.Tensor:
        return weight.detach().abs().float() * expand_to_weight(module, input_std(stats))


@register_criterion
class Contribution(Criterion):
    """``|W[j, i]| * mean |x_i|``: the signal a connection carries."""

    name = "contribution"
    statistics = ("input_abs",)

    def score(self, weight: torch.Tensor, stats: Mapping[str, torch.Tensor], module: nn.Module) -> torch.Tensor:
        return weight.detach().abs().float() * expand_to_weight(module, stats["input_abs"])


@register_criterion
class Presynaptic(Criterion):
    """``mean |x_i|``: how active the connection's input is, whatever its weight."""

    name = "presynaptic"
    statistics = ("input_abs",)

    def score(self, weight: torch.Tensor, stats: Mapping[str, torch.Tensor], module: nn.Module) -> torch.Tensor:
        return expand_to_weight(module, stats["input_abs"])


@register_criterion
class Hebbian(Criterion):
    """``mean |x_i| * |y_j|``: pre- times post-synaptic activity (y before any nonlinearity)."""

    name = "hebbian"
    statistics = ("coactivity",)

    def score(self, weight: torch.Tensor, stats: Mapping[str, torch.Tensor], module: nn.Module) -> torch.Tensor:
        return expand_to_weight(module, stats["coactivity"], is_pairwise=True)


@register_criterion
class Magnitude(Criterion):
    """``|W[j, i]|`` (Han et al. 2015; gradual magnitude pruning's criterion); gathers no statistics."""

    name = "magnitude"
    statistics = ()

    def score(self, weight: torch.Tensor, stats: Mapping[str, torch.Tensor], module: nn.Module) -> torch.Tensor:
        return weight.detach().abs().float()


@register_criterion
class NormalisedActivity(Criterion):
    """``|W[j, i]| * std(x_i) / std(y_j)``: the share of its unit's variation a connection carries.

    ``y_j`` is unit j's output before whatever follows the layer (for Conv2d, per output
    channel over samples and positions). The score does not change when a unit's weights are
    all scaled by one factor, which behind a batch norm (or any per-unit normalisation) changes
    nothing the network computes, while ``|W|`` and ``|W| * std(x)`` change with it. A unit
    whose output does not vary (std 0) gives its connections score 0.
    """

    name = "normalised"
    statistics = ("input_moments", "output_moments")

    def score(self, weight: torch.Tensor, stats: Mapping[str, torch.Tensor], module: nn.Module) -> torch.Tensor:
        carried = weight.detach().abs().float() * expand_to_weight(module, input_std(stats))
        unit_std = _std(stats["output_moments"])  # (out,)
        scale = torch.where(unit_std > _EPS, 1.0 / unit_std.clamp_min(_EPS), torch.zeros_like(unit_std))
        return carried * scale.view(-1, *([1] * (weight.dim() - 1)))


@register_criterion
class NormalisedWithinLayer(NormalisedActivity):
    """Normalised activity decides which connections of a layer go; magnitude decides how many per layer.

    The layer's ``|W|`` values are handed out again in the order of the normalised activity:
    the connection with the k-th smallest activity gets the k-th smallest ``|W|`` of its layer.
    A single global ranking of these scores therefore takes from each layer as many
    connections as global magnitude would at that moment, while inside a layer the activity
    chooses. Over a run the counts drift far apart, for reasons not yet pinned down (the synaptic
    pruner takes connections weak at ``patience`` consecutive checks first, and the surviving
    weights train differently), so the final per-layer shares are not magnitude's (on an MLP
    with raw Fashion-MNIST inputs at 90%: 0.89 / 0.97 / 0.97 of fc1 / fc2 / fc3 against global GMP's 0.94 / 0.62 / 0.37,
    ``benchmarks/results/synaptic_criteria_mlp_raw_lr1e-3.json``).
    """

    name = "normalised-layerwise"

    def score(self, weight: torch.Tensor, stats: Mapping[str, torch.Tensor], module: nn.Module) -> torch.Tensor:
        activity = super().score(weight, stats, module).flatten()
        magnitudes = weight.detach().abs().float().flatten().sort().values
        result = torch.empty_like(magnitudes)
        result[activity.argsort(stable=True)] = magnitudes  # k-th weakest gets the k-th smallest |w|
        return result.view_as(weight)


@register_criterion
class PostNormActivity(NormalisedActivity):
    """Normalised activity times the following batch norm's scale: ``|gamma_j| * |W[j, i]| * std(x_i) / std(y_j)``.

    A batch norm divides unit j's output by its spread (``std(y_j)``, up to its epsilon)
    and multiplies it by ``gamma_j``, so this is the connection's share of the variation
    the *normalised* unit passes on: the activity that reaches the next layer. The
    normalised score compares connections within a unit, and ties GMP behind batch norm;
    this one also ranks units by what survives the norm, the scale batch norm learns in
    place of the weights' (network slimming's channel criterion, Liu et al. 2017). A layer
    whose output goes to anything else than a BatchNorm (or that cannot be traced) keeps the
    normalised score (gamma 1).
    """

    name = "post-norm"

    def __init__(self) -> None:
        self._norms: dict[int, nn.Module] = {}

    def prepare(self, model: nn.Module, layers: Mapping[str, nn.Module]) -> None:
        self._norms = following_norms(model, layers)

    def score(self, weight: torch.Tensor, stats: Mapping[str, torch.Tensor], module: nn.Module) -> torch.Tensor:
        share = super().score(weight, stats, module)
        norm = self._norms.get(id(module))
        if norm is None or getattr(norm, "weight", None) is None:
            return share
        gamma = norm.weight.detach().abs().float().to(share.device)
        return share * gamma.view(-1, *([1] * (weight.dim() - 1)))


# ---- helpers --------------------------------------------------------------------------------


def following_norms(model: nn.Module, layers: Mapping[str, nn.Module]) -> dict[int, nn.Module]:
    """id(layer) -> the BatchNorm that alone reads its output, for each of ``layers`` that has one.

    Found in the torch.fx graph of ``model``; an untraceable model gives no pairs.
    """
    from ..errors import ModelError
    from ..structure.regions import trace

    try:
        graph = trace(model).graph
    except ModelError:
        return {}
    ids = {id(module) for module in layers.values()}
    found: dict[int, nn.Module] = {}
    for node in graph.nodes:
        if node.op != "call_module" or id(model.get_submodule(node.target)) not in ids or len(node.users) != 1:
            continue
        [user] = node.users
        if user.op == "call_module" and isinstance(model.get_submodule(user.target), nn.modules.batchnorm._BatchNorm):
            found[id(model.get_submodule(node.target))] = model.get_submodule(user.target)
    return found


def input_std(stats: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """(in,) standard deviation of each input feature from the ``input_moments`` statistic."""
    return _std(stats["input_moments"])


def _std(moments: torch.Tensor) -> torch.Tensor:
    # (2, n): mean and mean square -> (n,) std; clamped, float rounding can make the variance < 0
    return (moments[1] - moments[0].square()).clamp_min(0).sqrt()


def expand_to_weight(module: nn.Module, stat: torch.Tensor, is_pairwise: bool = False) -> torch.Tensor:
    """Broadcast a per-input (in,) or per-pair (out, in) statistic to the weight's shape.

    For Conv2d every kernel tap (kh, kw) of an input channel gets the channel's value (the
    channel-mean approximation, which ignores the border effect of padding).
    """
    weight = module.weight
    if isinstance(module, nn.Conv2d):
        out_ch, in_per_group = weight.shape[:2]
        groups = module.groups
        if is_pairwise:
            # (C_out, C_in) -> (C_out, C_in/groups): each output channel sees only its group's inputs
            rows = torch.arange(out_ch, device=stat.device) // (out_ch // groups)
            cols = rows.unsqueeze(1) * in_per_group + torch.arange(in_per_group, device=stat.device)
            per_pair = stat.gather(1, cols)
        else:
            per_pair = stat.reshape(groups, in_per_group).repeat_interleave(out_ch // groups, dim=0)
        return per_pair[:, :, None, None].expand_as(weight).contiguous()
    if is_pairwise:
        return stat
    return stat.unsqueeze(0).expand_as(weight).contiguous()


def batch_statistic(name: str, module: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """One batch's value of statistic ``name`` (see :data:`STATISTICS`), float32."""
    return _BATCH[name](isinstance(module, nn.Conv2d), x.float(), y.float())


def _features(x: torch.Tensor, is_conv: bool) -> tuple[tuple[int, ...], int]:
    """Dims to reduce so one value per feature (channel for Conv2d) is left, and how many values each has."""
    dims = (0, 2, 3) if is_conv else tuple(range(x.dim() - 1))
    return dims, x.numel() // (x.shape[1] if is_conv else x.shape[-1])


def _abs_mean(is_conv: bool, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    dims, count = _features(x, is_conv)
    return x.abs().sum(dim=dims).div_(count)  # the same as vector_norm(ord=1), a plain reduction and faster on CPU


def _moments(t: torch.Tensor, is_conv: bool) -> torch.Tensor:
    dims, count = _features(t, is_conv)
    return torch.stack((t.sum(dim=dims), t.square().sum(dim=dims))).div_(count)


def _coactivity(is_conv: bool, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if is_conv:
        x, y = x.abs().mean(dim=(2, 3)), y.abs().mean(dim=(2, 3))  # (N, C_in), (N, C_out)
    else:
        x, y = x.abs().reshape(-1, x.shape[-1]), y.abs().reshape(-1, y.shape[-1])  # (N, in), (N, out)
    return y.t() @ x / x.shape[0]  # (out, in) for Linear, (C_out, C_in) for Conv2d


_BATCH: dict[str, Callable[[bool, torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "input_abs": _abs_mean,
    "input_moments": lambda is_conv, x, y: _moments(x, is_conv),
    "output_moments": lambda is_conv, x, y: _moments(y, is_conv),
    "coactivity": _coactivity,
}


def statistic_width(name: str, module: nn.Module) -> int:
    """Length of statistic ``name``'s last dimension for ``module`` (inputs, or outputs for output_moments)."""
    if name == "output_moments":
        return module.out_channels if isinstance(module, nn.Conv2d) else module.out_features
    return module.in_channels if isinstance(module, nn.Conv2d) else module.in_features

"""Property: a compacted model computes what the masked one computes, and survives save/load, or is refused by name.

Hypothesis builds small random models one step at a time, keeping a real example tensor
of every value so that each drawn step is checked against the shapes it meets (a step
that fails on them is dropped). Two kinds of model:

- chains: nn.Sequential of the trait table's layers, with residual blocks
  (:class:`~neuroprune.models.resnet.Residual`) and module objects placed twice; these
  must compact exactly and save and load exactly;
- programs: a module whose forward runs a list of steps over earlier values, with the
  operations a user writes in a few lines (functional activations, reductions over each
  axis, concatenation, chunk and split, reshape, view, permute, products, broadcasts,
  functional pooling, modules called twice, a layer's weight used on its own); these must
  compact exactly, and save and load exactly or be refused with an error that names
  the module or operation.

Weights are pruned at random: whole rows (units), whole columns, single connections, with
random biases and BatchNorm statistics, so constant channels and dead channels both occur.

CI runs a bounded, derandomised number of examples; ``NEUROPRUNE_PROPERTY_EXAMPLES=5000``
runs more.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from typing import Any

import torch
import torch.fx as fx
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from neuroprune import ModelError, compact, load_model, save_model
from neuroprune.models.resnet import Residual

EXAMPLES = int(os.environ.get("NEUROPRUNE_PROPERTY_EXAMPLES", "40"))
PROPERTY = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                           HealthCheck.function_scoped_fixture, HealthCheck.data_too_large])
BATCH = 3
MAX_FEATURES = 400  # per sample: keeps every model small
HAS_NORM_BIAS = "bias" in inspect.signature(nn.BatchNorm2d).parameters

Draw = Callable[[st.SearchStrategy[Any]], Any]


# ---- layers of the trait table, drawn for the shape they meet -----------------------------


def _activation(draw: Draw, inplace_ok: bool) -> nn.Module:
    inplace = inplace_ok and draw(st.booleans())
    return draw(st.sampled_from([
        lambda: nn.ReLU(inplace=inplace), lambda: nn.ReLU6(inplace=inplace), lambda: nn.LeakyReLU(0.2, inplace=inplace),
        lambda: nn.GELU(approximate=draw(st.sampled_from(["none", "tanh"]))), lambda: nn.ELU(0.7),
        lambda: nn.SiLU(), lambda: nn.Hardswish(), lambda: nn.Hardtanh(-0.5, 0.7), lambda: nn.Tanh(),
        lambda: nn.Sigmoid(),
    ]))()


def _map_layer(draw: Draw, c: int, h: int, w: int, in_chain: bool) -> nn.Module:
    """A layer for an (N, c, h, w) input."""
    kind = draw(st.sampled_from(["conv", "conv", "conv", "norm", "activation", "maxpool", "avgpool", "adaptive", "pad",
                                 "upsample", "passthrough", "groupnorm", "layernorm", "flatten"]))
    if kind == "conv":
        groups = draw(st.sampled_from(["dense", "dense", "depthwise", "grouped"]))
        out = c if groups == "depthwise" else draw(st.integers(1, 6))
        n_groups = {"dense": 1, "depthwise": c, "grouped": 2}[groups]
        stride = draw(st.sampled_from([1, 1, 2]))
        padding = draw(st.sampled_from([0, 1, "same"] if stride == 1 else [0, 1]))
        return nn.Conv2d(c, out * (2 if groups == "grouped" else 1), draw(st.sampled_from([1, 2, 3])), stride=stride,
                         padding=padding, dilation=draw(st.sampled_from([1, 1, 2])), groups=n_groups,
                         bias=draw(st.booleans()),
                         padding_mode=draw(st.sampled_from(["zeros", "zeros", "reflect", "replicate", "circular"])))
    if kind == "norm":
        extra = {"bias": draw(st.booleans())} if HAS_NORM_BIAS else {}
        return nn.BatchNorm2d(c, affine=draw(st.booleans()), track_running_stats=draw(st.booleans()), **extra)
    if kind == "activation":
        return _activation(draw, inplace_ok=True)
    if kind == "maxpool":
        k = draw(st.integers(1, 3))
        return nn.MaxPool2d(k, stride=draw(st.sampled_from([None, 1, 2])), padding=draw(st.integers(0, k // 2)),
                            dilation=draw(st.sampled_from([1, 2])), ceil_mode=draw(st.booleans()),
                            return_indices=not in_chain and draw(st.booleans()))
    if kind == "avgpool":
        k = draw(st.integers(1, 3))
        return nn.AvgPool2d(k, stride=draw(st.sampled_from([None, 1, 2])), padding=draw(st.integers(0, k // 2)),
                            ceil_mode=draw(st.booleans()), count_include_pad=draw(st.booleans()),
                            divisor_override=draw(st.sampled_from([None, None, 1, 3])))
    if kind == "adaptive":
        size = draw(st.sampled_from([1, 2, (2, 1), 3]))
        if draw(st.booleans()):
            return nn.AdaptiveAvgPool2d(size)
        return nn.AdaptiveMaxPool2d(size, return_indices=not in_chain and draw(st.booleans()))
    if kind == "pad":
        return nn.ZeroPad2d(draw(st.sampled_from([1, (1, 0, 0, 2)])))
    if kind == "upsample":
        mode = draw(st.sampled_from(["nearest", "nearest-exact", "bilinear", "bicubic"]))
        corners = draw(st.sampled_from([None, True, False])) if mode in ("bilinear", "bicubic") else None
        if draw(st.booleans()):
            return nn.Upsample(size=(h + 1, w + 2), mode=mode, align_corners=corners)
        return nn.Upsample(scale_factor=draw(st.sampled_from([2.0, 1.5, (2.0, 1.0)])), mode=mode, align_corners=corners,
                           recompute_scale_factor=draw(st.sampled_from([None, True, False])))
    if kind == "passthrough":
        return draw(st.sampled_from([nn.Dropout(0.3), nn.Identity()]))
    if kind == "groupnorm":
        return nn.GroupNorm(draw(st.sampled_from([g for g in (1, 2, 3) if c % g == 0])), c, affine=draw(st.booleans()))
    if kind == "layernorm":
        return nn.LayerNorm([c, h, w] if draw(st.booleans()) else w)
    return nn.Flatten(draw(st.sampled_from([1, 1, 2])))


def _feature_layer(draw: Draw, f: int, in_chain: bool) -> nn.Module:
    """A layer for an (N, f) input."""
    kind = draw(st.sampled_from(["linear", "linear", "linear", "norm", "activation", "passthrough", "layernorm"]))
    if kind == "linear":
        return nn.Linear(f, draw(st.integers(1, 8)), bias=draw(st.booleans()))
    if kind == "norm":
        return nn.BatchNorm1d(f, affine=draw(st.booleans()), track_running_stats=draw(st.booleans()))
    if kind == "activation":
        return _activation(draw, inplace_ok=True)
    if kind == "passthrough":
        return draw(st.sampled_from([nn.Dropout(0.3), nn.Identity()]))
    return nn.LayerNorm(f, elementwise_affine=draw(st.booleans()))


def _layer_for(draw: Draw, value: torch.Tensor, in_chain: bool) -> nn.Module | None:
    """A layer for ``value``'s shape, or None when the drawn arguments do not make one."""
    try:
        if value.dim() == 4:
            return _map_layer(draw, *value.shape[1:], in_chain=in_chain).double()
        if value.dim() == 2:
            return _feature_layer(draw, value.shape[1], in_chain=in_chain).double()
    except ValueError:  # e.g. channels not divisible by groups
        return None
    return nn.Flatten() if in_chain else None


def _try(fn: Callable[..., Any], *args: Any) -> torch.Tensor | None:
    """``fn(*args)``'s tensor when it runs and stays small, else None (the step is dropped)."""
    try:
        with torch.no_grad():
            out = fn(*args)
    except (RuntimeError, ValueError, IndexError, TypeError):
        return None
    if not isinstance(out, torch.Tensor) or out.dim() < 2 or out.shape[0] != BATCH:
        return None
    if out[0].numel() == 0 or out[0].numel() > MAX_FEATURES or not bool(torch.isfinite(out).all()):
        return None
    return out


# ---- chains: savable models ------------------------------------------------------------------


@st.composite
def chains(draw: Draw) -> tuple[nn.Module, torch.Tensor]:
    x = _input(draw)
    layers: list[nn.Module] = []
    value = x
    for _ in range(draw(st.integers(1, 7))):
        if value.dim() == 4 and _placed_once(layers) and draw(st.integers(0, 3)) == 0:
            block, out = _residual(draw, value)
        elif layers and not any(isinstance(layer, Residual) for layer in layers) and draw(st.integers(0, 5)) == 0:
            block = draw(st.sampled_from(layers))  # the same object placed again (a plain layer list only, see below)
            out = _try(block.eval(), value)
        else:
            block = _layer_for(draw, value, in_chain=True)
            out = _try(block.eval(), value) if block is not None else None
        if out is not None:
            layers.append(block)
            value = out
    if not any(isinstance(m, (nn.Linear, nn.Conv2d)) for layer in layers for m in layer.modules()):
        layers.insert(0, nn.Conv2d(x.shape[1], x.shape[1], 1) if x.dim() == 4 else nn.Linear(x.shape[1], x.shape[1]))
    head = _head(value)
    return nn.Sequential(*layers, *([head] if head is not None else [])).double(), x


def _placed_once(layers: list[nn.Module]) -> bool:
    return len({id(layer) for layer in layers}) == len(layers)


def _residual(draw: Draw, value: torch.Tensor) -> tuple[nn.Module | None, torch.Tensor | None]:
    """``post(body(x) + shortcut(x))`` with a body that keeps the map's size."""
    c, h, w = value.shape[1:]
    out = draw(st.integers(1, 6))
    modules: dict[str, nn.Module] = {"conv1": nn.Conv2d(c, out, 3, padding=1, bias=draw(st.booleans()),
                                                        padding_mode=draw(st.sampled_from(["zeros", "reflect"]))),
                                     "bn1": nn.BatchNorm2d(out), "act": _activation(draw, inplace_ok=True),
                                     "conv2": nn.Conv2d(out, c, 1), "bn2": nn.BatchNorm2d(c)}
    body = ["conv1", "bn1", "act", "conv2", "bn2"]
    shortcut = None
    if draw(st.booleans()):
        modules["down"] = nn.Conv2d(c, c, 1, bias=False)
        shortcut = "down"
    block = Residual(modules, body, shortcut, draw(st.sampled_from([None, "act"]))).double()
    return block, _try(block.eval(), value)


def _input(draw: Draw) -> torch.Tensor:
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    if draw(st.integers(0, 3)) == 0:
        return torch.randn(BATCH, draw(st.integers(1, 8)), generator=generator, dtype=torch.float64)
    c, h, w = draw(st.integers(1, 3)), draw(st.integers(2, 6)), draw(st.integers(2, 6))
    return torch.randn(BATCH, c, h, w, generator=generator, dtype=torch.float64)


# ---- programs: the operations users write in a forward ----------------------------------------


class Program(nn.Module):
    """Runs ``steps`` in order; step ``i`` makes value ``i + 1`` from earlier values (value 0 is the input)."""

    def __init__(self, layers: list[nn.Module], steps: list[tuple[Any, ...]]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.steps = steps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values = [x]
        for step in self.steps:
            values.append(_run(self, step, values))
        return values[-1]


def _run(program: Program, step: tuple[Any, ...], values: list[Any]) -> Any:
    op, src, *rest = step
    x = values[src]
    if op == "layer":
        out = program.layers[rest[0]](x)
        return out[0] if isinstance(program.layers[rest[0]], (nn.MaxPool2d, nn.AdaptiveMaxPool2d)) and \
            program.layers[rest[0]].return_indices else out
    if op == "weight":  # a layer's weight used on its own, beside the layer itself
        layer = program.layers[rest[0]]
        return F.linear(x, layer.weight) if isinstance(layer, nn.Linear) else F.conv2d(x, layer.weight)
    if op == "binary":
        other = values[rest[1]]
        return {"add": lambda: x + other, "mul": lambda: x * other, "torch.add": lambda: torch.add(x, other),
                "sub": lambda: x - other, "iadd": lambda: x.add(other)}[rest[0]]()
    if op == "cat":
        return torch.cat([x, values[rest[0]]], dim=1)
    return _UNARY[op](x, *rest)


_UNARY: dict[str, Callable[..., Any]] = {
    "relu": lambda x: F.relu(x), "relu_": lambda x: F.relu(x, inplace=True), "method.relu_": lambda x: x.relu_(),
    "side_relu_": lambda x: (F.relu(x, inplace=True), x)[1],  # the in-place result unused: x itself changed
    "torch.sigmoid": lambda x: torch.sigmoid(x), "method.relu": lambda x: x.relu(),
    "leaky": lambda x: F.leaky_relu(x, 0.3), "gelu": lambda x: F.gelu(x), "tanh": lambda x: x.tanh(),
    "scale": lambda x, a: x * a, "shift": lambda x, a: x + a, "rscale": lambda x, a: a * x, "rsub": lambda x, a: a - x,
    "mean": lambda x, dims, keep: x.mean(dims, keepdim=keep),
    "self_reduce": lambda x, dims, how: _SELF_REDUCE[how](x, dims),  # x combined with its own reduction
    "sum": lambda x, dims, keep: x.sum(dims, keepdim=keep),
    "amax": lambda x, dims, keep: x.amax(dims, keepdim=keep),
    "chunk": lambda x, k: torch.chunk(x, 2, dim=1)[k], "split": lambda x, k: x.split(1, dim=1)[k],
    "slice": lambda x: x[:, :2],
    "torch.flatten": lambda x: torch.flatten(x, 1), "method.flatten": lambda x: x.flatten(1),
    "view": lambda x: x.view(x.size(0), -1), "reshape": lambda x: x.reshape(x.size(0), -1),
    "view3": lambda x: x.view(x.size(0), x.size(1), -1), "view_channels": lambda x: x.view(x.size(1), -1).t(),
    "to_map": lambda x: x.view(x.size(0), -1, 1, 1), "unsqueeze": lambda x: x.unsqueeze(-1).unsqueeze(-1),
    "permute": lambda x: x.permute(0, 1, 3, 2), "transpose": lambda x: x.transpose(1, 2),
    "contiguous": lambda x: x.contiguous(),
    "max_pool": lambda x: F.max_pool2d(x, 2), "max_pool_indices": lambda x: F.max_pool2d(x, 2, return_indices=True)[0],
    "adaptive_avg": lambda x: F.adaptive_avg_pool2d(x, 1), "adaptive_max": lambda x: F.adaptive_max_pool2d(x, 2),
    "avg_pool": lambda x: F.avg_pool2d(x, 2), "dropout": lambda x: F.dropout(x, 0.5, training=False),
}
_SELF_REDUCE: dict[str, Callable[[Any, Any], Any]] = {  # one operation each: fx would record every one built
    "add": lambda x, dims: x + x.mean(dims, keepdim=True), "mul": lambda x, dims: x * x.amax(dims, keepdim=True),
    "sub": lambda x, dims: x - x.sum(dims, keepdim=True),
}
_DIMS = [1, -1, 2, 3, (2, 3), (-1, -2), (1, 2, 3)]


@st.composite
def programs(draw: Draw) -> tuple[nn.Module, torch.Tensor]:
    x = _input(draw)
    first = nn.Conv2d(x.shape[1], draw(st.integers(1, 6)), 1) if x.dim() == 4 else nn.Linear(x.shape[1], 6)
    layers: list[nn.Module] = [first.double()]
    steps: list[tuple[Any, ...]] = [("layer", 0, 0)]
    values = [x, first.double()(x).detach()]
    for _ in range(draw(st.integers(1, 9))):
        src = len(values) - 1 if draw(st.integers(0, 3)) else draw(st.integers(0, len(values) - 1))
        step, new_layer = _draw_step(draw, values, src, layers)
        if step is None:
            continue
        if new_layer is not None:
            layers.append(new_layer.double())
        trial = Program(layers, [*steps, step]).eval()
        out = _try(_run, trial, step, values)
        if out is None:
            if new_layer is not None:
                layers.pop()
            continue
        steps.append(step)
        values.append(out)
    head = _head(values[-1])  # a head reads the last value, so its channels are not the model's output
    if head is not None:
        steps.append(("layer", len(values) - 1, len(layers)))
        layers.append(head)
    return Program(layers, steps).double(), x


def _head(value: torch.Tensor) -> nn.Module | None:
    if value.dim() == 4:
        return nn.Conv2d(value.shape[1], 2, 1).double()
    return nn.Linear(value.shape[-1], 2).double() if value.dim() in (2, 3) else None


def _draw_step(draw: Draw, values: list[torch.Tensor], src: int,
               layers: list[nn.Module]) -> tuple[tuple[Any, ...] | None, nn.Module | None]:
    """One step reading value ``src``, and the new layer it calls (or None)."""
    x = values[src]
    kind = draw(st.sampled_from(["layer", "layer", "layer", "layer", "reuse", "reuse", "weight", "binary", "binary",
                                 "cat", "unary", "unary", "unary", "self_reduce"]))
    if kind == "self_reduce":
        return ("self_reduce", src, draw(st.sampled_from(_DIMS)), draw(st.sampled_from(["add", "mul", "sub"]))), None
    if kind == "layer":
        layer = _layer_for(draw, x, in_chain=False)
        return (("layer", src, len(layers)), layer) if layer is not None else (None, None)
    if kind == "reuse":
        fitting = [i for i, layer in enumerate(layers) if _try(layer.eval(), x) is not None]
        return (("layer", src, draw(st.sampled_from(fitting))), None) if fitting else (None, None)
    if kind == "weight":
        weighted = [i for i, m in enumerate(layers) if isinstance(m, nn.Linear) or
                    isinstance(m, nn.Conv2d) and m.groups == 1]
        return (("weight", src, draw(st.sampled_from(weighted))), None) if weighted else (None, None)
    if kind == "binary":
        partners = [i for i, v in enumerate(values) if v.dim() == x.dim() and _broadcasts(v, x)]  # x itself too
        op = draw(st.sampled_from(["add", "add", "mul", "torch.add", "sub", "iadd"]))
        return ("binary", src, op, draw(st.sampled_from(partners))), None
    if kind == "cat":
        partners = [i for i, v in enumerate(values) if v.dim() == x.dim() and v.shape[2:] == x.shape[2:]]
        return ("cat", src, draw(st.sampled_from(partners))), None
    op = draw(st.sampled_from(sorted(_UNARY)))
    if op in ("scale", "shift", "rscale", "rsub"):
        return (op, src, draw(st.sampled_from([0.5, 2.0, -1.0, 0.0]))), None
    if op == "self_reduce":
        return (op, src, draw(st.sampled_from(_DIMS)), draw(st.sampled_from(["add", "mul", "sub"]))), None
    if op in ("mean", "sum", "amax"):
        return (op, src, draw(st.sampled_from(_DIMS)), draw(st.booleans())), None
    if op in ("chunk", "split"):
        return (op, src, draw(st.integers(0, 1))), None
    return (op, src), None


def _broadcasts(value: torch.Tensor, target: torch.Tensor) -> bool:
    return all(a == b or 1 in (a, b) for a, b in zip(value.shape[1:], target.shape[1:], strict=True))


# ---- pruning and the property ---------------------------------------------------------------


def _prune(model: nn.Module, seed: int, rows: float, columns: float, connections: float) -> None:
    """Zero random rows, columns and connections of every weighted layer; random biases and norm statistics."""
    generator = torch.Generator().manual_seed(seed)

    def uniform(t: torch.Tensor, low: float, high: float) -> torch.Tensor:
        return torch.rand(t.shape, generator=generator, dtype=t.dtype) * (high - low) + low

    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Linear, nn.Conv2d)):
                weight = module.weight
                weight.mul_((torch.rand(weight.shape, generator=generator) >= connections).to(weight.dtype))
                weight[torch.rand(weight.shape[0], generator=generator) < rows] = 0
                weight[:, torch.rand(weight.shape[1], generator=generator) < columns] = 0
                if module.bias is not None:
                    module.bias.copy_(uniform(module.bias, -0.5, 0.5))
            elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)) and module.running_mean is not None:
                module.running_mean.copy_(uniform(module.running_mean, -0.5, 0.5))
                module.running_var.copy_(uniform(module.running_var, 0.5, 2.0))
            if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)):
                for param in (module.weight, module.bias):
                    if param is not None:
                        param.copy_(uniform(param, -1.0, 1.5))


def _check_exact(model: nn.Module, x: torch.Tensor, data: st.DataObject, tmp_path: Any, must_save: bool) -> None:
    _prune(model, data.draw(st.integers(0, 2**16)), *(data.draw(st.sampled_from([0.0, 0.3, 0.6, 1.0]))
                                                       for _ in range(3)))
    model.eval()
    with torch.no_grad():
        expected = model(x.clone())  # clone: a model may change its input in place
    small = compact(model).eval()
    with torch.no_grad():
        got = small(x.clone())
    assert got.shape == expected.shape
    scale = max(1.0, float(expected.abs().max()))
    assert torch.allclose(got, expected, rtol=1e-5, atol=1e-5 * scale), float((got - expected).abs().max())
    for module in small.modules():
        for width in ("in_features", "out_features", "in_channels", "out_channels", "num_features"):
            assert getattr(module, width, 1) > 0, f"{module} has width 0"
    assert sum(p.numel() for p in small.parameters()) <= sum(p.numel() for p in model.parameters())
    try:
        save_model(small, tmp_path)
    except ModelError as exc:
        assert not must_save, f"a plain model of the trait table's layers is refused: {exc}"
        named = {type(m).__name__ for m in small.modules()} | {n for n, _ in small.named_modules() if n}
        named |= {node.name for node in fx.symbolic_trace(small).graph.nodes}
        assert any(name in str(exc) for name in named), f"the refusal names nothing in the model: {exc}"
        return
    loaded, _ = load_model(tmp_path)
    with torch.no_grad():
        assert torch.equal(loaded(x.clone()), got)


@PROPERTY
@given(model_and_input=chains(), data=st.data())
def test_a_compacted_chain_equals_the_masked_one_and_round_trips(model_and_input, data, tmp_path):
    model, x = model_and_input
    _check_exact(model, x, data, tmp_path, must_save=True)


@PROPERTY
@given(model_and_input=programs(), data=st.data())
def test_a_compacted_program_equals_the_masked_one_and_round_trips_or_is_refused(model_and_input, data, tmp_path):
    model, x = model_and_input
    _check_exact(model, x, data, tmp_path, must_save=False)

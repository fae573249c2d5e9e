"""Per-connection activity, gathered by forward hooks while the network trains.

A connection (j <- i) carries x_i * W[j, i] on one sample. Keeping that per connection
and per sample would cost a weight-sized tensor per sample, so the tracker keeps only
one reduction of each layer's input per batch (mean |x_i|) and forms the per-connection
activity at check time. For Conv2d the mean runs over samples and all spatial positions
of input channel c, and every kernel tap (kh, kw) of that channel gets the same value:
the channel-mean approximation, which ignores the border effect of padding.

Statistics always accumulate in float32, whatever the dtype of the activations: a sum of
|x| over a half-precision batch overflows to inf, and one inf makes a layer's mean (and so
every threshold) NaN.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from .masks import Prunable

CRITERIA = ("contribution", "deviation", "presynaptic", "hebbian", "magnitude")


class ActivityTracker:
    """Accumulates activity statistics of Linear and Conv2d layers between checks.

    Criteria (per connection j <- i):
        contribution: |W[j, i]| * mean |x_i|   (the signal the connection carries)
        deviation:    |W[j, i]| * std(x_i)     (default; the part of that signal that varies; the
                      constant part, W[j, i] * mean x_i, can be folded into the bias when
                      the connection goes, see :meth:`input_means`)
        presynaptic:  mean |x_i|
        hebbian:      mean over samples of |x_i| * |y_j|, y the layer's (pre-activation) output;
                      for Conv2d both are spatial means per sample and channel
        magnitude:    |W[j, i]|   (no statistics gathered; Han et al. 2015's criterion)

    The tracker owns its hook handles; :meth:`remove` is idempotent.

    Args:
        layers: name -> Linear or Conv2d module to watch.
        criterion: one of :data:`CRITERIA`.
    """

    def __init__(self, layers: Mapping[str, Prunable], criterion: str = "deviation") -> None:
        if criterion not in CRITERIA:
            raise ValueError(f"unknown criterion {criterion!r}; choose one of: {', '.join(CRITERIA)}")
        self.criterion = criterion
        self.layers = dict(layers)
        self.is_active = True
        self._sums: dict[str, torch.Tensor] = {}
        self._batches: dict[str, int] = {}
        self._mean_weights: dict[int, torch.Tensor] = {}  # batch size -> (batch,) of 1/batch
        self._handles: list[Any] = []
        if criterion != "magnitude":
            for name, module in self.layers.items():
                self._handles.append(module.register_forward_hook(self._hook_for(name)))

    def _hook_for(self, name: str):  # noqa: ANN202 - hook signature is torch's
        # This runs on every training forward pass: keep it to a couple of tensor ops.
        # Detached inputs build no autograd graph, so no torch.no_grad() context is needed.
        def hook(module: nn.Module, args: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            if not (self.is_active and module.training):
                return
            x = args[0].detach()
            total = self._sums.get(name)
            if total is not None and x.dim() == 2 and self.criterion in ("deviation", "contribution", "presynaptic"):
                self._accumulate_rows(total, x)  # the common Linear case, in place
                self._batches[name] += 1
                return
            stat = self._batch_statistic(self.layers[name], x, output.detach())
            if total is None:
                self._sums[name] = stat
                self._batches[name] = 1
            else:
                total += stat
                self._batches[name] += 1

        return hook

    def _accumulate_rows(self, total: torch.Tensor, x: torch.Tensor) -> None:
        """``total += per-feature batch means`` for a (batch, features) input, one matrix-vector product each.

        Same values as :meth:`_batch_statistic` (the mean over the batch, added to the running
        sum), with fewer passes and no temporary per-batch tensor: about 40% cheaper per call.
        """
        x = x.float()
        weights = self._mean_weights.get(len(x))
        if weights is None or weights.device != x.device:
            weights = self._mean_weights[len(x)] = torch.full((len(x),), 1.0 / len(x), device=x.device)
        if self.criterion == "deviation":
            total[0].addmv_(x.t(), weights)  # mean x
            total[1].addmv_(x.square().t(), weights)  # mean x^2
        else:
            total.addmv_(x.abs().t(), weights)  # mean |x|

    def _batch_statistic(self, module: Prunable, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        is_conv = isinstance(module, nn.Conv2d)
        x = x.float()  # no-op for float32; half-precision sums would overflow
        if self.criterion != "hebbian":
            # per input feature (channel for Conv2d); abs().sum() is ~10x faster on CPU
            # than linalg.vector_norm(ord=1) over the same dims
            dims = (0, 2, 3) if is_conv else tuple(range(x.dim() - 1))
            count = x.numel() // (x.shape[1] if is_conv else x.shape[-1])
            if self.criterion == "deviation":
                # (2, features): mean x and mean x^2, so std and mean come out at check time
                return torch.stack((x.sum(dim=dims), x.square().sum(dim=dims))).div_(count)
            return x.abs().sum(dim=dims).div_(count)  # (features,): mean |x|
        y = y.float()
        if is_conv:
            x = x.abs().mean(dim=(2, 3))  # (N, C_in)
            y = y.abs().mean(dim=(2, 3))  # (N, C_out)
        else:
            x = x.abs().reshape(-1, x.shape[-1])  # (N, in)
            y = y.abs().reshape(-1, y.shape[-1])  # (N, out)
        return y.t() @ x / x.shape[0]  # (out, in) for Linear, (C_out, C_in) for Conv2d

    def activity(self) -> dict[str, torch.Tensor]:
        """Per-connection activity averaged over the batches seen since the last reset.

        Returns:
            name -> float32 tensor shaped like the layer's weight. Layers that saw no batch
            are left out (nothing is known about them yet), except under ``magnitude``.
        """
        result = {}
        for name, module in self.layers.items():
            weight = module.weight.detach()
            if self.criterion == "magnitude":
                result[name] = weight.abs().float()
                continue
            if name not in self._sums:
                continue
            mean = self._sums[name] / self._batches[name]
            if self.criterion == "deviation":
                mean = (mean[1] - mean[0].square()).clamp_min_(0).sqrt_()  # std per input feature
            per_connection = _expand(module, mean, self.criterion == "hebbian")
            if self.criterion in ("contribution", "deviation"):
                per_connection = per_connection * weight.abs().float()
            result[name] = per_connection
        return result

    def input_means(self) -> dict[str, torch.Tensor]:
        """Mean input per feature (channel for Conv2d) since the last reset; ``deviation`` only.

        What a pruned connection carried on average: ``W[j, i] * mean x_i`` folds into
        unit j's bias, so removing a connection with a constant input changes nothing.

        Returns:
            name -> (in_features,) or (in_channels,) float32 tensor; empty for other criteria.
        """
        if self.criterion != "deviation":
            return {}
        return {name: stat[0] / self._batches[name] for name, stat in self._sums.items()}

    def statistics(self) -> dict[str, torch.Tensor]:
        """The raw running sums (for all-reducing across processes before a check)."""
        return self._sums

    def state_dict(self) -> dict[str, Any]:
        """Running sums and batch counts since the last check, keyed by layer name (for checkpoints)."""
        return {
            "sums": {name: stat.detach().clone() for name, stat in self._sums.items()},
            "batches": dict(self._batches),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned, replacing anything gathered so far."""
        unknown = sorted(set(state["sums"]) - set(self.layers))
        if unknown or set(state["sums"]) != set(state["batches"]):
            raise ValueError(f"activity state names layers {unknown or sorted(state['sums'])} that do not match")
        self.reset()
        for name, stat in state["sums"].items():
            self._sums[name] = stat.to(self.layers[name].weight.device, torch.float32).clone()
            self._batches[name] = int(state["batches"][name])

    def reset(self) -> None:
        """Forget everything gathered so far (called after each check)."""
        self._sums.clear()
        self._batches.clear()

    def remove(self) -> None:
        """Detach every hook. Safe to call more than once."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    @property
    def num_hooks(self) -> int:
        """How many hooks are attached right now."""
        return len(self._handles)


def _expand(module: Prunable, stat: torch.Tensor, is_pairwise: bool) -> torch.Tensor:
    """Broadcast a per-input (in,) or per-pair (out, in) statistic to the weight's shape."""
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

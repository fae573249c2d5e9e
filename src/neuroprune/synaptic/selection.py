"""How many connections go at a check, and which: the quota path of the pruner.

With a target sparsity, a sparsity schedule decides *how many* connections are pruned
at each check (so pruning is spread over training), and the low-activity rule decides
*which*: connections weak at ``patience`` consecutive checks go first, weakest first; if
they do not fill the quota, the weakest of the others fill it, so the target is reached
on schedule whatever ``alpha`` is. Pure functions of tensors, like the rule.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch


def select_weakest(
    scores: Mapping[str, torch.Tensor],
    eligible: Mapping[str, torch.Tensor],
    preferred: Mapping[str, torch.Tensor],
    quota: int,
    costs: Mapping[str, torch.Tensor] | None = None,
    is_preferred_only: bool = False,
) -> dict[str, torch.Tensor]:
    """Pick eligible items, preferred ones first, each group weakest first, until ``quota`` is met.

    Args:
        scores: name -> finite score per item (any shape); lower goes first.
        eligible: name -> bool tensor like the scores; only these can be picked.
        preferred: name -> bool tensor; eligible preferred items go before all others.
        quota: how much to remove; items are taken until their summed cost reaches it.
        costs: name -> what removing each item removes (e.g. a unit's live connections);
            1 per item when not given.
        is_preferred_only: never pick an item that is not preferred.

    Returns:
        name -> bool tensor like the scores, True where an item is picked.
    """
    picked = {name: torch.zeros_like(eligible[name], dtype=torch.bool) for name in scores}
    if quota <= 0 or not scores:
        return picked
    names = list(scores)
    flat_mask = torch.cat([eligible[n].flatten().bool() for n in names])
    score = torch.cat([scores[n].flatten().float() for n in names])
    first = torch.cat([preferred[n].flatten().bool() for n in names])
    if is_preferred_only:
        flat_mask &= first
    if not flat_mask.any():
        return picked
    positions = torch.nonzero(flat_mask).flatten()
    candidates = score[positions]
    gap = float(candidates.max() - candidates.min()) + 1.0
    key = candidates + (~first[positions]).float() * gap  # preferred items sort before all others
    chosen = torch.zeros_like(flat_mask)
    if costs is None:  # one unit of quota per item: the `quota` lowest keys (topk: no full sort)
        chosen[positions[key.topk(min(quota, len(key)), largest=False).indices]] = True
    else:
        order = positions[key.argsort(stable=True)]
        cost = torch.cat([costs[n].flatten().float() for n in names])
        reached = torch.nonzero(cost[order].cumsum(0) >= quota).flatten()
        count = int(reached[0]) + 1 if len(reached) else len(order)
        chosen[order[:count]] = True
    offset = 0
    for name in names:
        size = picked[name].numel()
        picked[name] = chosen[offset : offset + size].view_as(picked[name])
        offset += size
    return picked


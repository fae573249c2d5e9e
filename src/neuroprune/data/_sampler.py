"""Batches whose order is a pure function of (seed, epoch), optionally cut into per-process shards.

Resuming a run at epoch ``e`` must replay exactly the batches an uninterrupted run saw,
so no sampler state survives between epochs except the epoch number. Under data-parallel
training every process sees its own slice of the same global batch.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class EpochBatchSampler(Sampler[list[int]]):
    """Index lists of one process's share of every global batch.

    Epoch ``e``'s order is the ``e``-th permutation a ``torch.Generator`` seeded with
    ``seed`` draws, two ``randperm`` calls per epoch, as ``RandomSampler`` does, so
    the batches equal those of ``RandomSampler(generator=Generator().manual_seed(seed))``.
    Iterating starts the next epoch by itself; ``set_epoch`` jumps to any epoch.

    Args:
        size: samples in the data set.
        batch_size: samples per global batch (all processes together).
        seed: seeds the permutations.
        shuffle: permute the samples each epoch; False keeps their order.
        drop_last: drop the last global batch when it is smaller than ``batch_size``.
        rank: this process's index in ``0 .. world_size - 1``.
        world_size: number of processes sharing each global batch.
        even_shards: cut each global batch to a multiple of ``world_size`` so every
            process gets the same number of samples (what averaging gradients needs);
            False covers every sample once, with shards differing by at most one.
    """

    def __init__(
        self,
        size: int,
        batch_size: int,
        *,
        seed: int = 0,
        shuffle: bool = True,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
        even_shards: bool = True,
    ) -> None:
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self.shuffle, self.drop_last = shuffle, drop_last
        self.rank, self.world_size, self.even_shards = rank, world_size, even_shards
        self.epoch = 0
        self._cached: tuple[int, torch.Tensor] | None = None  # (epoch, generator state at its start)

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration yield epoch ``epoch``'s batches."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[list[int]]:
        order = self._order(self.epoch)
        self.epoch += 1
        for start in range(0, self.size, self.batch_size):
            batch = order[start : start + self.batch_size]
            if self.drop_last and len(batch) < self.batch_size:
                return
            shard = self._shard(batch)
            if shard:
                yield shard

    def __len__(self) -> int:
        full, rest = divmod(self.size, self.batch_size)
        lengths = [self.batch_size] * full + ([rest] if rest and not self.drop_last else [])
        return sum(1 for length in lengths if self._shard_length(length) > 0)

    def _shard(self, batch: list[int]) -> list[int]:
        if self.world_size == 1:
            return batch
        start, length = self._shard_start(len(batch)), self._shard_length(len(batch))
        return batch[start : start + length]

    def _shard_length(self, length: int) -> int:
        per_rank, rest = divmod(length, self.world_size)
        return per_rank + (0 if self.even_shards or self.rank >= rest else 1)

    def _shard_start(self, length: int) -> int:
        per_rank, rest = divmod(length, self.world_size)
        return self.rank * per_rank + (0 if self.even_shards else min(self.rank, rest))

    def _order(self, epoch: int) -> list[int]:
        if not self.shuffle:
            return list(range(self.size))
        generator = torch.Generator()
        if self._cached is not None and self._cached[0] <= epoch:
            done, state = self._cached
            generator.set_state(state)
        else:
            done = 0
            generator.manual_seed(self.seed)
        for _ in range(epoch - done):  # replay earlier epochs' draws: cheap next to an epoch
            torch.randperm(self.size, generator=generator)
            torch.randperm(self.size, generator=generator)
        order = torch.randperm(self.size, generator=generator).tolist()
        torch.randperm(self.size, generator=generator)  # RandomSampler's second draw per epoch
        self._cached = (epoch + 1, generator.get_state())
        return order

"""Data-parallel synaptic pruning over two Gloo processes on 127.0.0.1.

Two ranks that each see half of every global batch must take exactly the decisions of one
process that sees the whole batch: DDP averages the gradients of equal shards, which is the
gradient of the global batch, and the pruner averages the activity statistics before every
check.

Why the masks can be compared exactly: the two set-ups compute the same numbers in a
different summation order, so they differ by float rounding. The network trains in float64
(weights agree to ~1e-15) and the tracker's statistics are float32 (~1e-7 relative). A
decision could flip only for a connection whose activity lies within that distance of the
threshold, so the reference run measures every check's smallest relative distance between
a live connection's activity and the threshold and the test requires it to exceed 1e-5, a
hundred times the rounding. The guards that rank connections against each other
(``max_fraction_per_check``, ``min_fan_in``) are switched off, so the threshold is the only
comparison that decides.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from neuroprune import SynapticPruner, create_loader, create_model, distributed, fit
from neuroprune.engine import load_checkpoint

GLOBAL_BATCH, LIMIT, EPOCHS = 32, 512, 4
ALPHA = 0.5


class _MarginRecorder:
    """Callback placed before the pruner: the smallest relative distance to the threshold at each check."""

    def __init__(self, pruner: SynapticPruner) -> None:
        self.pruner, self.margins = pruner, []

    def on_step_end(self, trainer) -> None:
        if not self.pruner.schedule.is_check(self.pruner.step_count + 1):
            return
        for name, activity in self.pruner.tracker.activity().items():
            live = self.pruner.mask(name).bool()
            threshold = ALPHA * activity[live].mean()
            self.margins.append(float(((activity[live] - threshold).abs() / threshold).min()))


def _train(rank: int, world: int) -> tuple[dict[str, torch.Tensor], list[float], list[dict]]:
    """Train and prune the MLP on this rank's shard of every global batch of the digits."""
    torch.manual_seed(0)
    network = create_model("mlp", image_size=8, hidden=(32,)).double()
    model = nn.Sequential(_ToDouble(), network)
    # contribution, not the default deviation: its bias folding would add a second path for
    # float rounding between one process and two, and this test compares threshold decisions
    pruner = SynapticPruner(
        network, criterion="contribution", alpha=ALPHA, patience=2, check_every=5, warmup_steps=5, stop_step=None,
        min_fan_in=0, max_fraction_per_check=1.0,
    )
    recorder = _MarginRecorder(pruner)
    loader = create_loader("digits", "train", GLOBAL_BATCH, seed=1, limit=LIMIT, rank=rank, world_size=world)
    fit(model, loader, epochs=EPOCHS, lr=0.05, callbacks=[recorder, pruner])
    return {name: pruner.mask(name) for name in pruner.layers}, recorder.margins, pruner.history


class _ToDouble(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.double()


def _worker(rank: int, world: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        masks, _, history = _train(rank, world)
        torch.save({"masks": masks, "history": history}, Path(out) / f"rank{rank}.pt")
    except BaseException:
        distributed.shutdown(wait=False)
        raise
    # the ranks leave together: one that tears down its connections while the other is still
    # finishing can make that one abort (SIGABRT from Gloo's threads); and they leave without
    # the interpreter's finalization, which a Gloo worker thread can abort (see distributed.leave)
    distributed.shutdown(wait=True)
    distributed.leave(0)


def test_two_gloo_ranks_prune_exactly_like_one_process_on_the_global_batch(tmp_path, gloo_loopback):
    mp.spawn(_worker, args=(2, gloo_loopback, str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(2)]

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        reference, margins, history = _train(rank=0, world=1)
    finally:
        torch.set_num_threads(threads)

    assert min(margins) > 1e-5, "a decision lies within float rounding of the threshold; the comparison is not robust"
    pruned = sum(int((mask == 0).sum()) for mask in reference.values())
    assert pruned > 100  # the comparison means something: many connections went
    for state in ranks:
        assert state["masks"].keys() == reference.keys()
        for name, mask in reference.items():
            assert torch.equal(state["masks"][name], mask), name
        assert [r["layers"] for r in state["history"]] == [r["layers"] for r in history]


def test_torchrun_cli_trains_data_parallel_and_rank_zero_writes(tmp_path, torchrun):
    out = tmp_path / "run"
    done = torchrun(
        "synaptic", "--dataset", "digits", "--epochs", "2", "--limit-train", "256", "--batch-size", "32",
        "--check-every", "4", "--max-fraction-per-check", "0.5", "--warmup-steps", "2", "--stop-step", "none",
        "--no-measure-latency",
        "--out", str(out),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("results in") == 1  # only rank 0 prints

    result = json.loads((out / "result.json").read_text())
    assert result["processes"] == {"world_size": 2, "backend": "gloo", "masks_identical": True}
    assert result["pruned_fraction"] > 0.1
    saved = json.loads((out / "config.json").read_text())
    assert saved["processes"]["world_size"] == 2 and saved["config"]["batch_size"] == 32
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["world_size"] == 2 and len(state["rng"]) == 2 and state["epoch"] == 2
    # 256 samples in global batches of 32, 16 per rank: 8 steps per epoch on every rank
    assert state["step"] == 16 and state["pruner"]["step"] == 16


@pytest.mark.parametrize("world", [2, 3])
def test_shards_of_every_global_batch_are_disjoint_and_cover_it(world):
    single = create_loader("digits", "train", 30, seed=4, limit=200)
    shards = [create_loader("digits", "train", 30, seed=4, limit=200, rank=r, world_size=world) for r in range(world)]
    for epoch in range(2):
        for loader in (single, *shards):
            loader.sampler.set_epoch(epoch)
        whole = [y for _, y in single]
        parts = [[y for _, y in loader] for loader in shards]
        assert all(len(p) == len(whole) for p in parts)
        for index, batch in enumerate(whole):
            joined = torch.cat([p[index] for p in parts])
            keep = len(batch) - len(batch) % world  # equal shards: a ragged last batch loses its remainder
            assert torch.equal(joined, batch[:keep])
            assert len({len(p[index]) for p in parts}) == 1

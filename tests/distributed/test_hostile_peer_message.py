"""The error for a lost peer names the group as it was: the process count and --dist-timeout of the
group that failed, though the message is built after the group was shut down."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# rank 1 hangs; rank 0's job calls a raw all-reduce, as DDP's gradient sync does, under --dist-timeout 2
SCRIPT = textwrap.dedent("""
    import time, click, torch, torch.distributed as dist
    from neuroprune import distributed as dist_utils
    from neuroprune.cli._common import run_in_process_group

    def job():
        if dist_utils.rank() == 1:
            time.sleep(600)
        dist.all_reduce(torch.ones(1))

    @click.command()
    @click.option("--dist-timeout", type=float)
    def command(dist_timeout):
        try:
            run_in_process_group(job, "cpu")
        except dist_utils.PeerStopped as exc:
            print("stopped:", exc)

    command(["--dist-timeout", "2"], standalone_mode=False)
""")


def test_hostile_peer_loss_message_names_the_process_count_and_timeout(gloo_loopback):
    base = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src"),
            "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(gloo_loopback)}
    ranks = [subprocess.Popen([sys.executable, "-c", SCRIPT], env={**base, "RANK": str(rank)}, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for rank in (0, 1)]
    try:
        out, err = ranks[0].communicate(timeout=600)
    finally:
        for process in ranks:
            process.kill()
            process.wait(timeout=600)
    lines = [line for line in out.splitlines() if line.startswith("stopped:")]
    assert len(lines) == 1, out + err
    assert "rank 0: a collective of the training step among the 2 processes failed" in lines[0]
    assert "timed out after --dist-timeout 2 s" in lines[0]

"""Two real Gloo processes: when one stops answering, the other's collective fails after
--dist-timeout with one line that names the collective."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# rank 1 joins the group and then hangs; rank 0 waits at an all-reduce for 2 seconds
SCRIPT = textwrap.dedent("""
    import sys, time, torch
    from neuroprune import distributed as dist_utils
    dist_utils.init_from_env(backend="gloo", timeout=2)
    if dist_utils.rank() == 1:
        time.sleep(600)
    try:
        dist_utils.all_reduce_sum_(torch.ones(1))
    except dist_utils.PeerStopped as exc:
        print("stopped:", exc)
""")


def test_a_hung_rank_stops_the_others_with_a_message_naming_the_collective(gloo_loopback):
    # gloo_loopback: Gloo on loopback in this environment (inherited below), and a free port
    base = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src"),
            "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(gloo_loopback)}
    ranks = [subprocess.Popen([sys.executable, "-c", SCRIPT], env={**base, "RANK": str(rank)}, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for rank in (0, 1)]
    try:
        out, err = ranks[0].communicate(timeout=600)  # an outer limit only: the 2 s timeout ends it
    finally:
        for process in ranks:
            process.kill()
            process.wait(timeout=600)
    lines = [line for line in out.splitlines() if line.startswith("stopped:")]
    assert len(lines) == 1, out + err
    assert "rank 0: an all-reduce (sum) among the 2 processes failed" in lines[0]
    assert "timed out after --dist-timeout 2 s" in lines[0] and "stopped answering" in lines[0]

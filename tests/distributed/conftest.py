"""Shared by the multi-process tests: a free loopback port, Gloo on loopback, a torchrun launcher."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def loopback_env() -> dict[str, str]:
    """Keep Gloo on the loopback interface."""
    names = {name for _, name in socket.if_nameindex()} if hasattr(socket, "if_nameindex") else set()
    return {"GLOO_SOCKET_IFNAME": "lo"} if "lo" in names else {}


@pytest.fixture
def gloo_loopback(monkeypatch: pytest.MonkeyPatch) -> int:
    """Put this process's Gloo on loopback and return a free port for its process group."""
    for key, value in loopback_env().items():
        monkeypatch.setenv(key, value)
    return free_port()


@pytest.fixture
def torchrun() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run ``torchrun --nproc-per-node 2 -m neuroprune ARGS...`` on 127.0.0.1 (1 thread per process)."""

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, **loopback_env(), "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
        command = [
            sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2",
            "--master-addr", "127.0.0.1", "--master-port", str(free_port()), "-m", "neuroprune", *args,
        ]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, check=False)

    return run

"""Sizes a file declares are checked against the memory this process can use before anything is
allocated: a few-kilobyte sparse file that declares gigabytes is one line, exit 2, under `ulimit -v`."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

import pytest

import neuroprune as npr
from neuroprune import ModelError, memory
from neuroprune.saved_models import safetensors_header

ADDRESS_SPACE = 2_000_000 * 1024  # ulimit -v 2000000


def _sparse_model(folder: Path, in_features: int = 65536, out_features: int = 16384) -> Path:
    """model.json and model.safetensors that agree on one Linear layer of 4.3 GB; 12 KB on disk."""
    folder.mkdir(parents=True, exist_ok=True)
    layer = {"name": "0", "type": "Linear", "args": {"in_features": in_features, "out_features": out_features,
                                                     "bias": True}}
    (folder / "model.json").write_text(json.dumps({
        "architecture": {"format": "neuroprune.sequential/1", "layers": [layer]},
        "metadata": {"input_shape": [in_features]}, "dtype": "float32"}))
    bias, weight = out_features * 4, out_features * in_features * 4
    header = json.dumps({"0.bias": {"dtype": "F32", "shape": [out_features], "data_offsets": [0, bias]},
                         "0.weight": {"dtype": "F32", "shape": [out_features, in_features],
                                      "data_offsets": [bias, bias + weight]}}).encode()
    header += b" " * (-len(header) % 8)
    with open(folder / "model.safetensors", "wb") as handle:
        handle.write(len(header).to_bytes(8, "little") + header)
        handle.truncate(8 + len(header) + bias + weight)
    return folder


def _limited(*args: str) -> subprocess.CompletedProcess:
    """``neuroprune ARGS`` under an address-space limit of 2 GB, as `ulimit -v 2000000` sets it."""
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))

    return subprocess.run([sys.executable, "-m", "neuroprune", *args], capture_output=True, text=True, timeout=300,
                          preexec_fn=limit, check=False)


def _one_line(done: subprocess.CompletedProcess, *words: str) -> None:
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    line = " ".join(done.stderr.split())
    assert all(word in line for word in words), line


def test_hostile_sizes_a_consistent_huge_model_is_refused_by_export_under_ulimit(tmp_path):
    folder = _sparse_model(tmp_path / "run")
    _one_line(_limited("export", str(folder), "--out", str(tmp_path / "export")), "declares 4.30 GB")
    assert not (tmp_path / "export").exists()


def test_hostile_sizes_a_huge_result_json_is_refused_by_report_under_ulimit(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    with open(folder / "result.json", "wb") as handle:  # 1 GB declared, nothing on disk
        handle.truncate(1 << 30)
    _one_line(_limited("report", str(folder), "--out", str(tmp_path / "report")), "result.json", "larger than")


def test_hostile_sizes_are_checked_against_the_budget_in_process(tmp_path, monkeypatch):
    folder = _sparse_model(tmp_path / "run", in_features=4096, out_features=4096)  # 64 MB declared
    monkeypatch.setattr(memory, "memory_budget", lambda: 100 << 20)
    with pytest.raises(ModelError, match=r"declares 67.1 MB of tensors; loading it needs about 201.4 MB.*\(104.9 MB\)"):
        npr.load_model(folder)


def test_hostile_sizes_a_header_pointing_outside_the_file_is_refused(tmp_path):
    folder = _sparse_model(tmp_path / "run", in_features=4, out_features=2)
    path = folder / "model.safetensors"
    assert safetensors_header(path)["0.weight"]["shape"] == [2, 4]
    with open(path, "r+b") as handle:
        handle.truncate(path.stat().st_size - 4)  # the weight's last bytes are gone
    with pytest.raises(ModelError, match="outside the file"):
        npr.load_model(folder)
    path.write_bytes((10**12).to_bytes(8, "little") + b"{}")
    with pytest.raises(ModelError, match="header length"):
        npr.load_model(folder)

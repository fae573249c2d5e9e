"""Checkpoints load with weights_only: a file carrying pickled code is refused and nothing runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from neuroprune import SynapticPruner, create_model
from neuroprune.cli import main
from neuroprune.engine import load_checkpoint, resume
from neuroprune.errors import NeuropruneError


def _touch(path: str) -> None:
    Path(path).write_text("code from the checkpoint ran")


class _Payload:
    """Unpickling this calls _touch: what a tampered checkpoint would do with os.system."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return _touch, (self.marker,)


def _tampered_checkpoint(folder: Path) -> tuple[Path, Path]:
    marker, path = folder / "marker", folder / "checkpoint.pt"
    model = create_model("mlp", image_size=8, hidden=(8,))
    torch.save({"model": model.state_dict(), "epoch": 1, "step": 1, "history": [], "extra": _Payload(marker)}, path)
    return path, marker


def test_checkpoint_with_pickled_code_is_refused_and_nothing_runs(tmp_path):
    path, marker = _tampered_checkpoint(tmp_path)
    with pytest.raises(NeuropruneError, match="refusing to load .*pickled code"):
        load_checkpoint(path)
    model = create_model("mlp", image_size=8, hidden=(8,))
    pruner = SynapticPruner(model)
    with pytest.raises(NeuropruneError, match="refusing to load"):
        resume(path, model, torch.optim.SGD(model.parameters(), lr=0.1), pruner=pruner)
    assert not marker.exists()
    torch.load(path, weights_only=False)  # the payload is real: unrestricted loading runs it
    assert marker.exists()


def test_cli_resume_refuses_a_tampered_checkpoint(tmp_path):
    runner = CliRunner()
    out = tmp_path / "run"
    args = ["synaptic", "--dataset", "digits", "--epochs", "1", "--limit-train", "64", "--no-measure-latency"]
    assert runner.invoke(main, [*args, "--out", str(out)]).exit_code == 0
    _, marker = _tampered_checkpoint(out)
    result = runner.invoke(main, ["synaptic", "--resume", str(out)])
    assert result.exit_code == 2 and "refusing to load" in result.output and "Traceback" not in result.output
    assert not marker.exists()


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "checkpoint.pt"
    torch.save({"model": {"w": torch.ones(100)}}, path)
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(NeuropruneError, match="corrupt"):
        load_checkpoint(path)


def test_the_refusal_gives_no_advice_to_load_the_file_unsafely(tmp_path):
    path, _ = _tampered_checkpoint(tmp_path)
    with pytest.raises(NeuropruneError) as caught:
        load_checkpoint(path)
    message = str(caught.value)
    assert "\n" not in message and len(message) < 300
    assert "_touch" in message  # the reason: the object it would have called
    for advice in ("weights_only", "trusted source", "add_safe_globals", "safe_globals"):
        assert advice not in message

"""--dist-timeout reaches torch.distributed.init_process_group, and a collective that fails because a
peer stopped answering is one line naming it, not torch's traceback."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import pytest
from click.testing import CliRunner

from neuroprune import distributed as dist_utils
from neuroprune.cli import main

TRAIN = ["train", "--model", "mlp", "--dataset", "digits", "--epochs", "1", "--limit-train", "64",
         "--limit-test", "64", "--batch-size", "32"]


@pytest.fixture
def joined(monkeypatch):
    """Pretend torchrun started this process as rank 0 of 2; record what init_process_group is given."""
    calls: list[dict] = []
    for key, value in {"WORLD_SIZE": "2", "RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(dist_utils.dist, "init_process_group", lambda **kwargs: calls.append(kwargs))
    return calls


@pytest.mark.parametrize("args, seconds", [([], dist_utils.DEFAULT_TIMEOUT_SECONDS), (["--dist-timeout", "42"], 42),
                                           (["--dist-timeout", "2.5"], 2.5)])
def test_the_timeout_is_passed_to_the_process_group(tmp_path, joined, args, seconds):
    (tmp_path / "result.json").write_text("{}")  # the run is refused at once: only joining the group matters
    result = CliRunner().invoke(main, [*args, *TRAIN, "--out", str(tmp_path)])
    assert result.exit_code == 2 and "already holds a run" in result.output
    assert [call["timeout"] for call in joined] == [timedelta(seconds=seconds)]
    assert joined[0]["backend"] == "gloo"


@pytest.mark.parametrize("value", ["0", "-5", "soon"])
def test_a_timeout_that_is_not_a_positive_number_is_refused(tmp_path, joined, value):
    result = CliRunner().invoke(main, ["--dist-timeout", value, *TRAIN, "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "--dist-timeout" in result.output
    assert joined == [] and not (tmp_path / "run").exists()


def test_init_from_env_refuses_a_timeout_torch_cannot_use(joined):
    with pytest.raises(dist_utils.ConfigError, match="timeout"):
        dist_utils.init_from_env(timeout=float("inf"))


def test_a_timed_out_collective_inside_training_is_one_line(tmp_path, monkeypatch):
    import neuroprune.runs.train as train_run

    def hung_peer(*args, **kwargs):
        raise RuntimeError("[third_party/gloo/gloo/transport/tcp/unbound_buffer.cc:78] Timed out waiting 42000ms "
                           "for recv operation to complete\nmore torch text")

    monkeypatch.setattr(dist_utils, "init_from_env", lambda **kwargs: True)  # as if torchrun started a group
    monkeypatch.setattr(dist_utils, "shutdown", lambda wait=True: None)
    monkeypatch.setattr(train_run, "run_train", hung_peer)
    result = CliRunner().invoke(main, [*TRAIN, "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    line = result.output.strip()
    assert "\n" not in line and "a collective of the training step" in line and "timed out" in line
    assert "peer process stopped answering" in line


def test_other_errors_inside_the_group_are_left_alone(tmp_path, monkeypatch):
    import neuroprune.runs.train as train_run

    def bug(*args, **kwargs):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    monkeypatch.setattr(dist_utils, "init_from_env", lambda **kwargs: True)
    monkeypatch.setattr(dist_utils, "shutdown", lambda wait=True: None)
    monkeypatch.setattr(train_run, "run_train", bug)
    result = CliRunner().invoke(main, [*TRAIN, "--out", str(tmp_path / "run")])
    assert isinstance(result.exception, RuntimeError) and "shapes" in str(result.exception)


class _Left(Exception):
    """What the test's stand-in for distributed.leave raises instead of ending the process."""


@pytest.mark.parametrize("args, status", [(["--help"], 0), (["--no-such-option"], 2), (TRAIN[:1], 2)])
def test_a_process_that_ran_in_a_group_ends_through_leave_with_its_exit_status(monkeypatch, args, status):
    # ending normally would run the interpreter's finalization, which a Gloo worker thread can abort
    monkeypatch.setattr(dist_utils, "left_a_process_group", lambda: True)
    monkeypatch.setattr(dist_utils, "leave", lambda code: (_ for _ in ()).throw(_Left(code)))
    with pytest.raises(_Left) as left:
        main.main(args=args, prog_name="neuroprune")
    assert left.value.args == (status,)


def test_a_process_that_ran_alone_exits_as_usual(monkeypatch):
    monkeypatch.setattr(dist_utils, "leave", lambda code: pytest.fail("leave() outside a process group"))
    with pytest.raises(SystemExit) as exited:
        main.main(args=["--help"], prog_name="neuroprune")
    assert exited.value.code == 0


def test_leave_flushes_what_was_printed_and_logged_and_exits_with_the_status():
    script = ("import logging, sys; from neuroprune import distributed; "
              "logging.basicConfig(stream=sys.stderr); logging.getLogger('x').warning('logged'); "
              "print('printed', end=''); distributed.leave(3); print('never')")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 3
    assert done.stdout == "printed" and "logged" in done.stderr

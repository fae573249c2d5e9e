"""Output folders: an earlier run is never replaced unasked, writes killed mid-way leave no
lasting litter, and a run that fails before it starts leaves no folder that looks like a run."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from neuroprune.cli import main
from neuroprune.config import SynapticConfig
from neuroprune.depth.config import DepthConfig, TrainConfig
from neuroprune.errors import ConfigError, DatasetError
from neuroprune.runs._common import RUN_FILES
from neuroprune.runs.depth import run_depth
from neuroprune.runs.synaptic import run_synaptic
from neuroprune.runs.train import run_train
from neuroprune.storage import remove_stale_temp_files

SYNAPTIC = SynapticConfig(dataset="digits", epochs=1, limit_train=64, limit_test=64, measure_latency=False)
TRAIN = TrainConfig(model="mlp", dataset="digits", epochs=1, limit_train=64, limit_test=64, batch_size=32)
SYNAPTIC_ARGS = ["synaptic", "--dataset", "digits", "--epochs", "1", "--limit-train", "64", "--limit-test", "64",
                 "--no-measure-latency"]


def _killed_write(target: Path) -> Path:
    """Start ``atomic_write_bytes(target)`` in a process that dies just before the rename, as under SIGKILL."""
    script = textwrap.dedent(f"""
        import os
        from neuroprune import storage
        storage.os.replace = lambda *args: os._exit(9)
        storage.atomic_write_bytes({str(target)!r}, b"half of a result")
    """)
    before = target.read_bytes() if target.exists() else None
    assert subprocess.run([sys.executable, "-c", script], check=False).returncode == 9
    leftovers = [path for path in target.parent.iterdir()
                 if path.name.startswith(f".neuroprune-partial.{target.name}.")]
    assert len(leftovers) == 1 and (target.read_bytes() if target.exists() else None) == before
    return leftovers[0]


def _names(folder: Path) -> set[str]:
    return {path.name for path in folder.iterdir()}


# ---- temporary files of killed writes -------------------------------------------------------


def test_only_the_temporary_files_of_killed_writes_are_removed(tmp_path):
    leftover = _killed_write(tmp_path / "result.json")
    kept = ["notes.tmp", ".hidden", ".a.b.tmp", ".result.json.toolong123.tmp", "result.json.abcdefgh.tmp",
            ".result.json.abcdefgh.tmp", ".notes.txt.x1y2z3w4.tmp"]  # the user's, named as ours once were
    for name in kept:
        (tmp_path / name).write_text("the user's")
    (tmp_path / ".neuroprune-partial.model.json.abcdefgh.tmp").mkdir()  # a folder, whatever its name: not ours
    assert remove_stale_temp_files(tmp_path) == [leftover.name]
    assert _names(tmp_path) == {*kept, ".neuroprune-partial.model.json.abcdefgh.tmp"}
    assert remove_stale_temp_files(tmp_path / "absent") == []


def test_a_run_starting_in_a_folder_removes_what_killed_writes_left(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    leftover = _killed_write(out / "checkpoint.pt")
    (out / "notes.tmp").write_text("the user's")
    run_train(TRAIN, out)
    assert not leftover.exists() and (out / "notes.tmp").exists() and (out / "result.json").exists()


def test_a_resume_removes_what_killed_writes_left(tmp_path):
    out = tmp_path / "run"
    assert CliRunner().invoke(main, [*SYNAPTIC_ARGS, "--out", str(out)]).exit_code == 0
    leftover = _killed_write(out / "checkpoint.pt")
    result = CliRunner().invoke(main, ["synaptic", "--resume", str(out)])
    assert result.exit_code == 0, result.output
    assert not leftover.exists()


# ---- an earlier run is kept unless --overwrite ----------------------------------------------


@pytest.mark.parametrize("marker", RUN_FILES)
def test_a_folder_holding_a_run_is_refused_before_anything_is_written(tmp_path, marker):
    (tmp_path / marker).write_text("an earlier run")
    for run in (lambda: run_synaptic(SYNAPTIC, tmp_path), lambda: run_train(TRAIN, tmp_path),
                lambda: run_depth(DepthConfig(dataset="digits", cut="a:b"), tmp_path)):
        with pytest.raises(ConfigError, match=rf"already holds a run \({marker}\).*--overwrite"):
            run()
        assert _names(tmp_path) == {marker}  # not even config.json


def test_overwrite_replaces_the_earlier_run_and_only_its_files(tmp_path):
    run_synaptic(SYNAPTIC, tmp_path)
    (tmp_path / "dense_checkpoint.pt").write_bytes(b"an older run's dense checkpoint")
    (tmp_path / "notes.txt").write_text("the user's")
    first = (tmp_path / "result.json").read_text()
    run_synaptic(SynapticConfig(**{**SYNAPTIC.__dict__, "seed": 1}), tmp_path, overwrite=True)
    assert (tmp_path / "result.json").read_text() != first
    assert not (tmp_path / "dense_checkpoint.pt").exists()  # would be resumed from otherwise
    assert (tmp_path / "notes.txt").exists()


def test_cli_synaptic_refuses_an_earlier_run_unless_overwrite(tmp_path):
    runner = CliRunner()
    out = tmp_path / "run"
    assert runner.invoke(main, [*SYNAPTIC_ARGS, "--out", str(out)]).exit_code == 0
    refused = runner.invoke(main, [*SYNAPTIC_ARGS, "--out", str(out)])
    assert refused.exit_code == 2 and "Traceback" not in refused.output
    line = " ".join(refused.output.split())
    assert "already holds a run" in line and "--overwrite" in line and f"--resume {out}" in line
    assert runner.invoke(main, [*SYNAPTIC_ARGS, "--out", str(out), "--overwrite"]).exit_code == 0
    resumed_with_overwrite = runner.invoke(main, ["synaptic", "--resume", str(out), "--overwrite"])
    assert resumed_with_overwrite.exit_code == 2 and "drop --overwrite" in resumed_with_overwrite.output


def test_cli_train_and_depth_refuse_an_earlier_run_unless_overwrite(tmp_path):
    runner = CliRunner()
    out = tmp_path / "run"
    train = ["train", "--model", "mlp", "--dataset", "digits", "--epochs", "1", "--limit-train", "64",
             "--limit-test", "64", "--batch-size", "32", "--out", str(out)]
    assert runner.invoke(main, train).exit_code == 0
    assert "already holds a run" in runner.invoke(main, train).output
    assert runner.invoke(main, [*train, "--overwrite"]).exit_code == 0
    missing = str(tmp_path / "no-such-model")
    for command in (["depth", "--cut", "a:b"], ["depth", "search"]):
        args = [*command, "--model", "mlp", "--dataset", "digits", "--checkpoint", missing, "--out", str(out)]
        (out / "result.json").write_text("{}")  # --overwrite below removed the run's files
        refused = runner.invoke(main, args)
        assert refused.exit_code == 2 and "already holds a run" in refused.output
        # with --overwrite the run goes on, to the next problem: the checkpoint that is not there
        went_on = runner.invoke(main, [*args, "--overwrite"])
        assert went_on.exit_code == 2 and "no-such-model" in went_on.output


# ---- a failed start leaves no folder that looks like a run ----------------------------------


def test_runs_that_fail_before_training_leave_no_folder(tmp_path):
    missing_data = str(tmp_path / "no-cifar")
    with pytest.raises(DatasetError):
        run_train(TrainConfig(**{**TRAIN.__dict__, "dataset": "cifar10", "data_root": missing_data}), tmp_path / "t")
    with pytest.raises(DatasetError):
        run_synaptic(SynapticConfig(**{**SYNAPTIC.__dict__, "dataset": "cifar10", "data_root": missing_data}),
                     tmp_path / "s")
    result = CliRunner().invoke(main, ["depth", "--model", "mlp", "--dataset", "digits", "--cut", "a:b",
                                       "--checkpoint", str(tmp_path / "absent"), "--out", str(tmp_path / "d")])
    assert result.exit_code == 2
    assert not any((tmp_path / name).exists() for name in ("t", "s", "d"))


def test_a_folder_that_existed_keeps_everything_but_the_config_the_failed_run_wrote(tmp_path):
    (tmp_path / "notes.txt").write_text("the user's")
    with pytest.raises(DatasetError):
        run_train(TrainConfig(**{**TRAIN.__dict__, "dataset": "cifar10", "data_root": str(tmp_path / "x")}), tmp_path)
    assert _names(tmp_path) == {"notes.txt"}
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError):
        run_train(TrainConfig(**{**TRAIN.__dict__, "dataset": "cifar10", "data_root": str(tmp_path / "x")}), empty)
    assert empty.is_dir() and not any(empty.iterdir())


def test_a_failed_resume_keeps_the_run_it_could_not_continue(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text('{"config": {"dataset": "digits", "epochs": 1}}')
    (out / "checkpoint.pt").write_bytes(b"")
    result = CliRunner().invoke(main, ["synaptic", "--resume", str(out)])
    assert result.exit_code == 2 and "checkpoint.pt" in result.output
    assert _names(out) == {"config.json", "checkpoint.pt"}


# ---- one run per folder: a lock held from the first write to the end ------------------------


def _hold_lock(folder: Path) -> subprocess.Popen:
    """Another process that locks ``folder`` as a run does, and keeps it until killed."""
    script = textwrap.dedent(f"""
        import sys, time
        from neuroprune.folder_lock import FolderLock
        FolderLock({str(folder)!r}).acquire()
        print("locked", flush=True)
        time.sleep(60)
    """)
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_lock_refuses_a_second_run_into_a_folder_in_use_and_writes_nothing(tmp_path):
    out = tmp_path / "run"
    holder = _hold_lock(out)
    try:
        for run in (lambda: run_synaptic(SYNAPTIC, out), lambda: run_train(TRAIN, out),
                    lambda: run_depth(DepthConfig(dataset="digits", cut="a:b"), out),
                    lambda: run_synaptic(SYNAPTIC, out, resume=True), lambda: run_train(TRAIN, out, overwrite=True)):
            with pytest.raises(ConfigError, match=rf"another neuroprune run \(process {holder.pid}\) is writing"):
                run()
            assert _names(out) == {".neuroprune.lock"}  # nothing of the refused run, nothing of the holder's removed
        refused = CliRunner().invoke(main, [*SYNAPTIC_ARGS, "--out", str(out)])
        assert refused.exit_code == 2 and len(refused.output.strip().splitlines()) == 1
        assert "is writing into" in refused.output
    finally:
        holder.kill()
        holder.wait()
    run_synaptic(SYNAPTIC, out)  # the lock died with its process
    assert (out / "result.json").is_file() and not (out / ".neuroprune.lock").exists()


def test_a_refused_run_leaves_the_config_the_holder_saved_after_it_looked(tmp_path):
    from neuroprune.folder_lock import FolderLock
    from neuroprune.runs._common import claim_run_folder, discards_unstarted_folder

    out = tmp_path / "run"
    holder = FolderLock(out)  # the other run, which starts between this run's first look and its claim

    @discards_unstarted_folder
    def run(config, out_dir):
        holder.acquire()
        (out / "config.json").write_text('{"seed": 1}')
        claim_run_folder(out_dir)

    try:
        with pytest.raises(ConfigError, match="is writing into"):
            run(None, out)
        assert (out / "config.json").read_text() == '{"seed": 1}'  # the holder's, untouched
    finally:
        holder.release()


def test_lock_is_held_until_the_run_ends(tmp_path, monkeypatch):
    from neuroprune.folder_lock import FolderLock
    from neuroprune.runs import synaptic as synaptic_run

    out = tmp_path / "run"
    seen = []

    def write_json(path, obj):  # every write of the run happens while a second lock is refused
        with pytest.raises(ConfigError, match="is writing into"):
            FolderLock(out).acquire()
        seen.append(Path(path).name)
        storage_write_json(path, obj)

    from neuroprune.storage import write_json as storage_write_json

    monkeypatch.setattr(synaptic_run, "write_json", write_json)
    run_synaptic(SYNAPTIC, out)
    assert seen == ["config.json", "result.json"]
    with FolderLock(out):  # released at the end
        pass


def test_lock_two_concurrent_cli_runs_into_one_folder_one_is_refused(tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "neuroprune", "--threads", "1", *SYNAPTIC_ARGS[:3], "--epochs", "3",
               "--limit-train", "256", "--limit-test", "64", "--no-measure-latency", "--out", str(out)]
    runs = [subprocess.Popen([*command, "--seed", str(seed)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for seed in (1, 2)]
    outcomes = [(run.wait(timeout=300), run.stderr.read()) for run in runs]
    codes = sorted(code for code, _ in outcomes)
    assert codes == [0, 2], outcomes
    refusal = next(err for code, err in outcomes if code == 2)
    assert len(refusal.strip().splitlines()) == 1
    assert "is writing into" in refusal or "already holds a run" in refusal  # refused mid-run, or after it ended
    seed = json.loads((out / "config.json").read_text())["seed"]
    assert json.loads((out / "result.json").read_text())["seed"] == seed  # one run's files, not a mix

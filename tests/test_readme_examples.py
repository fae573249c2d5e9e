"""The README's examples run as written: a newcomer copies them, so they must not drift from the API.

Each test takes a fenced block out of README.md by the heading it sits under and runs it
verbatim (Python blocks with ``exec``, the shell block with bash), then checks what it
promises: a smaller compacted model, a run folder the other commands read.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import neuroprune as npr

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _blocks(section: str, language: str) -> list[str]:
    """The ``language`` code blocks between the ``## section`` heading and the next ``## `` heading."""
    start = README.index(f"## {section}\n")
    end = README.find("\n## ", start + 1)
    body = README[start:end if end != -1 else None]
    return re.findall(rf"```{language}\n(.*?)```", body, flags=re.DOTALL)


def _parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_short_tour_synaptic_example_compacts_to_a_smaller_model():
    code = _blocks("A short tour", "python")[0]
    namespace: dict = {}
    exec(compile(code, "README.md: short tour", "exec"), namespace)
    model, small = namespace["model"], namespace["small"]
    assert _parameters(small) < _parameters(model)
    x = next(iter(namespace["train"]))[0][:8]
    # compacting bakes the masks in: the smaller network computes what the masked one does
    assert torch.allclose(small.eval()(x), model.eval()(x), atol=1e-4)


def test_short_tour_depth_example_cuts_the_named_span_and_recovers():
    code = _blocks("A short tour", "python")[1]
    base = npr.create_model("vgg16", in_channels=1, image_size=8, width=0.125)
    train = npr.create_loader("digits", "train", batch_size=64)
    x = next(iter(train))[0][:2]
    namespace = {"npr": npr, "base": base, "x": x, "train": train}
    exec(compile(code, "README.md: short tour", "exec"), namespace)
    small = namespace["small"]
    assert _parameters(small) < _parameters(base)
    assert small(x).shape == base(x).shape


@pytest.mark.slow
def test_own_model_and_data_commands_and_notebook_run_as_written(tmp_path):
    shell, = _blocks("Your own model and data", "bash")
    notebook, = _blocks("Your own model and data", "python")
    (tmp_path / "scripts").symlink_to(ROOT / "scripts")
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", shell], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "run" / "model.json").is_file()
    assert (tmp_path / "report" / "index.html").is_file()

    cwd = Path.cwd()
    sys.path.insert(0, str(tmp_path))
    try:
        os.chdir(tmp_path)
        namespace: dict = {}
        exec(compile(notebook, "README.md: notebook", "exec"), namespace)
    finally:
        os.chdir(cwd)
        sys.path.remove(str(tmp_path))
        sys.modules.pop("my_net", None)
    small, model = namespace["small"], namespace["model"]
    assert _parameters(small) < _parameters(model)
    rebuilt, _ = npr.load_model(tmp_path / "my_run")
    x = namespace["x"]
    assert torch.allclose(rebuilt(x), small.eval()(x), atol=1e-5)

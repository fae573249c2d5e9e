"""Cached pretrained weights are verified at every use: a file damaged after it was fetched is refused
in one line that says how to fetch it again, and never trained on."""

from __future__ import annotations

import shutil

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file, save_file

import neuroprune as npr
from neuroprune import ModelError
from neuroprune.cli import main
from neuroprune.models import pretrained

NAME = "efficientnet_lite0"
REAL_CACHE = pretrained.weights_file(NAME)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A copy of the real fetched weights in a cache of the test's own."""
    if not REAL_CACHE.is_file():
        pytest.skip(f"the {NAME} weights are not fetched on this machine")
    monkeypatch.setenv(pretrained.ENV_VAR, str(tmp_path / "cache"))
    target = pretrained.weights_file(NAME)
    target.parent.mkdir(parents=True)
    shutil.copyfile(REAL_CACHE, target)
    return target


def _damage(path, key, bits):
    """XOR ``bits`` into every float32 of tensor ``key`` (a sign flip: 0x80000000, an exponent bit: 0x40000000)."""
    state = load_file(str(path))
    raw = state[key].contiguous().view(torch.int32)
    state[key] = (raw ^ torch.tensor(bits - (1 << 32) if bits >= 1 << 31 else bits, dtype=torch.int32)).view(
        torch.float32)
    save_file(state, str(path))


def test_hostile_cache_the_intact_weights_load(cache):
    state = pretrained.pretrained_state(NAME)
    assert len(state) == pretrained.SOURCES[NAME].tensors
    model = npr.create_model(NAME, in_channels=3, image_size=224, num_classes=1000, resolution=224, pretrained=True)
    assert torch.equal(model.state_dict()["_conv_stem.weight"], state["_conv_stem.weight"])


@pytest.mark.parametrize("bits", [0x80000000, 0x40000000], ids=["sign", "exponent"])
def test_hostile_cache_flipped_bits_are_refused_at_use(cache, bits):
    _damage(cache, "_conv_stem.weight", bits)
    with pytest.raises(ModelError, match=rf"damaged.*`neuroprune models fetch {NAME}`") as caught:
        npr.create_model(NAME, in_channels=1, image_size=28, num_classes=10, pretrained=True)
    assert "\n" not in str(caught.value)


def test_hostile_cache_is_one_line_in_train(cache, tmp_path):
    _damage(cache, "_conv_stem.weight", 0x80000000)
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["train", "--model", NAME, "--pretrained", "--dataset", "digits", "--epochs", "1",
                                       "--limit-train", "32", "--limit-test", "32", "--out", str(out)])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
    assert "damaged" in result.output and f"neuroprune models fetch {NAME}" in " ".join(result.output.split())
    assert not out.exists()  # nothing trained, nothing left


def test_hostile_cache_a_file_of_other_tensors_is_refused(cache):
    state = load_file(str(cache))
    state.pop("_fc.bias")
    save_file(state, str(cache))
    with pytest.raises(ModelError, match="damaged"):
        pretrained.pretrained_state(NAME)

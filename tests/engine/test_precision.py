"""Devices and mixed precision: every pipeline runs on the device asked for, in the precision asked for.

bfloat16 autocast works on the CPU, so the mixed-precision paths run on every machine;
the same tests run on CUDA where a GPU is present (``gpu`` marker) and are skipped elsewhere.
"""

import pytest
import torch
from torch import nn

import neuroprune as npr
from neuroprune import ConfigError
from neuroprune.depth.config import DepthConfig, TrainConfig
from neuroprune.engine.precision import autocast, resolve_device
from neuroprune.runs.depth import run_depth
from neuroprune.runs.train import run_train

DEVICES = [
    "cpu",
    pytest.param("cuda", marks=[pytest.mark.gpu,
                                pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("precision", ["32", "bf16-mixed", "16-mixed"])
def test_fit_trains_in_every_precision_and_keeps_float32_weights(device, precision):
    torch.manual_seed(0)
    model = npr.create_model("mlp", image_size=8, hidden=(32,)).to(device)
    train = npr.create_loader("digits", "train", 64, limit=512)
    before = npr.evaluate(model, train, precision=precision)["loss"]
    history = npr.fit(model, train, epochs=3, lr=0.05, eval_loader=train, precision=precision)
    assert history[-1]["test_loss"] < 0.5 * before
    assert all(p.dtype == torch.float32 and p.device.type == device for p in model.parameters())


@pytest.mark.parametrize("device", DEVICES)
def test_autocast_really_computes_in_bfloat16(device):
    layer = nn.Linear(4, 3).to(device)
    with autocast("bf16-mixed", torch.device(device)):
        assert layer(torch.randn(2, 4, device=device)).dtype == torch.bfloat16
    with autocast("32", torch.device(device)):
        assert layer(torch.randn(2, 4, device=device)).dtype == torch.float32


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("model_name", ["lenet5", "resnet20"])
def test_synaptic_pruning_under_bf16_prunes_and_compacts_exactly(device, model_name):
    torch.manual_seed(0)
    model = npr.create_model(model_name, in_channels=1, image_size=8,
                             **({"width": 0.5} if model_name == "resnet20" else {}))
    model = model.to(device)
    train = npr.create_loader("digits", "train", 64, limit=512)
    pruner = npr.SynapticPruner(model, target_sparsity=0.7, granularity="both")
    npr.fit(model, train, epochs=4, lr=0.05, callbacks=[pruner], precision="bf16-mixed")
    assert pruner.sparsity() >= 0.7 - 1e-6
    assert all(torch.isfinite(a).all() for a in pruner.tracker.activity().values())
    pruner.remove_hooks()
    model.eval()
    small = pruner.compact().eval()
    assert next(small.parameters()).device.type == device
    x = next(iter(train))[0].to(device)
    with torch.no_grad():
        assert torch.allclose(small(x), model(x), atol=1e-4)
    assert npr.count_params(small) < npr.count_params(model)


def test_training_and_depth_pruning_runs_record_device_and_precision(tmp_path):
    common = {"model": "resnet20", "dataset": "digits", "width": 0.125, "pad_to": 16, "limit_train": 128,
              "limit_test": 64, "batch_size": 64, "precision": "bf16-mixed", "device": "cpu"}
    trained = run_train(TrainConfig(**common, epochs=1), tmp_path / "base")
    assert (trained["device"], trained["precision"]) == ("cpu", "bf16-mixed")
    depth = run_depth(DepthConfig(**common, checkpoint=str(tmp_path / "base"), cut="layer2.1:layer3.0",
                                  translator_epochs=1, finetune_epochs=1, distill=True, latency_repeats=2),
                      tmp_path / "depth")
    assert (depth["device"], depth["precision"]) == ("cpu", "bf16-mixed")
    assert depth["params_pruned"] < depth["params_base"]
    assert 0 <= depth["accuracy_pruned"] <= 1


def test_device_names_are_checked():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match="device must be"):
        resolve_device("tpu")
    with pytest.raises(ConfigError, match="precision"):
        npr.fit(nn.Linear(2, 2), [], epochs=1, precision="8")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA"):
            resolve_device("cuda:0")
    with pytest.raises(ConfigError, match="device"):
        TrainConfig(device="gpu")

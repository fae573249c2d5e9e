"""Transfer learning: torchvision-layout weights load from safetensors or plain torch files, new head."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from neuroprune.errors import ModelError
from neuroprune.models import create_model
from neuroprune.models.imagenet import resnet18_body


@pytest.fixture(scope="module")
def imagenet_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return {k: v.clone() for k, v in resnet18_body().state_dict().items()}


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_weights_load_and_head_is_replaced(tmp_path: Path, imagenet_state: dict, suffix: str) -> None:
    path = tmp_path / f"resnet18{suffix}"
    if suffix == ".safetensors":
        save_file(imagenet_state, str(path))
    else:
        torch.save(imagenet_state, path)
    model = create_model("resnet18_imagenet", weights=str(path), num_classes=10)
    assert torch.equal(model.state_dict()["layer3.1.conv2.weight"], imagenet_state["layer3.1.conv2.weight"])
    assert model.fc.out_features == 10
    assert model.eval()(torch.randn(1, 3, 64, 64)).shape == (1, 10)


def test_grey_input_sums_rgb_kernels(tmp_path: Path, imagenet_state: dict) -> None:
    save_file(imagenet_state, str(tmp_path / "w.safetensors"))
    model = create_model("resnet18_imagenet", weights=str(tmp_path / "w.safetensors"), in_channels=1, num_classes=10)
    assert torch.allclose(model.conv1.weight, imagenet_state["conv1.weight"].sum(1, keepdim=True))


def test_mismatched_file_names_keys_and_shapes(tmp_path: Path, imagenet_state: dict) -> None:
    bad = dict(imagenet_state)
    bad["layer1.0.conv1.weight"] = torch.zeros(3, 3, 3, 3)
    del bad["fc.bias"]
    save_file(bad, str(tmp_path / "bad.safetensors"))
    with pytest.raises(ModelError,
                       match=r"fc\.bias.*layer1\.0\.conv1\.weight: file \(3, 3, 3, 3\) vs model \(64, 64, 3, 3\)"):
        create_model("resnet18_imagenet", weights=str(tmp_path / "bad.safetensors"))


def test_pickled_code_is_refused(tmp_path: Path) -> None:
    torch.save({"fc.weight": torch.zeros(1), "evil": Path("x")}, tmp_path / "evil.pth")
    with pytest.raises(ModelError, match="refusing to load"):
        create_model("resnet18_imagenet", weights=str(tmp_path / "evil.pth"))

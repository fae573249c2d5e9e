"""Every registered model builds, runs forward and backward, and the registry explains mistakes."""

import pytest
import torch

from neuroprune import ModelError, create_model, list_models
from neuroprune.models import describe_model, from_spec, to_spec

SMALL_INPUTS = [(1, 28), (3, 32)]


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize("in_channels, image_size", SMALL_INPUTS)
def test_every_registered_model_runs_forward_and_backward(name, in_channels, image_size):
    if name.endswith("_imagenet"):
        image_size = 64  # five stride-2 stages need more than 28 pixels
    torch.manual_seed(0)
    model = create_model(name, in_channels=in_channels, image_size=image_size, num_classes=7)
    x = torch.randn(2, in_channels, image_size, image_size)
    out = model(x)
    assert out.shape == (2, 7)
    out.sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    assert describe_model(name)


@pytest.mark.parametrize("name", ["mlp", "lenet5", "cifar_cnn"])
def test_input_width_adapts_to_the_data_set(name):
    digits = create_model(name, in_channels=1, image_size=8)
    assert digits(torch.zeros(3, 1, 8, 8)).shape == (3, 10)
    if name == "mlp":
        assert digits.fc1.in_features == 64 and create_model("mlp").fc1.in_features == 784


def test_plain_models_round_trip_through_their_spec():
    model = create_model("lenet5")
    rebuilt = from_spec(to_spec(model))
    rebuilt.load_state_dict(model.state_dict())
    x = torch.randn(2, 1, 28, 28)
    assert torch.equal(model(x), rebuilt(x))


def test_unknown_name_and_options_are_explained():
    with pytest.raises(ModelError, match="choose one of: .*mlp"):
        create_model("mpl")
    with pytest.raises(ModelError, match="does not accept"):
        create_model("mlp", depth=3)

"""Surgery: a new working model, the input model untouched, kept layers unchanged."""

from collections import OrderedDict

import torch
from torch import nn

from neuroprune.depth import DepthPruner, Translator, translator_modules
from neuroprune.depth.surgery import _free_name


def test_input_model_is_untouched(tiny, example) -> None:
    model = tiny("vgg16")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    modules_before = [name for name, _ in model.named_modules()]
    small = DepthPruner(model, example_inputs=example).plan(cut="features.6:features.24").apply()
    with torch.no_grad():
        for param in small.parameters():
            param.add_(1.0)  # changing the copy must not reach the original
    assert [name for name, _ in model.named_modules()] == modules_before
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_cross_stage_cut_in_vgg(tiny, example) -> None:
    model = tiny("vgg16").eval()
    small = DepthPruner(model, example_inputs=example).plan(cut="features.2:features.24").apply().eval()
    assert small(example).shape == (2, 10)
    (translator,) = translator_modules(small)
    assert translator.in_shape == (8, 16, 16) and translator.out_shape == (32, 2, 2)
    keys = small.state_dict()
    assert "features.10.weight" not in keys and "features.translator.conv.weight" in keys
    assert torch.equal(keys["features.24.weight"], model.state_dict()["features.24.weight"])


def test_cross_stage_cut_in_resnet_drops_empty_stage(tiny, example) -> None:
    model = tiny("resnet20")
    small = DepthPruner(model, example_inputs=example).plan(cut="layer1.0:layer3.1").apply()
    assert "layer2" not in dict(small.named_children())
    assert isinstance(small.layer1.translator, Translator)
    assert [n for n, _ in small.layer1.named_children()] == ["0", "translator"]
    assert small.eval()(example).shape == (2, 10)
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in model.parameters())


def test_identity_bridge_needs_matching_shapes(tiny, example) -> None:
    pruner = DepthPruner(tiny("resnet20"), example_inputs=example)
    small = pruner.plan(cut="layer2.0:layer2.2", bridge="identity").apply()
    assert not translator_modules(small) and "1" not in dict(small.layer2.named_children())
    assert small.eval()(example).shape == (2, 10)


def test_three_by_three_batchnorm_translator(tiny, example) -> None:
    pruner = DepthPruner(tiny("resnet20"), example_inputs=example)
    small = pruner.plan(cut="relu:layer3.0", kernel_size=3, use_batchnorm=True).apply()
    (translator,) = translator_modules(small)
    assert translator.conv.kernel_size == (3, 3) and hasattr(translator, "bn")
    assert small.eval()(example).shape == (2, 10)


def test_translator_name_avoids_every_name_of_a_module_held_twice() -> None:
    relu = nn.ReLU()  # one object under two names: named_children() yields only the first
    model = nn.Sequential(OrderedDict(relu=relu, translator=relu))
    assert _free_name(model, "relu") == "translator_1"

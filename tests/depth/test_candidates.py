"""Cut-point discovery: shapes of every candidate, cross-stage cuts, generic over registered CNNs."""

import os

import pytest
import torch

from neuroprune.depth import DepthPruner, Translator
from neuroprune.models import create_model, list_models

# The two large ImageNet models take ~10 s each (weight initialisation of 25M-134M parameters
# and translators up to 2048 channels): run them with NEUROPRUNE_SLOW_TESTS=1.
_LARGE = ("vgg16_imagenet", "resnet50_imagenet")
_RUN_LARGE = os.environ.get("NEUROPRUNE_SLOW_TESTS") == "1"
CNNS = [
    pytest.param(name,
                 marks=pytest.mark.skipif(name in _LARGE and not _RUN_LARGE, reason="slow; NEUROPRUNE_SLOW_TESTS=1"))
    for name in list_models()
    if name != "mlp"
]


def _model(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if name.endswith("_imagenet") or name == "efficientnet_lite0":
        return create_model(name, in_channels=1, num_classes=10)  # fixed width: the pretrained layout
    return create_model(name, in_channels=1, image_size=32, num_classes=10,
                        **({} if name in ("lenet5",) else {"width": 0.125}))


@pytest.mark.parametrize("name", CNNS)
def test_translator_output_matches_every_span(name: str) -> None:
    model = _model(name)
    pruner = DepthPruner(model, example_inputs=torch.randn(1, 1, 32, 32))
    spans = pruner.candidates()
    assert spans, name
    for span in spans:
        if not span.is_translatable:  # tokens, not feature maps: only nn.Identity bridges them
            assert span.is_identity_possible and span.translator_params == 0, span.cut
            continue
        out = Translator(span.in_shape, span.out_shape)(torch.randn(2, *span.in_shape))
        assert tuple(out.shape[1:]) == span.out_shape, span.cut
        assert span.translator_params == span.in_shape[0] * span.out_shape[0] + span.out_shape[0]


@pytest.mark.parametrize("name", ["vgg11", "resnet20"])
def test_spread_of_cuts_gives_working_models(name: str, tiny, example) -> None:
    model = tiny(name)
    pruner = DepthPruner(model, example_inputs=example)
    spans = pruner.candidates()
    for span in spans[:: max(1, len(spans) // 8)]:  # a spread of cuts: whole-model forwards are slow
        small = pruner.plan(span.cut).apply().eval()
        assert small(example).shape == (2, 10), span.cut


def test_shapes_come_from_the_probe(tiny, example) -> None:
    pruner = DepthPruner(tiny("resnet20"), example_inputs=example)
    span = pruner.span("layer1.2:layer3.0")
    assert span.in_shape == (2, 16, 16) and span.out_shape == (4, 8, 8)
    assert span.removed == ("layer2.0", "layer2.1", "layer2.2")
    assert span.translator == "maxpool 2x2 -> conv1x1 2->4 -> relu"


@pytest.mark.parametrize("name", ["vgg16", "resnet56"])
def test_cross_stage_cuts_are_listed(name: str, tiny, example) -> None:
    spans = DepthPruner(tiny(name), example_inputs=example).candidates()
    crossing = [s for s in spans if s.in_shape[1] != s.out_shape[1] and s.in_shape[0] != s.out_shape[0]]
    assert crossing, "no cut changes both channels and resolution"
    assert any(s.is_identity_possible for s in spans)


def test_vgg_boundaries_keep_conv_bn_relu_together(tiny, example) -> None:
    pruner = DepthPruner(tiny("vgg16"), example_inputs=example)
    kinds = {u.name: u.kind for u in pruner.units}
    for span in pruner.candidates():
        assert kinds[span.origin] in ("act", "pool")
        assert kinds[span.destination] in ("conv", "global_pool", "flatten")
    # 13 convs + the global pool are destinations; params and MACs of spans add up
    span = pruner.span("features.2:features.7")  # removes conv1_2 (+bn, relu) and the first pool
    assert span.removed == ("features.3", "features.4", "features.5", "features.6")
    assert span.params_removed == sum(u.params for u in pruner.units if u.name in span.removed)
    assert span.macs_removed > 0

"""Least-squares translator initialisation brings the cut model closer to the intact one."""

import pytest
import torch

from neuroprune.depth import DepthPruner, init_translator
from neuroprune.errors import ConfigError


def test_least_squares_start_beats_random(tiny, example, digits_train) -> None:
    model = tiny("resnet20", width=0.25).eval()
    pruner = DepthPruner(model, example_inputs=example)
    plan = pruner.plan(cut="layer2.2:avgpool")
    small = plan.apply().eval()
    x = next(iter(digits_train))[0]
    with torch.no_grad():
        target = model(x)
        random_error = (small(x) - target).pow(2).mean()
        residual = init_translator(small, model, plan.span, digits_train, batches=2)
        fitted_error = (small(x) - target).pow(2).mean()
    assert 0 <= residual < 1
    assert fitted_error < random_error


def test_needs_a_one_by_one_translator(tiny, example, digits_train) -> None:
    pruner = DepthPruner(tiny("resnet20"), example_inputs=example)
    plan = pruner.plan(cut="layer2.2:avgpool", kernel_size=3)
    with pytest.raises(ConfigError, match="1x1"):
        init_translator(plan.apply(), pruner.model, plan.span, digits_train)


def test_least_squares_start_is_refused_for_a_translator_with_batch_norm(tiny, digits_train) -> None:
    import pytest

    from neuroprune.depth import DepthPruner
    from neuroprune.depth.init import init_translator
    from neuroprune.errors import ConfigError

    model = tiny("vgg11").eval()
    pruner = DepthPruner(model, example_inputs=next(iter(digits_train))[0][:1])
    span = pruner.candidates()[0]
    small = pruner.plan(span.cut, use_batchnorm=True).apply()
    with pytest.raises(ConfigError, match="batch norm"):
        init_translator(small, model, span, digits_train)

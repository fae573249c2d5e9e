"""The trait table lists every constructor argument of every layer it names, for the installed PyTorch."""

import pytest
from torch import nn

from neuroprune.structure.traits import ROLES, TRAITS, constructor_defaults, saved_args, unlisted_args


@pytest.mark.parametrize("cls", list(TRAITS), ids=lambda cls: cls.__name__)
def test_the_table_lists_every_constructor_argument(cls):
    trait = TRAITS[cls]
    listed = {*trait.spec_args, *trait.optional_args, *trait.aliases}
    assert trait.role in ROLES
    missing = set(constructor_defaults(cls)) - listed
    assert not missing, f"{cls.__name__} takes {sorted(missing)}, which the trait table does not list"


@pytest.mark.parametrize("module, saved", [
    (nn.AvgPool2d(2, divisor_override=3), {"divisor_override": 3}),
    (nn.Upsample(scale_factor=2.0, recompute_scale_factor=True), {"recompute_scale_factor": True}),
    (nn.MaxPool2d(2, return_indices=True), {"return_indices": True}),
    (nn.ReLU(inplace=True), {"inplace": True}),
])
def test_an_optional_argument_is_saved_when_it_differs_from_its_default(module, saved):
    args = saved_args(module)
    assert saved.items() <= args.items()
    assert unlisted_args(module) == {}


def test_a_default_optional_argument_is_not_saved():
    assert "divisor_override" not in saved_args(nn.AvgPool2d(2))
    assert saved_args(nn.ReLU()) == {}

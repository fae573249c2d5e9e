"""Every public name has a docstring, and the API reference page lists every one of them."""

import inspect
import re
from pathlib import Path

import pytest

import neuroprune as npr

API_PAGE = Path(__file__).resolve().parents[1] / "docs" / "api.md"
# callback events and nn.Module overrides: their meaning is the caller's (fit, torch)
INHERITED_MEANING = re.compile(r"^(on_\w+|forward|extra_repr)$")


def _own_doc(obj):
    return (getattr(obj, "__doc__", None) or "").strip()


@pytest.mark.parametrize("name", npr.__all__)
def test_public_name_has_a_docstring(name):
    obj = getattr(npr, name)
    assert _own_doc(obj), f"neuroprune.{name} has no docstring"
    if not inspect.isclass(obj):
        return
    for member, value in vars(obj).items():
        if member.startswith("_") or INHERITED_MEANING.match(member):
            continue
        target = value.fget if isinstance(value, property) else getattr(value, "__func__", value)
        if callable(target) or isinstance(value, property):
            assert _own_doc(target), f"neuroprune.{name}.{member} has no docstring"


def test_api_page_lists_every_public_name():
    listed = set(re.findall(r"^::: ([\w.]+)$", API_PAGE.read_text(), flags=re.MULTILINE))
    expected = {f"{getattr(npr, n).__module__}.{getattr(npr, n).__qualname__}" for n in npr.__all__}
    assert listed == expected, f"docs/api.md: missing {sorted(expected - listed)}, extra {sorted(listed - expected)}"

"""Property tests: the config parser ends in a config or a ConfigError, never anything else."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neuroprune.config import SynapticConfig, from_dict, load_config
from neuroprune.errors import ConfigError

FIELDS = [field.name for field in dataclasses.fields(SynapticConfig)]
FAST = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
)
values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
keys = st.one_of(st.sampled_from(FIELDS), st.text(max_size=12))
PATHS = ("weights", "data")


def _parse(build):
    try:
        config = build()
    except ConfigError as error:
        assert str(error)  # a message for the user
        return None
    assert isinstance(config, SynapticConfig)
    return config


@FAST
@given(st.dictionaries(keys, values, max_size=6))
def test_from_dict_accepts_or_raises_config_error(raw):
    config = _parse(lambda: from_dict(SynapticConfig, dict(raw)))
    if config is not None:
        for key, value in raw.items():
            if key in PATHS and value is not None:  # made absolute, so a resumed run finds them
                value = str(Path(value).expanduser().resolve())
            assert getattr(config, key) == value


@FAST
@given(st.dictionaries(st.sampled_from(FIELDS), values, min_size=1, max_size=1))
def test_a_rejected_value_is_named_in_the_message(raw):
    try:
        from_dict(SynapticConfig, dict(raw))
    except ConfigError as error:
        key = next(iter(raw))
        # the range checks of related fields (stop_step vs warmup_steps) name both
        assert key in str(error)


@FAST
@given(st.binary(max_size=400))
def test_random_bytes_as_a_yaml_file(data):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "c.yaml"
        path.write_bytes(data)
        _parse(lambda: load_config(SynapticConfig, path))


@FAST
@given(st.text(alphabet=st.sampled_from(list("abc:-_ \n\t[]{}&*!|>'\"#%@`0123456789.eE+")), max_size=200))
def test_yaml_like_text(text):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "c.yaml"
        path.write_text(text)
        _parse(lambda: load_config(SynapticConfig, path))


@FAST
@given(st.dictionaries(st.sampled_from(FIELDS), scalars, max_size=5))
def test_yaml_mappings_of_known_keys(raw):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "c.yaml"
        path.write_text(yaml.safe_dump(raw))
        _parse(lambda: load_config(SynapticConfig, path, {"epochs": 3}))


def test_yaml_dates_and_bombs_are_config_errors(tmp_path):
    path = tmp_path / "c.yaml"
    for text in ("seed: 2001-13-45\n", "a: &a [1]\nb: &b [*a, *a, *a]\nc: [*b, *b, *b]\n", "- 1\n- 2\n", "\xff"):
        path.write_text(text, encoding="latin1" if text == "\xff" else "utf-8")
        _parse(lambda: load_config(SynapticConfig, path))


def test_an_empty_path_is_refused_not_taken_for_the_current_folder():
    for option in PATHS:
        try:
            from_dict(SynapticConfig, {option: ""})
        except ConfigError as error:
            assert f"{option} is empty" in str(error)
        else:
            raise AssertionError(f"an empty {option} was accepted")

"""Every JSON file neuroprune reads back goes through one bounded reader: a hostile or broken file
is one line naming the file (and the field), exit status 2, never a traceback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neuroprune.cli import main
from neuroprune.config import SynapticConfig, load_run_config
from neuroprune.errors import ConfigError, ModelError, NeuropruneError
from neuroprune.json_files import MAX_DEPTH, read_json
from neuroprune.runs.synaptic import run_synaptic

DEEP = "[" * 100_000 + "]" * 100_000
HUGE_INTEGER = "1" * 100_001
SMALL = SynapticConfig(dataset="digits", epochs=1, limit_train=64, limit_test=64, check_every=1, measure_latency=False)


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("run") / "run"
    run_synaptic(SMALL, folder)
    return folder


@pytest.fixture
def copy(run_folder, tmp_path) -> Path:
    target = tmp_path / "run"
    shutil.copytree(run_folder, target)
    return target


def _one_line_refusal(result, *words: str) -> str:
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1, result.output
    line = " ".join(result.output.split())
    for word in words:
        assert word in line, line
    return line


def _edit_result(folder: Path, **fields) -> None:
    document = json.loads((folder / "result.json").read_text())
    document.update(fields)
    (folder / "result.json").write_text(json.dumps(document))


# ---- the reader -----------------------------------------------------------------------------


@pytest.mark.parametrize("text, problem", [
    (DEEP, "nested"),
    ("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), "nested more than"),
    (f'{{"a": {HUGE_INTEGER}}}', "digits"),
    (f'{{"a": {"9" * 5000}}}', "digits"),  # over Python's 4300-digit int limit
    (f'{{"a": 1.{"5" * 1000}}}', "digits"),
    ("{not json", "not valid JSON"),
    ("[]", "the document must be object"),
])
def test_json_reader_refuses_hostile_text_in_one_line(tmp_path, text, problem):
    path = tmp_path / "file.json"
    path.write_text(text)
    with pytest.raises(ConfigError, match=problem) as caught:
        read_json(path, error=ConfigError)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value) and len(str(caught.value)) < 400


def test_json_reader_refuses_an_oversized_file_without_reading_it(tmp_path):
    path = tmp_path / "result.json"
    with open(path, "wb") as handle:  # sparse: 8 GB declared, nothing on disk
        handle.truncate(8 << 30)
    with pytest.raises(NeuropruneError, match="larger than"):
        read_json(path, max_bytes=1 << 20)


def test_json_reader_names_the_field_of_the_wrong_type(tmp_path):
    path = tmp_path / "result.json"
    path.write_text(json.dumps({"latency_ms": "fast", "checks": [{"layers": 5}]}))
    with pytest.raises(NeuropruneError, match=r"field 'latency_ms' must be object or null, got 'fast'"):
        read_json(path, schema={"latency_ms": "object|null"})
    with pytest.raises(NeuropruneError, match=r"field 'checks'\[0\]\['layers'\] must be object, got 5"):
        read_json(path, schema={"checks": "array", "checks[]": "object", "checks[].layers": "object"})
    assert read_json(path, schema={"absent": "object"})["checks"] == [{"layers": 5}]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=json_values, schema_type=st.sampled_from(["object", "array", "string", "number", "object|null"]))
def test_json_reader_ends_in_data_or_one_error_for_every_document(tmp_path, document, schema_type):
    path = tmp_path / "file.json"
    path.write_text(json.dumps(document))
    try:
        read_json(path, root="any", schema={"a": schema_type, "a[]": "object", "a.b": schema_type})
    except NeuropruneError as exc:
        assert "\n" not in str(exc) and "field 'a" in str(exc)


# ---- report: result.json, config.json, candidates.json --------------------------------------


@pytest.mark.parametrize("fields, words", [
    ({"latency_ms": "fast"}, ["field 'latency_ms'", "fast"]),
    ({"checks": 5}, ["field 'checks'", "got 5"]),
    ({"per_layer": [3]}, ["field 'per_layer'[0]"]),
    ({"pruner": "sgd"}, ["field 'pruner'"]),
])
def test_hostile_result_json_fields_are_one_line_in_report(copy, tmp_path, fields, words):
    _edit_result(copy, **fields)
    result = CliRunner().invoke(main, ["report", str(copy), "--out", str(tmp_path / "report")])
    _one_line_refusal(result, "result.json", *words)


@pytest.mark.parametrize("name, text", [("result.json", DEEP), ("result.json", f'{{"method": {HUGE_INTEGER}}}'),
                                        ("config.json", DEEP), ("candidates.json", DEEP)])
def test_hostile_json_text_is_one_line_in_report(copy, tmp_path, name, text):
    (copy / name).write_text(text)
    result = CliRunner().invoke(main, ["report", str(copy), "--out", str(tmp_path / "report")])
    _one_line_refusal(result, name)


REPORT_KEYS = ["method", "history", "checks", "per_layer", "latency_ms", "pruner", "processes", "test_accuracy",
               "params_compact", "macs_compact", "pruned_fraction", "dataset", "model"]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(REPORT_KEYS), value=json_values)
def test_hostile_result_json_report_renders_or_refuses_in_one_line(run_folder, tmp_path_factory, key, value):
    folder = tmp_path_factory.mktemp("hostile") / "run"
    shutil.copytree(run_folder, folder)
    _edit_result(folder, **{key: value})
    result = CliRunner().invoke(main, ["report", str(folder), "--out", str(folder.parent / "report")])
    if result.exit_code != 0:
        _one_line_refusal(result)


# ---- resume and export: config.json, model.json, result.json ---------------------------------


def test_hostile_config_json_is_one_line_on_resume(copy):
    (copy / "config.json").write_text(DEEP)
    _one_line_refusal(CliRunner().invoke(main, ["synaptic", "--resume", str(copy)]), "config.json", "nested")
    (copy / "config.json").write_text(json.dumps({"config": {"dataset": "digits"}, "processes": 2}))
    with pytest.raises(ConfigError, match="field 'processes'"):
        load_run_config(SynapticConfig, copy)


@pytest.mark.parametrize("name, text", [("config.json", DEEP), ("model.json", DEEP), ("result.json", DEEP),
                                        ("model.json", '{"architecture": {"format": 7}}'),
                                        ("result.json", f'{{"method": "synaptic", "model": {HUGE_INTEGER}}}')])
def test_hostile_json_is_one_line_in_export(copy, tmp_path, name, text):
    (copy / name).write_text(text)
    result = CliRunner().invoke(main, ["export", str(copy), "--out", str(tmp_path / "export")])
    _one_line_refusal(result, name)


def test_model_json_with_a_wrong_field_type_is_a_model_error(copy):
    from neuroprune import load_model

    document = json.loads((copy / "model.json").read_text())
    document["metadata"]["input_shape"] = "28x28"
    (copy / "model.json").write_text(json.dumps(document))
    with pytest.raises(ModelError, match=r"field 'metadata'\['input_shape'\] must be array"):
        load_model(copy)

"""Every error is one line with exit status 2, option-parser errors included, and a long string from
the user is shortened in the message instead of echoed whole."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from neuroprune.cli import main
from neuroprune.cli._errors import shorten


def _one_line(result, *words: str) -> str:
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output, result.output
    line = " ".join(result.output.split())
    assert line.startswith("error: ") and all(word in line for word in words), line
    return line


@pytest.mark.parametrize("args, words", [
    (["synaptic", "--precision", "8"], ["'--precision'", "'8'", "neuroprune synaptic --help"]),
    (["synaptic", "--out", "{file}"], ["'--out'", "is a file"]),
    (["models", "fetch", "efficientnet_lite0", "--source", "{missing}"], ["'--source'", "does not exist"]),
    (["train", "--no-such-option"], ["No such option", "--no-such-option"]),
    (["--threads", "0", "models"], ["'--threads'", "neuroprune --help"]),
])
def test_hostile_options_parser_errors_are_one_line(tmp_path, args, words):
    (tmp_path / "file").write_text("a file, not a folder")
    args = [arg.format(file=tmp_path / "file", missing=tmp_path / "missing.whl") for arg in args]
    _one_line(CliRunner().invoke(main, args, prog_name="neuroprune"), *words)


def test_hostile_options_help_and_version_still_exit_0():
    for args in (["--help"], ["synaptic", "--help"], ["--version"]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0 and result.output.strip(), args


def test_hostile_input_a_100000_character_cut_name_is_shortened(tmp_path):
    name = "a" * 100_000
    result = CliRunner().invoke(main, ["depth", "--model", "resnet20", "--dataset", "digits", "--limit-train", "32",
                                       "--limit-test", "32", "--cut", f"layer1.0:{name}", "--out", str(tmp_path / "d")])
    line = _one_line(result, "unknown destination layer", "(100,003 characters)")
    assert len(line) < 3000


def test_hostile_input_shorten_keeps_short_words_and_cuts_long_ones():
    assert shorten("a  short\nmessage") == "a short message"
    cut = shorten("name " + "x" * 500 + " end")
    assert cut.startswith("name " + "x" * 80 + "...(500 characters)...") and cut.endswith("x" * 40 + " end")
    assert len(shorten("word " * 10_000)) <= 3000

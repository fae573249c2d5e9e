"""The restricted unpickler: numpy arrays load; anything that could run code is refused unrun."""

from __future__ import annotations

import builtins
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from neuroprune.data._safe_pickle import safe_loads
from neuroprune.errors import DatasetError


class _RunsShell:
    """Unpickling this calls os.system(command)."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (self.command,))


class _RunsEval:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (builtins.eval, ("__import__('os').getcwd()",))


@pytest.mark.parametrize("protocol", range(2, pickle.HIGHEST_PROTOCOL + 1))
def test_numpy_content_round_trips(protocol: int) -> None:
    content = {
        b"data": np.arange(12, dtype=np.uint8).reshape(3, 4),
        "floats": np.linspace(0, 1, 5, dtype=np.float32),
        "labels": [1, 2, 3],
        "scalar": np.int64(7),
        "nested": (b"bytes", "text", 1.5, None, True),
    }
    loaded = safe_loads(pickle.dumps(content, protocol=protocol), "test.pkl")
    np.testing.assert_array_equal(loaded[b"data"], content[b"data"])
    np.testing.assert_array_equal(loaded["floats"], content["floats"])
    assert loaded["floats"].dtype == np.float32
    assert loaded["labels"] == [1, 2, 3]
    assert loaded["scalar"] == 7
    assert loaded["nested"] == content["nested"]


@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL])
def test_shell_command_is_refused_and_never_runs(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], protocol: int
) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_RunsShell(f"echo pwned; touch {marker}"), protocol=protocol)
    with pytest.raises(
        DatasetError, match=r"refusing to unpickle (posix|nt)\.system from evil\.pkl: only numpy arrays are allowed"
    ):
        safe_loads(payload, "evil.pkl")
    assert not marker.exists()
    assert "pwned" not in capfd.readouterr().out


def test_payload_nested_in_mnist_shaped_tuple_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    arrays = (np.zeros((2, 784), np.float32), np.zeros(2, np.int64))
    payload = pickle.dumps((arrays, arrays, (arrays[0], _RunsShell(f"touch {marker}"))), protocol=2)
    with pytest.raises(DatasetError, match="refusing to unpickle"):
        safe_loads(payload, "mnist.pkl.gz")
    assert not marker.exists()


def test_eval_is_refused() -> None:
    with pytest.raises(DatasetError, match=r"refusing to unpickle builtins\.eval"):
        safe_loads(pickle.dumps(_RunsEval()), "evil.pkl")


def test_arbitrary_codec_is_refused() -> None:
    # GLOBAL _codecs.encode is allowed only as encode(text, "latin1"), the form Python 3 uses for bytes.
    payload = b"\x80\x02c_codecs\nencode\nX\x03\x00\x00\x00abcX\x05\x00\x00\x00rot13\x86R."
    with pytest.raises(DatasetError, match="not a readable pickle"):
        safe_loads(payload, "odd.pkl")


def test_garbage_is_reported() -> None:
    with pytest.raises(DatasetError, match=r"junk\.pkl is not a readable pickle"):
        safe_loads(b"\x80\x02this is not a pickle", "junk.pkl")

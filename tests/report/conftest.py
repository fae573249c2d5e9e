"""One small real synaptic run on digits, shared by the report tests (a few seconds)."""

import pytest

from neuroprune.config import SynapticConfig
from neuroprune.runs.synaptic import run_synaptic


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("digits_run")
    run_synaptic(SynapticConfig(dataset="digits", epochs=2, check_every=10, compare_dense=True), folder)
    return folder

"""`python benchmarks/depth.py ARGS`: the depth suite, ``neuroprune.bench.depth`` (`--help`: its options).

The same as `python -m neuroprune.bench depth ARGS`, but run with this checkout's ``src/`` and
writing into ``benchmarks/results/`` by default.
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))  # this checkout's neuroprune, installed or not

from neuroprune.bench import run  # noqa: E402

if __name__ == "__main__":
    sys.exit(run("depth", prog="python benchmarks/depth.py", out=HERE / "results"))

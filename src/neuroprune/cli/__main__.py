"""``python -m neuroprune.cli``: the same as the ``neuroprune`` command."""

from .main import main

main()

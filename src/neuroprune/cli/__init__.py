"""The ``neuroprune`` command line, one module per command.

:mod:`.main` holds the top-level click group and registers every command on it; each
command lives in its own module (:mod:`.data`, :mod:`.models`, :mod:`.synaptic`,
:mod:`.train`, :mod:`.depth`, :mod:`.export`, :mod:`.report`, :mod:`.reproduce`), and the
helpers they share are in :mod:`._common` and :mod:`._errors`. Command modules never import
:mod:`.main`, so the package has no import cycle.

Library errors (bad input, missing data) are printed as one line and exit with status 2.
Training commands run data-parallel when started by ``torchrun``, e.g.
``torchrun --nproc-per-node 2 -m neuroprune synaptic -c configs/synaptic_mlp_mnist.yaml --out runs/a``;
then only rank 0 prints and writes files.
"""

from .main import main

__all__ = ["main"]

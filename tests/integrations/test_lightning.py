"""SynapticPruning inside a lightning.Trainer (runs when lightning is installed)."""

from __future__ import annotations

import pytest
import torch

L = pytest.importorskip("lightning")

# imported after importorskip: without lightning the module is skipped before it fails
from neuroprune import create_loader, create_model  # noqa: E402
from neuroprune.integrations.lightning import SynapticPruning  # noqa: E402


class _Classifier(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.model = create_model("mlp", image_size=8, hidden=(32,))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.cross_entropy(self.model(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9)


def _trainer(tmp_path, callback, epochs=3, **options):
    return L.Trainer(
        max_epochs=epochs, accelerator="cpu", devices=1, callbacks=[callback], logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        default_root_dir=tmp_path, **options,
    )


def test_prunes_inside_a_lightning_trainer(tmp_path):
    torch.manual_seed(0)
    module = _Classifier()
    pruning = SynapticPruning(submodule="model", alpha=0.5, patience=2, check_every=5, warmup_steps=5,
                              max_fraction_per_check=0.5)
    loader = create_loader("digits", "train", 32, limit=320)
    trainer = _trainer(tmp_path, pruning, accumulate_grad_batches=2)
    trainer.fit(module, loader)

    pruner = pruning.pruner
    assert pruner.step_count == trainer.global_step == 15  # optimizer steps, not batches
    assert 0.1 < pruner.sparsity() < 1
    for name, layer in pruner.layers.items():
        assert torch.all(layer.weight[pruner.mask(name) == 0] == 0)
    assert pruner.tracker.num_hooks == 0  # removed at teardown
    small = pruner.compact()
    x = next(iter(loader))[0]
    module.eval()
    torch.testing.assert_close(small(x), module.model(x), atol=1e-5, rtol=1e-5)


def test_pruner_state_round_trips_through_lightning_checkpoints(tmp_path):
    torch.manual_seed(0)
    module = _Classifier()
    pruning = SynapticPruning(submodule="model", patience=2, check_every=5, warmup_steps=5)
    loader = create_loader("digits", "train", 32, limit=320)
    trainer = _trainer(tmp_path, pruning, epochs=2)
    trainer.fit(module, loader)
    path = tmp_path / "last.ckpt"
    trainer.save_checkpoint(path)

    restored = SynapticPruning(submodule="model", patience=2, check_every=5, warmup_steps=5)
    _trainer(tmp_path, restored, epochs=2).fit(_Classifier(), loader, ckpt_path=path)
    for name in pruning.pruner.layers:
        assert torch.equal(restored.pruner.mask(name), pruning.pruner.mask(name))
    assert restored.pruner.step_count == pruning.pruner.step_count

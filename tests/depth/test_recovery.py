"""Recovery: translator-only training freezes everything else; fine-tuning and distillation run."""

import torch

from neuroprune.depth import DepthPruner, fine_tune, recover, train_translators, translator_modules


def test_frozen_parameters_do_not_change(tiny, example, digits_train) -> None:
    model = tiny("resnet20")
    small = DepthPruner(model, example_inputs=example).plan(cut="layer1.0:layer3.1").apply()
    (translator,) = translator_modules(small)
    bridge_ids = {id(p) for p in translator.parameters()}
    frozen_before = {k: v.clone() for k, v in small.state_dict().items() if not k.startswith("layer1.translator.")}
    bridge_before = [p.clone() for p in translator.parameters()]
    phase = train_translators(small, digits_train, epochs=1, lr=1e-2)
    after = small.state_dict()
    for key, value in frozen_before.items():  # weights and batch-norm running statistics alike
        assert torch.equal(after[key], value), key
    assert any(not torch.equal(a, b) for a, b in zip(translator.parameters(), bridge_before, strict=True))
    assert all(p.requires_grad for p in small.parameters())  # flags restored
    assert phase.name == "translator" and phase.epochs == 1 and phase.seconds > 0
    assert len(bridge_ids) == 2


def test_recover_runs_every_phase_with_distillation(tiny, example, digits_train, digits_test) -> None:
    model = tiny("vgg11")
    small = DepthPruner(model, example_inputs=example).plan(cut="features.7:features.18").apply()
    phases = recover(small, digits_train, translator_epochs=1, finetune_epochs=1, teacher=model,
                     eval_loader=digits_test)
    assert [p.name for p in phases] == ["translator", "finetune"]
    assert phases[1].distilled and 0 <= phases[1].accuracy <= 1


def test_fine_tune_changes_all_layers(tiny, example, digits_train) -> None:
    small = DepthPruner(tiny("resnet20"), example_inputs=example).plan(cut="layer2.0:layer3.0").apply()
    before = small.conv1.weight.clone()
    fine_tune(small, digits_train, epochs=1, lr=0.05)
    assert not torch.equal(before, small.conv1.weight)


def test_identity_cut_skips_translator_phase(tiny, example, digits_train) -> None:
    small = DepthPruner(tiny("resnet20"), example_inputs=example).plan(cut="layer2.0:layer2.2",
                                                                       bridge="identity").apply()
    phases = recover(small, digits_train, translator_epochs=1, finetune_epochs=1)
    assert [p.name for p in phases] == ["finetune"]


def test_distillation_hands_the_teacher_back_in_the_mode_it_came_in(tiny, example, digits_train) -> None:
    base = tiny("resnet20")
    base.train()  # the caller's model, e.g. still being trained elsewhere
    small = DepthPruner(base, example_inputs=example).plan("layer1.2:layer3.0").apply()
    recover(small, digits_train, translator_epochs=0, finetune_epochs=1, teacher=base)
    assert base.training and all(m.training for m in base.modules())

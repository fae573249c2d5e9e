"""Cuts are single-entry single-exit regions of the traced graph: residual streams, skips, ModuleList loops."""

from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from neuroprune.depth import DepthPruner, load_graph_model, save_graph_model
from neuroprune.errors import ConfigError, ModelError
from neuroprune.models import create_model
from neuroprune.structure.regions import RegionGraph


def _vit() -> nn.Module:
    torch.manual_seed(0)
    return create_model("vit_tiny", in_channels=1, image_size=16, num_classes=10, width=0.25).eval()


def test_vit_cuts_remove_whole_blocks_of_the_residual_stream(example) -> None:
    pruner = DepthPruner(_vit(), example_inputs=example)
    assert [u.name for u in pruner.units if u.name.startswith("blocks")] == [f"blocks.{i}" for i in range(4)]
    cuts = {s.cut: s for s in pruner.candidates()}
    assert {"blocks.0:blocks.2", "blocks.1:norm", "blocks.0:norm"} <= set(cuts)
    span = cuts["blocks.0:blocks.2"]
    assert span.removed == ("blocks.1",) and span.in_shape == span.out_shape == (16, 16)
    with pytest.raises(ConfigError, match="a translator bridges feature maps.*'identity' or 'auto'"):
        pruner.plan("blocks.0:blocks.2")
    small = pruner.plan("blocks.0:blocks.2,blocks.2:norm", bridge="auto").apply()
    keys = small.state_dict()
    assert not any(k.startswith(("blocks.1.", "blocks.3.")) for k in keys) and "blocks.2.attn.qkv.weight" in keys
    out = small.train()(example)
    assert out.shape == (2, 10)
    out.sum().backward()  # the cut model trains


def test_surgery_is_exact_when_the_removed_block_is_an_identity(example) -> None:
    model = _vit()
    with torch.no_grad():  # blocks.2 adds zero to the residual stream: it is an exact identity
        for layer in (model.blocks[2].attn.proj, model.blocks[2].mlp[2]):
            layer.weight.zero_()
            layer.bias.zero_()
    small = DepthPruner(model, example_inputs=example).plan("blocks.1:blocks.3", bridge="identity").apply().eval()
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in model.parameters())
    with torch.no_grad():
        torch.testing.assert_close(small(example), model(example), rtol=1e-6, atol=1e-6)


def test_resnet_block_with_a_silent_branch_cuts_exactly(tiny, example) -> None:
    model = tiny("resnet20").eval()
    with torch.no_grad():
        model.layer2[1].bn2.weight.zero_()
        model.layer2[1].bn2.bias.zero_()  # relu(x + 0) = x after a ReLU
    small = DepthPruner(model, example_inputs=example).plan("layer2.0:layer2.2", bridge="identity").apply().eval()
    with torch.no_grad():
        torch.testing.assert_close(small(example), model(example))


def test_unet_skip_lower_path_is_one_block_a_translator_replaces(tmp_path: Path, example) -> None:
    torch.manual_seed(0)
    model = create_model("unet_skip", in_channels=1, image_size=16, num_classes=10, width=0.5).eval()
    pruner = DepthPruner(model, example_inputs=example)
    kinds = {u.name: u.kind for u in pruner.units}
    assert kinds["cat"] == "block"  # down, mid, up and the concatenation: one single-entry single-exit region
    span = pruner.span("enc.5:dec.0")
    assert span.removed == ("cat",) and span.in_shape == (8, 16, 16) and span.out_shape == (24, 16, 16)
    small = pruner.plan(span.cut).apply().eval()
    assert not any(k.startswith("mid.") for k in small.state_dict())
    assert "enc.translator.conv.weight" in small.state_dict()
    assert small(example).shape == (2, 10)
    save_graph_model(small, tmp_path)
    reloaded, _ = load_graph_model(tmp_path)
    assert torch.equal(reloaded.eval()(example), small(example))


def test_untraceable_model_is_refused_naming_the_module(example) -> None:
    class Branchy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x) if x.sum() > 0 else x

    with pytest.raises(ModelError, match=r"cannot trace module '<root>' \(Branchy\)"):
        DepthPruner(Branchy(), example_inputs=example)


# ---- the SESE property on generated chain / residual / skip models ----------------------

class _Generated(nn.Module):
    """Layers looped over in forward; each one plain, residual (x + f(x)), or concatenated (cat[x, f(x)])."""

    def __init__(self, kinds: list[str], channels: int) -> None:
        super().__init__()
        self.kinds = kinds
        self.layers = nn.ModuleList()
        for kind in kinds:
            if kind == "pool":
                self.layers.append(nn.MaxPool2d(2))
                continue
            out = channels + 2 if kind == "widen" else channels
            self.layers.append(nn.Sequential(nn.Conv2d(channels, out, 3, padding=1), nn.ReLU()))
            channels = 2 * channels if kind == "concat" else out
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for kind, layer in zip(self.kinds, self.layers, strict=True):
            if kind == "residual":
                x = x + layer(x)
            elif kind == "concat":
                x = torch.cat([x, layer(x)], dim=1)
            else:
                x = layer(x)
        return self.head(x)


_KINDS = st.lists(st.sampled_from(["plain", "widen", "residual", "concat", "pool"]), min_size=2, max_size=6).filter(
    lambda kinds: kinds.count("pool") <= 2 and kinds.count("concat") <= 2)


@settings(max_examples=15, deadline=None, derandomize=True)
@given(kinds=_KINDS)
def test_every_candidate_is_a_single_entry_single_exit_region_and_cuts_cleanly(kinds: list[str]) -> None:
    torch.manual_seed(0)
    model = _Generated(kinds, 2).eval()
    x = torch.randn(2, 2, 8, 8)
    expected = model(x).shape
    try:
        pruner = DepthPruner(model, example_inputs=x)
    except ConfigError:  # e.g. only pools between the boundaries: nothing removable
        return
    regions: RegionGraph = pruner.regions
    for span in pruner.candidates():
        entry = regions.nodes[regions.segment(span.origin).exit]
        removed = {regions.nodes[n] for unit in span.removed for n in regions.segment(unit).nodes}
        exit_node = regions.nodes[regions.segment(span.removed[-1]).exit]
        assert regions.dominates(entry, exit_node) and regions.post_dominates(exit_node, entry), span.cut
        for node in removed:  # single entry: everything read comes from inside, the entry, or constants
            assert all(p in removed or p is entry or p.op == "get_attr" for p in node.all_input_nodes), span.cut
            if node is not exit_node:  # single exit: only the exit is read from outside
                assert all(u in removed for u in node.users), span.cut
        small = pruner.plan(span.cut, bridge="auto").apply().eval()
        assert small(x).shape == expected, span.cut

import pytest
import torch
from safetensors.torch import save_file

from neuroprune.errors import ModelError
from neuroprune.models import create_model
from neuroprune.models.user_model import absolute_reference
from neuroprune.models.weights_file import build_model

DATA = {"in_channels": 1, "image_size": 8, "num_classes": 3}


def test_factory_by_file_takes_model_args_and_only_the_data_options_it_names(model_file):
    model = create_model(f"{model_file}:Net", hidden=5, **DATA)  # Net has no image_size argument
    assert model[6].out_features == 5 and model[-1].out_features == 3
    assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 3)


def test_factory_by_module_path(model_module):
    assert create_model(f"{model_module}:Net", **DATA)[-1].out_features == 3


def test_file_references_become_absolute(model_file, monkeypatch):
    monkeypatch.chdir(model_file.parent)
    assert absolute_reference("my_net.py:Net") == f"{model_file}:Net"
    assert absolute_reference("pkg.mod:Net") == "pkg.mod:Net"


@pytest.mark.parametrize("attribute, message", [
    ("Missing", "has no 'Missing'; it defines: Net, broken, not_a_model"),
    ("broken", "raised ValueError while building the model: no such layer size"),
    ("not_a_model", "returned a int, not a torch.nn.Module"),
])
def test_bad_factories_are_named(model_file, attribute, message):
    with pytest.raises(ModelError, match=message):
        create_model(f"{model_file}:{attribute}")


def test_unknown_arguments_missing_files_and_modules(model_file, tmp_path):
    with pytest.raises(ModelError, match="does not accept the options"):
        create_model(f"{model_file}:Net", depth=3)
    with pytest.raises(ModelError, match="does not exist"):
        create_model(f"{tmp_path / 'nope.py'}:Net")
    with pytest.raises(ModelError, match="cannot import module 'no_such_module_xyz'"):
        create_model("no_such_module_xyz:Net")


def _state(model_file, **options):
    torch.manual_seed(1)
    return create_model(f"{model_file}:Net", **{**DATA, **options}).state_dict()


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_weights_file_loads_when_it_fits(model_file, tmp_path, suffix):
    state = _state(model_file)
    path = tmp_path / f"w{suffix}"
    save_file(state, str(path)) if suffix == ".safetensors" else torch.save(state, path)
    model = build_model(f"{model_file}:Net", path, **DATA)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())


def test_mismatched_weights_name_the_first_bad_key(model_file, tmp_path):
    path = tmp_path / "w.safetensors"
    save_file(_state(model_file, hidden=7), str(path))
    with pytest.raises(ModelError, match=r"do not fit my_net.py:Net: '6.weight' is \(7, 128\) in the file but "
                                         r"\(16, 128\) in the model \(2 more keys differ\)"):
        build_model(f"{model_file}:Net", path, **DATA)
    state = _state(model_file)
    state["0.weight"] = state["0.weight"].to(torch.int32)
    torch.save(state, tmp_path / "w.pt")
    with pytest.raises(ModelError, match="'0.weight' is int32 in the file but float32 in the model"):
        build_model(f"{model_file}:Net", tmp_path / "w.pt", **DATA)
    state = _state(model_file)
    state["extra"] = torch.zeros(1)
    torch.save(state, tmp_path / "w.pt")
    with pytest.raises(ModelError, match="the file has 'extra', which the model lacks"):
        build_model(f"{model_file}:Net", tmp_path / "w.pt", **DATA)


def test_a_weights_file_with_code_is_refused(model_file, tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"0.weight": torch.zeros(1), "hook": torch.nn.ReLU()}, path)  # a pickled module object
    with pytest.raises(ModelError, match="refusing to load"):
        build_model(f"{model_file}:Net", path, **DATA)

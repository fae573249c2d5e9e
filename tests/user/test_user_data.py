import numpy as np
import pytest
import torch

from neuroprune.data import create_loader, dataset_info, load_arrays
from neuroprune.data.user_data import TEST_FRACTION, class_names, open_user_data
from neuroprune.errors import DatasetError


def test_image_folder_is_split_normalised_and_carved_like_a_built_in_set(images):
    name = open_user_data(images)
    info = dataset_info(name)
    assert (info.in_channels, info.image_size, info.num_classes) == (1, 8, 3)
    assert info.test_size == round(TEST_FRACTION * 60) and info.train_size == 60 - info.test_size
    assert class_names(name) == ("0", "1", "2")
    fit = create_loader(name, "fit", batch_size=100)
    validation = create_loader(name, "validation", batch_size=100)
    assert len(fit.dataset) + len(validation.dataset) == info.train_size and len(validation.dataset) >= 1
    x, _ = fit.dataset.tensors
    assert abs(float(x.mean())) < 1e-4 and abs(float(x.std()) - 1) < 0.02  # statistics of the fit part
    assert open_user_data(images) == name  # read once per process
    # the carved test split is the same images every time
    assert torch.equal(load_arrays(name, "test")[1], load_arrays(name, "test")[1])


def test_train_and_test_folders_are_used_as_they_are(tmp_path, write_images):
    root = write_images(tmp_path / "split", classes=2, per_class=10, split=True)
    info = dataset_info(open_user_data(root))
    assert (info.train_size, info.test_size, info.num_classes) == (16, 4, 2)


def test_resize_and_rgb(images):
    name = open_user_data(images, image_size=12, channels=3)
    images_, labels = load_arrays(name, "train")
    assert images_.shape[1:] == (3, 12, 12) and labels.dtype == torch.int64
    assert torch.equal(images_[:, 0], images_[:, 1])  # grey made RGB: equal channels


def test_npz_in_the_cache_format(npz, tmp_path):
    name = open_user_data(npz)
    info = dataset_info(name)
    assert (info.in_channels, info.image_size, info.num_classes, info.train_size, info.test_size) == (1, 8, 3, 60, 15)
    grey = tmp_path / "grey.npz"  # (N, H, W) is grey
    np.savez(grey, x_train=np.zeros((6, 4, 4), np.uint8), y_train=np.arange(6) % 2,
             x_test=np.zeros((2, 4, 4), np.uint8), y_test=np.array([0, 1]))
    assert load_arrays(open_user_data(grey), "test")[0].shape == (2, 1, 4, 4)


def _write(path, data=b"not an image"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_bad_image_empty_class_and_stray_file_are_named(images):
    bad = _write(images / "1" / "broken.png")
    with pytest.raises(DatasetError, match="broken.png is not a readable image"):
        open_user_data(images)
    bad.unlink()
    (images / "3").mkdir()
    with pytest.raises(DatasetError, match=r"class folder .*3 holds no images"):
        open_user_data(images)
    (images / "3").rmdir()
    _write(images / "2" / "notes.txt", b"x")
    with pytest.raises(DatasetError, match="notes.txt is not a PNG or JPEG"):
        open_user_data(images)


def test_mixed_sizes_are_refused_unless_resized(images):
    from PIL import Image

    Image.new("L", (9, 9)).save(images / "0" / "big.png")
    with pytest.raises(DatasetError, match="big.png is 9x9 pixels but .* is 8x8; pass --image-size"):
        open_user_data(images)
    assert dataset_info(open_user_data(images, image_size=8)).image_size == 8


def test_npz_labels_out_of_range_and_pickles_are_refused(tmp_path):
    x = np.zeros((4, 1, 4, 4), np.uint8)
    path = tmp_path / "labels.npz"
    np.savez(path, x_train=x, y_train=np.array([0, 1, 0, 1]), x_test=x, y_test=np.array([0, 1, 2, 0]))
    with pytest.raises(DatasetError, match=r"y_test holds labels 0\.\.2, outside the 2 classes"):
        open_user_data(path)
    np.savez(path, x_train=x, y_train=np.array([0, -1, 0, 1]), x_test=x, y_test=np.array([0, 1, 1, 0]))
    with pytest.raises(DatasetError, match="y_train holds labels -1"):
        open_user_data(path)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, x_train=np.array([object()], dtype=object), y_train=x, x_test=x, y_test=x)
    with pytest.raises(DatasetError, match="pickled.npz is not a readable .npz"):
        open_user_data(pickled)
    np.savez(path, x_train=x.astype(np.float32), y_train=np.array([0, 1, 0, 1]), x_test=x,
             y_test=np.array([0, 1, 1, 0]))
    with pytest.raises(DatasetError, match="x_train must be uint8"):
        open_user_data(path)


def test_missing_path(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        open_user_data(tmp_path / "nowhere")


def test_rgb_jpegs_give_three_channels(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(1)
    for label in ("cat", "dog"):
        folder = tmp_path / "photos" / label
        folder.mkdir(parents=True)
        for index in range(5):
            Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)).save(folder / f"{index}.jpg")
    name = open_user_data(tmp_path / "photos")
    assert (dataset_info(name).in_channels, class_names(name)) == (3, ("cat", "dog"))
    assert load_arrays(open_user_data(tmp_path / "photos", channels=1), "train")[0].shape[1] == 1

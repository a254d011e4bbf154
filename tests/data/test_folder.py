"""A folder of images as a dataset: layout, class names, preparation as cnn predict's, bad files, splits, cnn data info."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cnn_cli.cli.data import data_group
from cnn_cli.config.build import config_from_dict
from cnn_cli.data.folder import list_folder, read_folder_dataset, stratified_holdout
from cnn_cli.data.images import load_image
from cnn_cli.data.info import folder_info
from cnn_cli.data.prepare import load_dataset
from cnn_cli.errors import ConfigError, DataError
from tests.support.folders import DIGIT_NAMES, write_bad_files, write_digit_folder, write_digit_images

SORTED_NAMES = sorted(DIGIT_NAMES)


@pytest.fixture(scope="module")
def digit_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 classes of 12 drawn digits each, in one folder (no train/ or test/)."""
    return write_digit_folder(tmp_path_factory.mktemp("digits"), per_class=12)


def test_the_class_names_are_the_sorted_folder_names(digit_folder: Path) -> None:
    listing = list_folder(digit_folder)
    assert listing.class_names == SORTED_NAMES
    assert not listing.split_layout and listing.test is None
    assert len(listing.train) == 120
    for path, label in listing.train:
        assert path.parent.name == SORTED_NAMES[label]


def test_hidden_files_and_folders_are_passed_over(tmp_path: Path) -> None:
    write_digit_images(tmp_path, per_class=1)
    (tmp_path / ".ipynb_checkpoints").mkdir()
    (tmp_path / "zero" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (tmp_path / "README.txt").write_text("files beside the class folders are not images of a class")
    listing = list_folder(tmp_path)
    assert listing.class_names == SORTED_NAMES and len(listing.train) == 10


def test_each_image_is_prepared_exactly_as_cnn_predict_prepares_it(digit_folder: Path) -> None:
    folder = read_folder_dataset(digit_folder, test_fraction=0.25, seed=0)
    listing = list_folder(digit_folder)
    everything = {path: label for path, label in listing.train}
    prepared = {
        path: np.rint(load_image(path).pixels * 255).astype(np.uint8) for path in everything
    }  # cnn predict's preparation, as 8-bit pixels
    pixels = np.concatenate([folder.train_pixels, folder.test_pixels])
    labels = np.concatenate([folder.train_labels, folder.test_labels])
    assert pixels.dtype == np.uint8 and pixels.shape == (120, 28, 28)
    matched = 0
    for path, expected in prepared.items():
        same = np.flatnonzero((pixels == expected).all(axis=(1, 2)))
        assert same.size >= 1, f"{path}: its prepared pixels are not in the dataset"
        assert everything[path] in labels[same]
        matched += 1
    assert matched == 120


def test_bad_files_are_reported_skipped_and_counted(tmp_path: Path) -> None:
    write_digit_images(tmp_path, per_class=4)
    bad = write_bad_files(tmp_path / "three")
    notes: list[str] = []

    folder = read_folder_dataset(tmp_path, test_fraction=0.25, seed=0, note=notes.append)

    assert len(folder.train_labels) + len(folder.test_labels) == 40, "every good image is kept"
    assert len(folder.bad) == 3 and "3 bad file(s) skipped" in folder.description
    assert notes[-1] == f"{tmp_path}: 3 of 43 files skipped (not an image, truncated or unreadable); going on with the rest"
    assert [line.split(": ")[1] for line in notes[:3]] == [str(path) for path in bad]
    assert "cannot decode image (image file is truncated)" in notes[0]
    assert "empty file" in notes[1] and "not an image Pillow can read" in notes[2]


def test_the_seeded_test_split_holds_out_a_fraction_of_each_class() -> None:
    labels = np.repeat(np.arange(3), [10, 5, 1])
    kept, held = stratified_holdout(labels, 0.2, seed=4)
    assert np.bincount(labels[held], minlength=3).tolist() == [2, 1, 0], "a class of one image stays whole"
    assert sorted([*kept, *held]) == list(range(16))
    again_kept, again_held = stratified_holdout(labels, 0.2, seed=4)
    assert np.array_equal(held, again_held) and np.array_equal(kept, again_kept)
    other = stratified_holdout(labels, 0.2, seed=5)[1]
    assert not np.array_equal(held, other)


def test_load_dataset_splits_a_folder_like_mnist(digit_folder: Path) -> None:
    splits = load_dataset("folder", path=digit_folder, val_size=20, test_fraction=0.25, seed=0, progress=False)
    assert splits.class_names == SORTED_NAMES and splits.classes == list(range(10))
    assert (len(splits.train), len(splits.val), len(splits.test)) == (70, 20, 30)
    assert np.bincount(splits.test.labels).tolist() == [3] * 10
    assert splits.train.images.shape[1:] == (1, 28, 28) and splits.train.images.dtype == np.float32
    assert "folder" in splits.source and "10 classes" in splits.source

    again = load_dataset("folder", path=digit_folder, val_size=20, test_fraction=0.25, seed=0, progress=False)
    assert np.array_equal(splits.train.images, again.train.images)


def test_classes_pick_folders_by_their_index(digit_folder: Path) -> None:
    seven, two = SORTED_NAMES.index("seven"), SORTED_NAMES.index("two")
    splits = load_dataset("folder", path=digit_folder, val_size=2, classes=[seven, two], progress=False)
    assert splits.class_names == ["seven", "two"] and splits.num_classes == 2
    with pytest.raises(DataError, match=r"classes: \[10\] are not labels of folder .*10 classes \(0\.\.9\)"):
        load_dataset("folder", path=digit_folder, val_size=2, classes=[0, 10], progress=False)


def test_train_and_test_folders_are_used_as_given(tmp_path: Path) -> None:
    write_digit_folder(tmp_path, per_class=5, test_per_class=2)
    splits = load_dataset("folder", path=tmp_path, val_size=10, progress=False)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (40, 10, 20)
    assert splits.class_names == SORTED_NAMES and "train/ and test/" in splits.source


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda root: (root / "train" / "a").mkdir(parents=True), "has train/ but no test/; give both"),
        (lambda root: (root / "only").mkdir(), r"found 1 class folder\(s\) \(only\)"),
        (lambda root: None, r"found 0 class folder\(s\) \(none\)"),
        (
            lambda root: [(root / part).mkdir(parents=True) for part in ("train/a", "train/b", "test/a", "test/zebra")],
            "test: class folder.s. zebra have no training folder",
        ),
    ],
    ids=["train without test", "one class", "no class", "a test class without training images"],
)
def test_a_wrong_layout_is_one_clear_error(tmp_path: Path, make, message: str) -> None:
    make(tmp_path)
    with pytest.raises(DataError, match=message):
        list_folder(tmp_path)


def test_a_missing_folder_and_a_folder_of_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such folder; a folder dataset is a folder with one sub-folder of images per class"):
        list_folder(tmp_path / "nope")
    write_bad_files(tmp_path / "a")
    write_bad_files(tmp_path / "b")
    with pytest.raises(DataError, match="no image could be read among 6 training files"):
        read_folder_dataset(tmp_path, 0.2, 0)


def test_the_config_asks_for_a_path_with_a_folder_only() -> None:
    with pytest.raises(ConfigError, match="data.path: dataset 'folder' needs the folder of images"):
        config_from_dict({"data": {"dataset": "folder"}})
    with pytest.raises(ConfigError, match="data.path: expected no path for dataset 'mnist'"):
        config_from_dict({"data": {"path": "my-images"}})
    with pytest.raises(ConfigError, match=r"data.test_fraction: expected a number > 0 and < 1|data.test_fraction"):
        config_from_dict({"data": {"dataset": "folder", "path": "x", "test_fraction": 1.0}})
    config = config_from_dict({"data": {"dataset": "folder", "path": "x", "classes": [12, 3]}})
    assert config.data.classes == [12, 3], "a folder may have more than 10 classes"


def test_data_info_on_a_folder(tmp_path: Path) -> None:
    write_digit_images(tmp_path, per_class=3)
    write_bad_files(tmp_path / "nine")

    result = CliRunner().invoke(data_group, ["info", str(tmp_path)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"folder {tmp_path}: 10 classes (one folder); 30 of 33 files are images"
    assert f"  {'nine':<11} {3:>7}" in lines and f"  {'total':<11} {30:>7}" in lines
    assert "skipped: 3 file(s), not an image, truncated or unreadable" in lines
    assert f"  {tmp_path / 'nine' / 'notes.txt'}: not an image Pillow can read (PNG, JPEG, ...)" in lines

    info = json.loads(CliRunner().invoke(data_group, ["info", str(tmp_path), "--json"]).output)
    assert info == folder_info(tmp_path)
    assert info["class_names"] == SORTED_NAMES and info["counts"] == {"images": 30} and info["files"] == 33
    assert info["class_balance"]["images"] == [3] * 10 and len(info["skipped"]) == 3


def test_data_info_on_train_and_test_folders(tmp_path: Path) -> None:
    write_digit_folder(tmp_path, per_class=2, test_per_class=1)
    info = folder_info(tmp_path)
    assert info["layout"] == "train/ and test/" and info["counts"] == {"train": 20, "test": 10}


def test_data_info_on_neither_a_dataset_nor_a_folder(tmp_path: Path) -> None:
    result = CliRunner().invoke(data_group, ["info", str(tmp_path / "nope")])
    assert isinstance(result.exception, DataError)
    assert str(result.exception) == f"{tmp_path / 'nope'}: neither a dataset (mnist, fashion-mnist) nor a folder of images"

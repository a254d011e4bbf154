"""The pieces around a trial: data shipped to a worker's folder, sweep.csv round trips, ranking. No Dask needed."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from cnn_cli.config.build import config_from_dict
from cnn_cli.data.folder import list_folder
from cnn_cli.errors import DataError
from cnn_cli.sweep.data import files_to_ship, place_files
from cnn_cli.sweep.report import TrialRow, format_table, ranked, read_sweep_csv, write_sweep_csv
from tests.support.folders import write_digit_folder
from tests.support.synthetic import make_idx_dataset, tiny_config


def test_shipped_files_land_at_the_configs_relative_paths_on_the_worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    client, worker = tmp_path / "client", tmp_path / "worker"
    paths = {role: str(Path(p).relative_to(client)) for role, p in make_idx_dataset(client / "data" / "tiny", 50, 20).items()}
    monkeypatch.chdir(client)
    files = files_to_ship([config_from_dict(tiny_config(paths))] * 2)
    assert sorted(files) == sorted(paths.values())  # each file once
    worker.mkdir()
    monkeypatch.chdir(worker)
    place_files(files)
    for name, content in files.items():
        assert (worker / name).read_bytes() == content
    place_files(files)  # identical files already there: nothing to do
    (worker / paths["test_labels"]).write_bytes(b"something else")
    with pytest.raises(DataError, match="already has a different file there; not overwriting it"):
        place_files(files)
    assert (worker / paths["test_labels"]).read_bytes() == b"something else"


def test_a_folder_dataset_is_shipped_file_by_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    client, worker = tmp_path / "client", tmp_path / "worker"
    write_digit_folder(client / "digits", per_class=1, test_per_class=1)
    monkeypatch.chdir(client)
    files = files_to_ship([config_from_dict({"data": {"dataset": "folder", "path": "digits"}})])
    assert len(files) == 20 and all(name.startswith(("digits/train/", "digits/test/")) for name in files)
    worker.mkdir()
    monkeypatch.chdir(worker)
    place_files(files)
    assert list_folder("digits").class_names == list_folder(client / "digits").class_names


def test_a_missing_data_file_on_the_client_is_a_data_error(tmp_path: Path) -> None:
    paths = {role: str(tmp_path / role) for role in ("train_images", "train_labels", "test_images", "test_labels")}
    with pytest.raises(DataError, match="cannot read data file to send to the workers"):
        files_to_ship([config_from_dict(tiny_config(paths))])


def test_sweep_csv_round_trips_and_ranking_puts_the_best_first(tmp_path: Path) -> None:
    rows = [
        TrialRow(1, {"optimizer.lr": 0.001, "model.layers[1].type": "relu"}, "completed", {"val_loss": 0.5, "val_acc": 0.9}, 1.5, 1, "w1"),
        TrialRow(2, {"optimizer.lr": 0.01, "model.layers[1].type": "tanh"}, "completed", {"val_loss": 0.2, "val_acc": 0.8}, 2.0, 2, "w2"),
        TrialRow(3, {"optimizer.lr": 10.0, "model.layers[1].type": "relu"}, "failed", {}, 0.3, 1, "w1", "training diverged, at step 4"),
        TrialRow(4, {"optimizer.lr": 0.1, "model.layers[1].type": "relu"}, "completed", {"val_loss": math.nan, "val_acc": math.nan}),
        TrialRow(5, {"optimizer.lr": 0.3, "model.layers[1].type": "relu"}),
    ]
    parameters = ["optimizer.lr", "model.layers[1].type"]
    write_sweep_csv(tmp_path / "sweep.csv", rows, parameters)
    back = read_sweep_csv(tmp_path / "sweep.csv", parameters)
    assert back[3].message == "training diverged, at step 4" and back[3].status == "failed"
    assert back[1].params == rows[0].params and back[2].attempts == 2 and back[5].status == "pending"
    assert [r.number for r in ranked(list(back.values()), "val_acc", "max")] == [1, 2, 4, 3, 5]
    assert [r.number for r in ranked(list(back.values()), "val_loss", "min")] == [2, 1, 4, 3, 5]
    table = format_table(list(back.values()), parameters, "val_loss", "min").splitlines()
    assert table[0].split() == ["rank", "trial", "optimizer.lr", "model.layers[1].type", "val_loss", "status", "seconds"]
    assert [line.split()[1] for line in table[1:]] == ["trial-002", "trial-001", "trial-004", "trial-003"]  # pending not shown

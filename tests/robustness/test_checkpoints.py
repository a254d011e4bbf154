"""Broken and hostile checkpoints (issue 6, cases 1-7).

Every bad checkpoint is given to ``cnn eval``, ``cnn predict --checkpoint`` and
``cnn train --resume``: all three must refuse it with exit code 2 and the same
one-line message (only the file's path differs), and nothing may be changed on
disk. A few cases also run as real processes, with and without ``python -O``.
"""

from __future__ import annotations

import json
import pathlib
import shutil
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnn_cli.config.build import config_from_dict
from cnn_cli.config.load import config_to_yaml
from cnn_cli.config.sections import Config
from cnn_cli.model.network import Model
from cnn_cli.runs.checkpoint import class_names, load_checkpoint
from cnn_cli.runs.folders import RunPaths
from cnn_cli.training.train import train
from tests.support.cli import (
    EXIT_BAD_INPUT,
    error_line,
    invoke_cli,
    npy_array,
    npy_bytes,
    npz_members,
    run_cli,
    write_npz_members,
)
from tests.support.synthetic import make_idx_dataset, tiny_config


@dataclass
class Trained:
    """A real checkpoint from one short training run, and what the commands need beside it."""

    checkpoint: Path
    members: dict[str, bytes]
    config: Config
    image: Path


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Trained:
    folder = tmp_path_factory.mktemp("trained")
    paths = make_idx_dataset(folder / "idx", n_train=300, n_test=100)
    config = config_from_dict(tiny_config(paths, epochs=1))
    result = train(config, run_dir=folder / "run", log=lambda _line: None)
    assert result.status == "completed"
    pixels = np.zeros((28, 28), np.uint8)
    pixels[6:22, 12:16] = 255
    image = folder / "digit.png"
    Image.fromarray(pixels).save(image)
    return Trained(result.run.last, npz_members(result.run.last), config, image)


def variant(trained: Trained, path: Path, changes: dict[str, bytes | None]) -> Path:
    """The trained checkpoint with members replaced by key (``None`` removes one), written to ``path``."""
    members = dict(trained.members)
    for key, data in changes.items():
        name = key + ".npy"
        if data is None:
            del members[name]
        else:
            members[name] = data
    return write_npz_members(path, members)


def member(trained: Trained, key: str) -> np.ndarray:
    return npy_array(trained.members[key + ".npy"])


def resume_folder(trained: Trained, bad: Path, root: Path) -> RunPaths:
    """A run folder whose config matches the trained run and whose last.npz is ``bad``."""
    run = RunPaths(root)
    run.checkpoints.mkdir(parents=True)
    run.config.write_text(config_to_yaml(trained.config), encoding="utf-8")
    if bad.is_dir():
        run.last.mkdir()
    elif bad.exists():
        shutil.copyfile(bad, run.last)
    return run


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def refused_everywhere(trained: Trained, bad: Path, tmp_path: Path, *fragments: str, resume: bool = True) -> str:
    """``eval``, ``predict`` and ``train --resume`` refuse ``bad`` with one and the same message.

    Returns that message with the checkpoint's path replaced by ``CHECKPOINT``.
    """
    run = resume_folder(trained, bad, tmp_path / "resume-run")
    before = snapshot(run.root)
    # Loading a checkpoint takes well under a second; a few seconds means a hang.
    outcomes = {
        "eval": (invoke_cli(["eval", bad], timeout=5), bad),
        "predict": (invoke_cli(["predict", trained.image, "--checkpoint", bad], timeout=5), bad),
    }
    if resume:
        outcomes["resume"] = (invoke_cli(["train", "--resume", run.root], timeout=5), run.last)
    messages = {}
    for command, (outcome, path) in outcomes.items():
        message = error_line(outcome, EXIT_BAD_INPUT, *fragments)
        assert message.startswith(f"{path}: "), f"{command}: {message}"
        assert outcome.stdout == "", f"{command} printed {outcome.stdout!r}"
        messages[command] = message.replace(str(path), "CHECKPOINT")
    assert len(set(messages.values())) == 1, messages
    assert snapshot(run.root) == before, "a refused resume changed the run folder"
    return messages["eval"]


def test_the_trained_checkpoint_itself_is_accepted(trained: Trained) -> None:
    outcome = invoke_cli(["eval", trained.checkpoint, "--json"])
    assert outcome.code == 0, outcome.output
    assert json.loads(outcome.stdout)["n"] == 100


# ---------------------------------------------------------------- case 1: pickles


class TouchOnUnpickle:
    """Unpickling this creates ``marker``: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def pickled_payload(marker: Path) -> bytes:
    return npy_bytes(np.array([TouchOnUnpickle(marker)], dtype=object), allow_pickle=True)


def test_the_pickle_payload_really_runs_code_when_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    path = tmp_path / "payload.npz"
    write_npz_members(path, {"conv1.weight.npy": pickled_payload(marker)})
    with np.load(path, allow_pickle=True) as archive:
        archive["conv1.weight"]
    assert marker.exists(), "the payload must be live, or the refusal tests prove nothing"


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("conv1.weight", "key 'conv1.weight' is not a plain numeric array"),
        ("fc1.bias", "key 'fc1.bias' is not a plain numeric array"),
        ("meta/config", "key 'meta/config' is not a plain numeric array"),
        ("meta/format_version", "key 'meta/format_version' is not a plain numeric array"),
        ("meta/running", "key 'meta/running' is not a plain numeric array"),
        ("optimizer/conv1.weight.m", "key 'optimizer/conv1.weight.m' is not a plain numeric array"),
        ("evil", "unexpected key 'evil'"),
    ],
)
def test_pickled_object_array_is_refused_and_never_unpickled(trained: Trained, tmp_path: Path, key: str, expected: str) -> None:
    marker = tmp_path / "marker"
    bad = variant(trained, tmp_path / "pickled.npz", {key: pickled_payload(marker)})
    refused_everywhere(trained, bad, tmp_path, expected)
    assert not marker.exists(), "unpickling ran code"


@pytest.mark.parametrize("optimize", [False, True], ids=["python", "python -O"])
def test_pickled_checkpoint_refused_by_a_real_process(trained: Trained, tmp_path: Path, optimize: bool) -> None:
    marker = tmp_path / "marker"
    bad = variant(trained, tmp_path / "pickled.npz", {"conv1.weight": pickled_payload(marker)})
    outcome = run_cli(["eval", bad], optimize=optimize)
    error_line(outcome, EXIT_BAD_INPUT, str(bad), "not a plain numeric array", "refusing to load it")
    assert not marker.exists(), "unpickling ran code"


# ---------------------------------------------------------------- case 2: keys


@pytest.mark.parametrize("key", ["conv2.bias", "fc1.weight", "meta/rng", "meta/config"])
def test_missing_key_is_refused_naming_it(trained: Trained, tmp_path: Path, key: str) -> None:
    bad = variant(trained, tmp_path / "missing.npz", {key: None})
    refused_everywhere(trained, bad, tmp_path, f"missing key '{key}'")


@pytest.mark.parametrize("key", ["optimizer/conv1.weight.m", "optimizer/steps"])
def test_resume_refuses_a_checkpoint_missing_optimizer_state(trained: Trained, tmp_path: Path, key: str) -> None:
    """eval and predict need no optimizer state, but a resume without it would silently differ from the run."""
    bad = variant(trained, tmp_path / "no-state.npz", {key: None})
    run = resume_folder(trained, bad, tmp_path / "run")
    before = snapshot(run.root)
    outcome = invoke_cli(["train", "--resume", run.root, "--quiet"])
    error_line(outcome, EXIT_BAD_INPUT, str(run.last), f"missing key '{key}'")
    assert snapshot(run.root) == before


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("fc2.weight", "unexpected key 'fc2.weight'"),
        ("conv1.scale", "unexpected key 'conv1.scale'"),
        ("optimizer/fc9.weight.m", "unexpected key 'optimizer/fc9.weight.m'; no parameter 'fc9.weight'"),
    ],
)
def test_extra_key_is_refused_naming_it(trained: Trained, tmp_path: Path, key: str, expected: str) -> None:
    bad = variant(trained, tmp_path / "extra.npz", {key: npy_bytes(np.zeros(3, np.float32))})
    refused_everywhere(trained, bad, tmp_path, expected)


# ---------------------------------------------------------------- case 3: shapes and dtypes


@pytest.fixture
def model_must_not_run(monkeypatch: pytest.MonkeyPatch) -> None:
    def forward(self, x, training=False):
        raise AssertionError("the model ran on a checkpoint that should have been refused")

    monkeypatch.setattr(Model, "forward", forward)


def test_transposed_kernel_is_refused_before_the_model_runs(trained: Trained, tmp_path: Path, model_must_not_run) -> None:
    kernel = member(trained, "conv2.weight")  # (8, 4, 3, 3)
    bad = variant(trained, tmp_path / "transposed.npz", {"conv2.weight": npy_bytes(kernel.transpose(1, 0, 2, 3).copy())})
    refused_everywhere(trained, bad, tmp_path, "conv2.weight has shape (4, 8, 3, 3), but the stored config's model needs (8, 4, 3, 3)")


def test_transposed_dense_weight_is_refused(trained: Trained, tmp_path: Path, model_must_not_run) -> None:
    weight = member(trained, "fc1.weight")
    bad = variant(trained, tmp_path / "transposed.npz", {"fc1.weight": npy_bytes(weight.T.copy())})
    refused_everywhere(trained, bad, tmp_path, f"fc1.weight has shape {weight.T.shape}", f"needs {weight.shape}")


@pytest.mark.parametrize("dtype", ["float64", "float16", "int32", "complex64"])
def test_wrong_dtype_is_refused(trained: Trained, tmp_path: Path, model_must_not_run, dtype: str) -> None:
    weight = member(trained, "conv1.weight").astype(dtype)
    bad = variant(trained, tmp_path / "dtype.npz", {"conv1.weight": npy_bytes(weight)})
    refused_everywhere(trained, bad, tmp_path, f"conv1.weight has dtype {dtype}, expected float32")


def test_wrong_shape_of_optimizer_state_is_refused(trained: Trained, tmp_path: Path) -> None:
    state = member(trained, "optimizer/fc1.weight.v")
    bad = variant(trained, tmp_path / "state.npz", {"optimizer/fc1.weight.v": npy_bytes(state[:, :-1].copy())})
    refused_everywhere(trained, bad, tmp_path, "optimizer/fc1.weight.v has shape")


# ---------------------------------------------------------------- case 4: NaN / inf


def _with_value(array: np.ndarray, value: float) -> np.ndarray:
    changed = array.copy()
    changed.flat[changed.size // 2] = value
    return changed


@pytest.mark.parametrize(
    ("key", "value"),
    [("conv1.weight", np.nan), ("conv2.bias", np.inf), ("fc1.weight", -np.inf), ("optimizer/conv2.weight.v", np.nan)],
)
def test_non_finite_array_is_refused(trained: Trained, tmp_path: Path, model_must_not_run, key: str, value) -> None:
    bad = variant(trained, tmp_path / "nan.npz", {key: npy_bytes(_with_value(member(trained, key), value))})
    refused_everywhere(trained, bad, tmp_path, f"{key} contains NaN or infinite values")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("meta/running", np.array([np.nan, 3.0, 4.0, 0.5])),
        ("meta/best_val_acc", np.array(np.inf)),
    ],
)
def test_non_finite_metadata_is_refused(trained: Trained, tmp_path: Path, key: str, value: np.ndarray) -> None:
    """Resuming from these would carry NaN into metrics.csv or make every later epoch 'not better'."""
    bad = variant(trained, tmp_path / "nan-meta.npz", {key: npy_bytes(value)})
    refused_everywhere(trained, bad, tmp_path, key)


@pytest.mark.parametrize(("mean", "std"), [(float("nan"), 0.3), (0.1, float("inf")), (0.1, 0.0)])
def test_non_finite_or_zero_normalisation_is_refused(trained: Trained, tmp_path: Path, mean: float, std: float) -> None:
    """eval and predict normalise with the stored mean/std: NaN or a zero std would give garbage silently."""
    data = json.loads(str(member(trained, "meta/data")))
    data.update(mean=mean, std=std)
    bad = variant(trained, tmp_path / "nan-data.npz", {"meta/data": npy_bytes(np.array(json.dumps(data)))})
    refused_everywhere(trained, bad, tmp_path, "meta/data")


@pytest.mark.parametrize("names", [["a"], "ab", [1, 2], ["", "b"], ["x" * 201, "b"]], ids=["few", "text", "numbers", "empty", "long"])
def test_bad_class_names_are_refused(trained: Trained, tmp_path: Path, names: object) -> None:
    """predict, eval, the pictures and serve print the stored names: they must be one short name per class."""
    data = json.loads(str(member(trained, "meta/data")))
    assert data["class_names"] == [str(label) for label in data["classes"]]
    data["class_names"] = names
    bad = variant(trained, tmp_path / "bad-names.npz", {"meta/data": npy_bytes(np.array(json.dumps(data)))})
    refused_everywhere(trained, bad, tmp_path, "meta/data", "class_names must list")


def test_a_checkpoint_without_class_names_still_loads(trained: Trained, tmp_path: Path) -> None:
    """Checkpoints written before names were kept: the original labels stand in for them."""
    data = json.loads(str(member(trained, "meta/data")))
    del data["class_names"]
    old = variant(trained, tmp_path / "old.npz", {"meta/data": npy_bytes(np.array(json.dumps(data)))})
    ckpt, model = load_checkpoint(old)
    assert class_names(ckpt, model.loss.num_classes) == [str(label) for label in data["classes"]]


def test_nan_checkpoint_refused_by_a_real_process_under_python_O(trained: Trained, tmp_path: Path) -> None:
    bad = variant(trained, tmp_path / "nan.npz", {"conv1.weight": npy_bytes(_with_value(member(trained, "conv1.weight"), np.nan))})
    outcome = run_cli(["predict", trained.image, "--checkpoint", bad], optimize=True)
    error_line(outcome, EXIT_BAD_INPUT, str(bad), "conv1.weight contains NaN or infinite values")


# ---------------------------------------------------------------- case 5: truncated / not a zip


def _member_data_offset(path: Path, name: str) -> int:
    """Where a stored member's bytes start inside the zip file."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(name)
    with path.open("rb") as handle:
        handle.seek(info.header_offset)
        header = handle.read(30)
    name_length, extra_length = struct.unpack("<HH", header[26:30])
    return info.header_offset + 30 + name_length + extra_length


def _broken_files(trained: Trained, folder: Path) -> dict[str, tuple[Path, str]]:
    raw = trained.checkpoint.read_bytes()
    cases: dict[str, tuple[bytes, str]] = {
        "truncated to half": (raw[: len(raw) // 2], "not a valid checkpoint (not an .npz archive, or truncated)"),
        "last bytes cut": (raw[:-7], "not a valid checkpoint (not an .npz archive, or truncated)"),
        "only the first member header": (raw[:40], "not a valid checkpoint"),
        "text file": (b"these are not the weights you are looking for\n", "not a valid checkpoint"),
        "empty file": (b"", "not a valid checkpoint"),
    }
    paths = {}
    for name, (data, expected) in cases.items():
        path = folder / (name.replace(" ", "-") + ".npz")
        path.write_bytes(data)
        paths[name] = (path, expected)

    corrupted = folder / "bit-flip.npz"
    shutil.copyfile(trained.checkpoint, corrupted)
    data = bytearray(corrupted.read_bytes())
    data[_member_data_offset(corrupted, "fc1.weight.npy") + 1000] ^= 0xFF
    corrupted.write_bytes(bytes(data))
    paths["bit flip inside a member"] = (corrupted, "key 'fc1.weight' is corrupt or truncated")

    foreign = folder / "foreign.npz"
    with zipfile.ZipFile(foreign, "w") as archive:
        archive.writestr("README.txt", "a zip, but not a checkpoint")
    paths["zip that is not an npz"] = (foreign, "unexpected member 'README.txt'; not a cnn checkpoint")

    plain = folder / "plain.npz"
    np.savez(plain, weights=np.zeros(3))
    paths["npz that is not a cnn checkpoint"] = (plain, "not a cnn checkpoint of format 1")
    paths["folder"] = (folder / "a-folder.npz", "not a file")
    (folder / "a-folder.npz").mkdir()
    return paths


BROKEN_FILE_CASES = [
    "truncated to half",
    "last bytes cut",
    "only the first member header",
    "text file",
    "empty file",
    "bit flip inside a member",
    "zip that is not an npz",
    "npz that is not a cnn checkpoint",
    "folder",
]


@pytest.mark.parametrize("case", BROKEN_FILE_CASES)
def test_broken_file_gives_a_clean_error(trained: Trained, tmp_path: Path, case: str) -> None:
    bad, expected = _broken_files(trained, tmp_path)[case]
    # A folder where last.npz should be is "no checkpoint to resume from" (tested below), not "not a file".
    refused_everywhere(trained, bad, tmp_path, expected, resume=case != "folder")


def test_missing_checkpoint_gives_a_clean_error(trained: Trained, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.npz"
    for args in (["eval", missing], ["predict", trained.image, "--checkpoint", missing]):
        error_line(invoke_cli(args), EXIT_BAD_INPUT, f"{missing}: checkpoint not found")
    run = resume_folder(trained, missing, tmp_path / "run")
    error_line(invoke_cli(["train", "--resume", run.root]), EXIT_BAD_INPUT, f"{run.last}: no checkpoint to resume from")
    run.last.mkdir()
    error_line(invoke_cli(["train", "--resume", run.root]), EXIT_BAD_INPUT, f"{run.last}: no checkpoint to resume from")


@pytest.mark.parametrize("optimize", [False, True], ids=["python", "python -O"])
def test_truncated_checkpoint_refused_by_a_real_resume(trained: Trained, tmp_path: Path, optimize: bool) -> None:
    bad, expected = _broken_files(trained, tmp_path)["truncated to half"]
    run = resume_folder(trained, bad, tmp_path / "run")
    before = snapshot(run.root)
    outcome = run_cli(["train", "--resume", run.root], optimize=optimize)
    error_line(outcome, EXIT_BAD_INPUT, f"{run.last}: ", expected)
    assert snapshot(run.root) == before


# ---------------------------------------------------------------- case 6: size bombs


def declare_size(path: Path, name: str, size: int) -> None:
    """Patch the zip so that member ``name`` declares ``size`` uncompressed bytes (its data stays small)."""
    data = bytearray(path.read_bytes())
    end = data.rindex(b"PK\x05\x06")
    (entries,) = struct.unpack("<H", data[end + 10 : end + 12])
    (offset,) = struct.unpack("<I", data[end + 16 : end + 20])
    for _ in range(entries):
        assert data[offset : offset + 4] == b"PK\x01\x02"
        name_length, extra_length, comment_length = struct.unpack("<HHH", data[offset + 28 : offset + 34])
        (local_offset,) = struct.unpack("<I", data[offset + 42 : offset + 46])
        if data[offset + 46 : offset + 46 + name_length].decode() == name:
            data[offset + 24 : offset + 28] = struct.pack("<I", size)  # central directory entry
            data[local_offset + 22 : local_offset + 26] = struct.pack("<I", size)  # local header
            path.write_bytes(bytes(data))
            return
        offset += 46 + name_length + extra_length + comment_length
    raise KeyError(name)


@pytest.fixture
def opened_members(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the zip members anything decompresses during the test."""
    opened: list[str] = []
    original = zipfile.ZipFile.open

    def spy(self, name, *args, **kwargs):
        opened.append(name.filename if isinstance(name, zipfile.ZipInfo) else name)
        return original(self, name, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", spy)
    return opened


HUGE = 3_000_000_000  # 3 GB declared, a few KB stored


@pytest.mark.parametrize("name", ["conv1.weight.npy", "optimizer/fc1.weight.m.npy"])
def test_member_declaring_a_huge_size_is_refused_before_decompression(
    trained: Trained, tmp_path: Path, opened_members: list[str], name: str
) -> None:
    bad = tmp_path / "declares-huge.npz"
    shutil.copyfile(trained.checkpoint, bad)
    declare_size(bad, name, HUGE)
    with zipfile.ZipFile(bad) as archive:
        assert archive.getinfo(name).file_size == HUGE
    opened_members.clear()
    message = refused_everywhere(trained, bad, tmp_path, "refusing to decompress it")
    assert "3,0" in message, message
    assert name not in opened_members


@pytest.mark.parametrize("name", ["meta/config.npy", "meta/format_version.npy"])
def test_metadata_declaring_a_huge_size_is_refused_before_decompression(
    trained: Trained, tmp_path: Path, opened_members: list[str], name: str
) -> None:
    bad = tmp_path / "declares-huge.npz"
    shutil.copyfile(trained.checkpoint, bad)
    declare_size(bad, name, HUGE)
    opened_members.clear()
    refused_everywhere(trained, bad, tmp_path, f"member '{name.removesuffix('.npy')}' declares 3,000,000,000 bytes")
    assert name not in opened_members


def _deflated_zeros_member(archive: zipfile.ZipFile, name: str, megabytes: int) -> None:
    info = zipfile.ZipInfo(name)
    info.compress_type = zipfile.ZIP_DEFLATED
    header = {"descr": "<f4", "fortran_order": False, "shape": (megabytes * 2**18,)}
    zeros = bytes(2**20)
    with archive.open(info, "w") as handle:
        np.lib.format.write_array_header_1_0(handle, header)
        for _ in range(megabytes):
            handle.write(zeros)


def bomb_checkpoint(trained: Trained, path: Path, megabytes: int = 32) -> Path:
    """The trained checkpoint with one optimizer array replaced by ``megabytes`` MiB of deflated zeros."""
    replaced = "optimizer/fc1.weight.m.npy"
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in trained.members.items():
            if name != replaced:
                archive.writestr(name, data)
        _deflated_zeros_member(archive, replaced, megabytes)
    return path


def test_compressed_bomb_far_larger_than_its_config_is_refused_before_decompression(
    trained: Trained, tmp_path: Path, opened_members: list[str]
) -> None:
    bad = bomb_checkpoint(trained, tmp_path / "bomb.npz")
    assert bad.stat().st_size < 2**20, "the bomb is small on disk"
    opened_members.clear()
    message = refused_everywhere(trained, bad, tmp_path, "far more than", "its config implies", "refusing to decompress")
    assert "declares 33,6" in message, message  # 32 MiB of zeros plus the real members
    assert "optimizer/fc1.weight.m.npy" not in opened_members


def test_file_far_larger_on_disk_than_its_config_is_refused(trained: Trained, tmp_path: Path) -> None:
    padding = npy_bytes(np.zeros(2**20, np.float32))  # 4 MiB, stored uncompressed
    bad = variant(trained, tmp_path / "fat.npz", {"optimizer/conv1.weight.m": padding})
    assert bad.stat().st_size > 4 * 2**20
    refused_everywhere(trained, bad, tmp_path, "far more than", "refusing to decompress")


def test_bomb_refused_by_a_real_process_under_python_O(trained: Trained, tmp_path: Path) -> None:
    bad = bomb_checkpoint(trained, tmp_path / "bomb.npz")
    outcome = run_cli(["eval", bad], optimize=True, timeout=30)
    error_line(outcome, EXIT_BAD_INPUT, str(bad), "refusing to decompress it")


# ---------------------------------------------------------------- case 7: config vs weights


def _with_stored_config(trained: Trained, path: Path, edit) -> Path:
    config = json.loads(str(member(trained, "meta/config")))
    edit(config)
    return variant(trained, path, {"meta/config": npy_bytes(np.array(json.dumps(config)))})


def _wider_first_conv(config: dict) -> None:
    config["model"]["layers"][0]["out_channels"] = 6


def _extra_dense_layer(config: dict) -> None:
    config["model"]["layers"] += [{"type": "relu"}, {"type": "dense", "out_features": 10}]


def _float64(config: dict) -> None:
    config["train"]["dtype"] = "float64"


def _no_second_conv(config: dict) -> None:
    del config["model"]["layers"][3:5]


def _invalid(config: dict) -> None:
    config["train"]["epochz"] = 3


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (_wider_first_conv, "conv1.weight has shape (4, 1, 3, 3), but the stored config's model needs (6, 1, 3, 3)"),
        (_extra_dense_layer, "missing key 'fc2.bias' (and 1 more)"),
        (_float64, "has dtype float32, expected float64"),
        (_no_second_conv, "unexpected key 'conv2."),
        (_invalid, "stored config is invalid"),
    ],
    ids=["wider conv", "extra layer", "dtype", "missing layer", "invalid config"],
)
def test_stored_config_that_disagrees_with_the_weights_is_refused(trained: Trained, tmp_path: Path, edit, expected: str) -> None:
    bad = _with_stored_config(trained, tmp_path / "disagrees.npz", edit)
    refused_everywhere(trained, bad, tmp_path, expected)


def test_resume_refuses_a_run_whose_config_file_was_edited(trained: Trained, tmp_path: Path) -> None:
    run = resume_folder(trained, trained.checkpoint, tmp_path / "run")
    edited = config_to_yaml(trained.config).replace("lr: 0.01", "lr: 0.5")
    assert edited != run.config.read_text()
    run.config.write_text(edited)
    before = snapshot(run.root)
    outcome = invoke_cli(["train", "--resume", run.root])
    error_line(outcome, EXIT_BAD_INPUT, str(run.last), f"its config differs from {run.config}; refusing to resume")
    assert snapshot(run.root) == before
    load_checkpoint(run.last)  # still intact

"""Every foreign file through one bounded reader (issue 23, category 3), tried with real ``cnn`` processes.

A run record, checkpoint, config or image may be a FIFO (an ordinary open waits for a writer
forever), a link to an endless device (an ordinary read eats all memory), or hostile content.
Each child runs with a deadline and a 1 GiB address-space cap (``run_cli_bounded``), so a hang
or a blow-up fails the test instead of the machine.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests.support.cli import (
    EXIT_BAD_INPUT,
    Outcome,
    error_line,
    npy_array,
    npy_bytes,
    npz_members,
    run_cli,
    run_cli_bounded,
    write_config,
    write_npz_members,
)
from tests.support.synthetic import make_idx_dataset, tiny_config

DEADLINE = 20  # s; each command takes about a second, a hang is killed here


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """One finished run, trained by a real ``cnn train``."""
    folder = tmp_path_factory.mktemp("bounded")
    config = write_config(folder / "tiny.yaml", tiny_config(make_idx_dataset(folder / "idx", n_train=300, n_test=100), epochs=1))
    outcome = run_cli(["train", "--config", config, "--run-dir", folder / "run"], timeout=60)
    assert outcome.code == 0, outcome.output
    return folder / "run"


def copy_run(run: Path, where: Path) -> Path:
    shutil.copytree(run, where, symlinks=True)
    return where


def replace_with(path: Path, kind: str) -> None:
    """Put a FIFO, or a link to an endless device, where the file ``path`` was."""
    path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to(f"/dev/{kind}")


def clean(outcome: Outcome) -> None:
    assert "Traceback" not in outcome.output and "MemoryError" not in outcome.output, outcome.output


def test_a_record_that_is_a_fifo_or_an_endless_device_never_hangs_compare_eval_or_resume(run: Path, tmp_path: Path) -> None:
    bad = copy_run(run, tmp_path / "bad")
    for name, kind in (("run.json", "fifo"), ("summary.json", "zero"), ("metrics.csv", "urandom")):
        replace_with(bad / name, kind)
    compared = run_cli_bounded(["compare", run, bad, "--out", tmp_path / "compare.png"], timeout=DEADLINE)
    clean(compared)
    assert compared.code == 0, compared.output
    for name, kind in (("run.json", "FIFO"), ("summary.json", "character device"), ("metrics.csv", "character device")):
        assert f"{bad.name}: {name} unreadable (not a regular file (it is a {kind}" in compared.output
    evaluated = run_cli_bounded(["eval", bad], timeout=DEADLINE)
    clean(evaluated)
    assert evaluated.code == 0, evaluated.output
    resumed = run_cli_bounded(["train", "--resume", bad], timeout=DEADLINE)  # finished: the records are rewritten
    clean(resumed)
    assert resumed.code == 0, resumed.output
    assert json.loads((bad / "run.json").read_text())["status"] == "completed"


def test_a_checkpoint_config_or_image_that_is_not_a_regular_file_is_one_line(run: Path, tmp_path: Path) -> None:
    bad = copy_run(run, tmp_path / "bad")
    replace_with(bad / "checkpoints" / "best.npz", "fifo")
    outcome = run_cli_bounded(["eval", bad / "checkpoints" / "best.npz"], timeout=DEADLINE)
    error_line(outcome, EXIT_BAD_INPUT, "best.npz: not a regular file", "the checkpoint must be a regular file")
    replace_with(bad / "checkpoints" / "last.npz", "zero")
    outcome = run_cli_bounded(["train", "--resume", bad], timeout=DEADLINE)
    error_line(outcome, EXIT_BAD_INPUT, "last.npz")
    image = tmp_path / "digit.png"
    os.mkfifo(image)
    outcome = run_cli_bounded(["predict", image, "--checkpoint", run / "checkpoints" / "best.npz"], timeout=DEADLINE)
    clean(outcome)
    assert outcome.code != 0 and f"error: {image}: not a regular file" in outcome.stderr, outcome.output


def test_a_config_given_as_a_fifo_is_one_line(tmp_path: Path) -> None:
    fifo = tmp_path / "config.yaml"
    os.mkfifo(fifo)
    error_line(run_cli_bounded(["train", "--config", fifo], timeout=DEADLINE), EXIT_BAD_INPUT, str(fifo), "not a regular file")


def test_an_empty_config_and_dev_null_follow_one_rule(tmp_path: Path) -> None:
    """Neither trains the defaults: an empty file is refused for having no keys, /dev/null for being no file."""
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing here yet\n")
    error_line(run_cli(["train", "--config", empty]), EXIT_BAD_INPUT, str(empty), "the config is empty")
    error_line(run_cli(["train", "--config", os.devnull]), EXIT_BAD_INPUT, os.devnull, "not a regular file")
    assert not (tmp_path / "runs").exists()


def test_a_small_checkpoint_declaring_a_huge_layer_is_refused_before_anything_is_built(run: Path, tmp_path: Path) -> None:
    """119 KB on disk, a stored config with a 300,000-unit dense layer: refused from the sizes, under a 1 GiB cap."""
    members = npz_members(run / "checkpoints" / "best.npz")
    config = json.loads(str(npy_array(members["meta/config.npy"])))
    config["model"]["layers"][-1:-1] = [{"type": "dense", "name": "huge", "out_features": 300_000}, {"type": "relu"}]
    members["meta/config.npy"] = npy_bytes(np.array(json.dumps(config)))
    members["padding.npy"] = b"\0" * (119_000 - sum(map(len, members.values())))  # the size, in a member never read
    bad = write_npz_members(tmp_path / "huge.npz", members)
    assert 110_000 < bad.stat().st_size < 130_000
    outcome = run_cli_bounded(["eval", bad], timeout=DEADLINE, memory_bytes=1 << 30)
    error_line(outcome, EXIT_BAD_INPUT, str(bad), "declares 483,601,384 bytes of parameters", "refusing to build the model")


@pytest.mark.parametrize("key", ["config", "data"])
def test_checkpoint_metadata_nested_100000_deep_is_one_line(run: Path, tmp_path: Path, key: str) -> None:
    members = npz_members(run / "checkpoints" / "best.npz")
    members[f"meta/{key}.npy"] = npy_bytes(np.array("[" * 100_000 + "]" * 100_000))
    bad = write_npz_members(tmp_path / "deep.npz", members)
    outcome = run_cli_bounded(["eval", bad], timeout=DEADLINE)
    error_line(outcome, EXIT_BAD_INPUT, f"{bad}: meta/{key}: JSON nested 100,000 levels deep")


def test_a_run_config_that_is_not_utf8_is_one_line_on_resume(run: Path, tmp_path: Path) -> None:
    bad = copy_run(run, tmp_path / "latin1")
    (bad / "config.yaml").write_bytes((bad / "config.yaml").read_bytes().replace(b"name: tiny", b"name: t\xe9l\xe9"))
    outcome = run_cli_bounded(["train", "--resume", bad], timeout=DEADLINE)
    error_line(outcome, EXIT_BAD_INPUT, str(bad / "config.yaml"), "not UTF-8 text")


def test_a_checkpoint_whose_members_claim_sizes_they_cannot_hold_is_refused_before_anything_is_built(run: Path, tmp_path: Path) -> None:
    """The same huge layer, its weight member deflated and its size field in the zip's directory raised to 1.2 GB:
    what 1 KB of deflated bytes can hold (1032 times that at most) is what counts, not what the header claims."""
    members = npz_members(run / "checkpoints" / "best.npz")
    config = json.loads(str(npy_array(members["meta/config.npy"])))
    config["model"]["layers"][-1:-1] = [{"type": "dense", "name": "huge", "out_features": 300_000}, {"type": "relu"}]
    members["meta/config.npy"] = npy_bytes(np.array(json.dumps(config)))
    members["huge.weight.npy"] = npy_bytes(np.zeros(1000, np.float32))
    bad = write_npz_members(tmp_path / "liar.npz", members, compression=zipfile.ZIP_DEFLATED)
    data = bytearray(bad.read_bytes())
    entry = data.index(b"PK\x01\x02")  # the central directory's first entry
    claimed = 1_200_000_000  # above the 483 MB the layer needs, below the 3x a checkpoint may declare
    for _ in range(len(members)):  # walk the central directory to the huge weight's entry
        name_length, extra_length, comment_length = struct.unpack("<HHH", data[entry + 28 : entry + 34])
        if data[entry + 46 : entry + 46 + name_length] == b"huge.weight.npy":
            data[entry + 24 : entry + 28] = struct.pack("<I", claimed)
            break
        entry += 46 + name_length + extra_length + comment_length
    bad.write_bytes(bytes(data))
    assert zipfile.ZipFile(bad).getinfo("huge.weight.npy").file_size == claimed
    outcome = run_cli_bounded(["eval", bad], timeout=DEADLINE, memory_bytes=1 << 30)
    error_line(outcome, EXIT_BAD_INPUT, str(bad), "bytes of parameters", "refusing to build the model")

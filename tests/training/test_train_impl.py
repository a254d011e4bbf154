"""``cnn train --impl FILE``: the learner's own layer functions train the real network, checked against cnn's.

The learner file is tests/training/learner_files/my_layers.py (correct); the wrong ones are
made from it by replacing one marked line: the max-pool gradient given to every tied
maximum, and ``=`` instead of ``+=`` in the convolution's col2im.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from cnn_cli.config.build import config_from_dict
from cnn_cli.config.load import load_config
from cnn_cli.errors import CnnError
from cnn_cli.runs.checkpoint import load_checkpoint
from cnn_cli.training.learner_run import LearnerOptions
from cnn_cli.training.train import train
from tests.support import REPO_ROOT
from tests.support.cli import cli_command, cli_environment, invoke_cli, write_config
from tests.support.synthetic import make_idx_dataset, tiny_config

MY_LAYERS = Path(__file__).parent / "learner_files" / "my_layers.py"
FIRST_MAX_ONLY = "winner = np.arange(windows.shape[-1]) == windows.argmax(axis=-1)[..., None]  # the first maximum only"
EVERY_TIED_MAX = "winner = windows == windows.max(axis=-1, keepdims=True)"
COL2IM_ADD = "dx_pad[:, :, rows, cols] += np.einsum"
COL2IM_ASSIGN = "dx_pad[:, :, rows, cols] = np.einsum"


@pytest.fixture(scope="module")
def idx_paths(tmp_path_factory) -> dict[str, str]:
    return make_idx_dataset(tmp_path_factory.mktemp("idx"))


class Log(list):
    def __call__(self, line: str) -> None:
        self.append(line)


def learner_file(tmp_path: Path, name: str = "my_layers.py", old: str = "", new: str = "", extra: str = "") -> Path:
    """my_layers.py, with ``old`` replaced by ``new`` (exactly once) and ``extra`` appended."""
    text = MY_LAYERS.read_text(encoding="utf-8")
    if old:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    path = tmp_path / name
    path.write_text(text + extra, encoding="utf-8")
    return path


STEPS = 10  # pool_config's epoch on MNIST: 640 images in batches of 64


def pool_config(paths: dict[str, str] | Path) -> dict:
    """conv -> relu -> maxpool -> conv (3x3, stride 2: windows overlap) -> relu -> flatten -> dense.

    On the synthetic bars (``paths``), or on 640 real MNIST images (a data folder): their
    background is one constant, so a convolution gives equal values across it, and a
    max-pool window there holds tied maxima.
    """
    config = tiny_config(paths if isinstance(paths, dict) else {}, epochs=1)
    if isinstance(paths, Path):
        config["data"] = {"data_dir": str(paths), "limit": 640, "val_size": 1000}
        config["optimizer"], config["schedule"] = {"name": "adam", "lr": 0.003}, {"name": "constant"}
        config["train"]["batch_size"] = 64
    config["name"] = "pool"
    config["model"]["layers"] = [
        {"type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1},
        {"type": "relu"},
        {"type": "maxpool2d", "kernel_size": 2},
        {"type": "conv2d", "out_channels": 8, "kernel_size": 3, "stride": 2, "padding": 1},
        {"type": "relu"},
        {"type": "flatten"},
        {"type": "dense", "out_features": 10},
    ]
    return config


def impl_run(config: dict, root: Path, file: Path, log: Log | None = None, **kwargs):
    options = LearnerOptions(file, **{k: kwargs.pop(k) for k in ("check_steps", "reference", "deadline") if k in kwargs})
    return train(config_from_dict(config), run_dir=root, log=log if log is not None else Log(), learner=options, **kwargs)


def check_record(run_root: Path) -> dict:
    return json.loads((run_root / "learner-check.json").read_text())["checks"][-1]


# ---------------------------------------------------------------- the real network: smoke on MNIST


def smoke_config(data_dir: Path, *overrides: str):
    # 3,200 training images (data.limit) in batches of 64: one epoch is exactly the 50 checked steps.
    return load_config("smoke", [f"data.data_dir={data_dir}", "data.limit=3200", "train.log_gradients=false", *overrides])


@pytest.mark.slow
def test_a_correct_file_trains_smoke_to_cnns_weights(mnist_data_dir, tmp_path):
    reference = train(smoke_config(mnist_data_dir), run_dir=tmp_path / "cnn", log=Log())
    log = Log()
    mine = train(smoke_config(mnist_data_dir), run_dir=tmp_path / "mine", log=log, learner=LearnerOptions(MY_LAYERS))
    assert reference.status == mine.status == "completed"
    assert any(line.startswith("learner code my_layers.py (sha256 ") and "conv1, conv2 (conv2d)" in line for line in log), log
    weights = check_record(mine.run.root)["weights"]
    assert weights["steps"] == 50 and weights["first_divergence"] is None
    assert max(weights["max_difference"].values()) < 1e-6, weights
    assert any("every weight within 1e-06 of cnn's after 50 steps" in line for line in log), log
    accuracy = next(line for line in log if line.startswith("test accuracy") and "with your code" in line)
    assert f"{reference.summary['test_accuracy']:.4f} with cnn's ({reference.run.root}, same config and seed)" in accuracy


@pytest.mark.slow
def test_in_float64_the_learner_run_and_cnns_end_within_1e6(mnist_data_dir, tmp_path):
    """The same, measured from outside: the two runs' own checkpoints after 50 steps (float64, so rounding stays ~1e-14)."""
    config = smoke_config(mnist_data_dir, "train.dtype=float64")
    reference = train(config, run_dir=tmp_path / "cnn", log=Log(), stop_after_steps=50)  # no final test: faster
    mine = train(config, run_dir=tmp_path / "mine", log=Log(), learner=LearnerOptions(MY_LAYERS, check_steps=0), stop_after_steps=50)
    ours, theirs = (load_checkpoint(run.run.root / "checkpoints" / "last.npz")[0] for run in (mine, reference))
    assert ours.step == theirs.step == 50
    for name in theirs.params:
        assert np.max(np.abs(ours.params[name] - theirs.params[name])) < 1e-6, name


# ---------------------------------------------------------------- wrong files: where they diverge


@pytest.mark.parametrize(
    ("old", "new", "function"),
    [
        (FIRST_MAX_ONLY, EVERY_TIED_MAX, "maxpool2d_backward (layer maxpool2d1)"),
        (COL2IM_ADD, COL2IM_ASSIGN, "conv2d_backward (layer conv2)"),
    ],
    ids=["maxpool-gradient-to-every-tie", "col2im-assigns"],
)
def test_a_subtly_wrong_file_diverges_and_the_report_says_where(mnist_data_dir, tmp_path, old, new, function):
    log = Log()
    wrong = learner_file(tmp_path, old=old, new=new)
    result = impl_run(pool_config(mnist_data_dir), tmp_path / "run", wrong, log, stop_after_steps=STEPS)  # no final test: faster
    assert result.status == "interrupted"  # it would train on (wrongly): only the check can tell
    weights = check_record(result.run.root)["weights"]
    first = weights["first_divergence"]
    assert first["step"] == 1 and first["tensor"] == "conv1.weight" and first["difference"] > 1e-3, weights
    assert max(weights["max_difference"].values()) > 1e-3
    assert "  first divergence: step 1, conv1.weight (" in "\n".join(log)
    suspects = [line for line in log if line.startswith("    ") and "differs from cnn's" in line]
    assert suspects and suspects[0].strip().startswith(f"{function}: dx differs from cnn's"), log
    assert any(line.startswith("note: after step 1 your model's conv1.weight") for line in log)


def test_the_correct_file_on_the_same_network_does_not_diverge(mnist_data_dir, tmp_path):
    log = Log()
    result = impl_run(pool_config(mnist_data_dir), tmp_path / "run", MY_LAYERS, log, stop_after_steps=STEPS)
    weights = check_record(result.run.root)["weights"]
    assert weights["steps"] == STEPS and weights["first_divergence"] is None and weights["repeated_in_float64"]
    assert max(weights["max_difference"].values()) < 1e-9


# ---------------------------------------------------------------- records: run.json, eval, compare, resume


def test_the_run_records_the_file_and_eval_and_compare_show_it(idx_paths, tmp_path):
    cnn_run = train(config_from_dict(tiny_config(idx_paths, epochs=1)), run_dir=tmp_path / "cnn", log=Log())
    log = Log()
    mine = impl_run(tiny_config(idx_paths, epochs=1), tmp_path / "mine", MY_LAYERS, log, check_steps=5)
    digest = hashlib.sha256(MY_LAYERS.read_bytes()).hexdigest()
    record = json.loads((mine.run.root / "run.json").read_text())["learner_code"]
    assert record["file"] == "my_layers.py" and record["sha256"] == digest and record["given"] == str(MY_LAYERS)
    assert (mine.run.root / record["copy"]).read_bytes() == MY_LAYERS.read_bytes()
    assert record["layers"]["dropout1"] == "dropout" and record["layers"]["loss"] == "softmax_cross_entropy"
    assert any(f"with cnn's ({cnn_run.run.root}, same config and seed)" in line for line in log), log
    named = Log()
    impl_run(tiny_config(idx_paths, epochs=1), tmp_path / "named", MY_LAYERS, named, check_steps=0, reference=cnn_run.run.root)
    assert named[-1].endswith(f"with cnn's ({cnn_run.run.root})"), named

    shown = invoke_cli(["eval", mine.run.root], timeout=60)
    assert shown.code == 0, shown.output
    assert f"trained with learner code my_layers.py (sha256 {digest[:8]})" in shown.stdout
    as_json = json.loads(invoke_cli(["eval", mine.run.root, "--json"], timeout=60).stdout)
    assert as_json["learner_code"] == {"file": "my_layers.py", "sha256": digest}
    assert "learner_code" not in json.loads(invoke_cli(["eval", cnn_run.run.root, "--json"], timeout=60).stdout)

    compared = invoke_cli(["compare", mine.run.root, cnn_run.run.root, "--no-plot"])
    assert compared.code == 0, compared.output
    rows = compared.stdout.splitlines()
    assert rows[0].split()[:3] == ["run", "status", "code"]
    assert f"my_layers.py@{digest[:8]}" in rows[2] and rows[3].split()[2] == "cnn"


def test_resume_needs_the_same_file(idx_paths, tmp_path):
    config = tiny_config(idx_paths, epochs=2)
    full = impl_run(config, tmp_path / "full", MY_LAYERS, check_steps=0)
    cut = impl_run(config, tmp_path / "cut", MY_LAYERS, check_steps=0, stop_after_steps=7)
    assert cut.status == "interrupted" and f"--resume {cut.run.root} --impl {MY_LAYERS}" in cut.message
    before = [(cut.run.root / name).read_bytes() for name in ("checkpoints/last.npz", "config.yaml", "run.json")]

    edited = learner_file(tmp_path, extra="\n# one more line\n")
    longer = config_from_dict(tiny_config(idx_paths, epochs=3))  # an extension would rewrite config.yaml: not when refused
    with pytest.raises(CnnError, match=r"my_layers.py \(sha256 [0-9a-f]{8}\), but .* trained with my_layers.py \(sha256"):
        train(longer, resume=cut.run.root, log=Log(), learner=LearnerOptions(edited))
    with pytest.raises(CnnError, match="trained with learner code my_layers.py .*resume with --impl"):
        train(None, resume=cut.run.root, log=Log())
    assert [(cut.run.root / name).read_bytes() for name in ("checkpoints/last.npz", "config.yaml", "run.json")] == before

    resumed = train(None, resume=cut.run.root, log=Log(), learner=LearnerOptions(MY_LAYERS, check_steps=0))
    assert resumed.status == "completed"
    ours, theirs = (load_checkpoint(run.run.root / "checkpoints" / "last.npz")[0] for run in (resumed, full))
    for name in theirs.params:  # dropout masks included: the resumed run is the uninterrupted one, bit for bit
        np.testing.assert_array_equal(ours.params[name], theirs.params[name], err_msg=name)


def test_a_cnn_run_is_not_resumed_with_learner_code(idx_paths, tmp_path):
    cut = train(config_from_dict(tiny_config(idx_paths, epochs=2)), run_dir=tmp_path / "cut", log=Log(), stop_after_steps=3)
    with pytest.raises(CnnError, match="trained with cnn's own code; resume it without --impl"):
        train(None, resume=cut.run.root, log=Log(), learner=LearnerOptions(MY_LAYERS))


# ---------------------------------------------------------------- the learner's code going wrong


RAISES_ON_A_REAL_BATCH = """

def relu_backward(grad_out, cache):  # noqa: F811 - the learner's second try
    if grad_out.shape[0] == 32:
        return grad_out[:, :3] * (cache > 0)
    return grad_out * (cache > 0)
"""


def test_an_exception_in_learner_code_is_one_line_and_the_learners_traceback(idx_paths, tmp_path):
    path = learner_file(tmp_path, "broken.py", extra=RAISES_ON_A_REAL_BATCH)
    config = write_config(tmp_path / "tiny.yaml", tiny_config(idx_paths, epochs=1))
    outcome = invoke_cli(["train", "--config", config, "--impl", path, "--run-dir", tmp_path / "run", "-q"], timeout=60)
    assert outcome.code == 1, outcome.output
    assert "Traceback" not in outcome.output
    lines = outcome.stderr.splitlines()
    assert lines[0].startswith("error: relu_backward (layer relu2) raised ValueError: operands could not be broadcast"), lines
    assert lines[1].startswith("  broken.py:") and lines[1].endswith("in relu_backward: return grad_out[:, :3] * (cache > 0)"), lines
    assert json.loads((tmp_path / "run" / "run.json").read_text())["status"] == "failed"


def test_a_file_that_fails_its_trial_call_is_refused_before_a_run_folder_exists(idx_paths, tmp_path):
    path = learner_file(tmp_path, "typo.py", old="return np.maximum(x, 0), x", new="return np.maximum(x, 0), x, x")
    with pytest.raises(CnnError, match=r"relu_forward \(layer relu1\) returned tuple; it must return a pair \(out, cache\)"):
        impl_run(tiny_config(idx_paths), tmp_path / "run", path)
    assert not (tmp_path / "run").exists()
    short = learner_file(tmp_path, "short.py", old="def conv2d_forward(x, w, b, stride=1, pad=0):", new="def conv2d_forward(x, w, b):")
    with pytest.raises(
        CnnError, match=r"conv2d_forward \(layer conv1\) does not fit: cnn calls it as \(\.\.\., \.\.\., \.\.\., stride=2, pad=1\)"
    ):
        impl_run(tiny_config(idx_paths), tmp_path / "run", short)


def test_an_exercise_skeleton_uses_what_is_written_and_leaves_the_rest_to_cnn(idx_paths, tmp_path):
    from cnn_cli.learn.exercises import skeleton_text

    skeleton = tmp_path / "conv_exercise.py"  # two exercises' skeletons in one file, as a learner may keep them
    skeleton.write_text(skeleton_text("conv2d") + "\n\n" + skeleton_text("relu"), encoding="utf-8")
    with pytest.raises(CnnError, match="every function this model uses is not written yet"):
        impl_run(pool_config(idx_paths), tmp_path / "none", skeleton)
    text = skeleton.read_text(encoding="utf-8")
    todo = '    # TODO\n    raise NotImplementedError("relu_backward: fill me in")\n    return dx\n'
    assert todo in text
    skeleton.write_text(text.replace(todo, "    return grad_out * (x > 0)\n"), encoding="utf-8")
    log = Log()
    result = impl_run(pool_config(idx_paths), tmp_path / "relu", skeleton, log, check_steps=5)
    assert result.status == "completed"
    assert log[1].startswith("learner code conv_exercise.py (sha256 ") and log[1].endswith(": relu1, relu2 (relu)"), log
    assert "  cnn's own code: conv1, maxpool2d1, conv2, flatten1, fc1, the loss" in log
    assert any(
        "conv2d_backward (layer conv1) is not written yet (raises NotImplementedError); its layers use cnn's" in line for line in log
    )
    assert check_record(result.run.root)["weights"]["first_divergence"] is None


SLOW_RELU = """

import time as _time


def relu_backward(grad_out, cache):  # noqa: F811
    if grad_out.shape[0] == 32 and grad_out.ndim == 4 and grad_out.shape[1] == 8:
        end = _time.monotonic() + 60
        while _time.monotonic() < end:  # a learner's loop that does not end in time
            pass
    return grad_out * (cache > 0)
"""


def test_a_step_past_the_deadline_stops_and_saves_the_run_naming_the_function(idx_paths, tmp_path):
    path = learner_file(tmp_path, "slow.py", extra=SLOW_RELU)
    began = time.monotonic()
    result = impl_run(tiny_config(idx_paths), tmp_path / "run", path, check_steps=0, deadline=1.0)
    assert time.monotonic() - began < 30
    assert result.status == "interrupted" and result.exit_code == 1, result
    assert (
        "interrupted (deadline) at step 0: step 1 ran past the 1 s deadline (--impl-deadline) while relu_backward (layer relu2) ran"
        in result.message
    )
    assert f"--impl {path}" in result.message
    ckpt, _ = load_checkpoint(result.run.root / "checkpoints" / "last.npz")
    assert ckpt.step == 0


SLEEPY_RELU = """

import pathlib as _pathlib
import time as _time


def relu_backward(grad_out, cache):  # noqa: F811
    if grad_out.shape[0] == 32 and grad_out.ndim == 4 and grad_out.shape[1] == 8:
        _pathlib.Path(__file__).with_suffix(".started").touch()
        _time.sleep(60)
    return grad_out * (cache > 0)
"""


def test_a_second_ctrl_c_stops_learner_code_at_once_and_saves(idx_paths, tmp_path):
    path = learner_file(tmp_path, "sleepy.py", extra=SLEEPY_RELU)
    config = write_config(tmp_path / "tiny.yaml", tiny_config(idx_paths, epochs=1))
    args = ["train", "--config", config, "--impl", path, "--run-dir", tmp_path / "run", "-q", "--impl-check-steps", "0"]
    child = subprocess.Popen(
        cli_command(args), cwd=REPO_ROOT, env=cli_environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while not path.with_suffix(".started").exists():
            assert child.poll() is None and time.monotonic() < deadline, child.communicate()
            time.sleep(0.05)
        child.send_signal(signal.SIGINT)
        time.sleep(0.5)
        child.send_signal(signal.SIGINT)
        stdout, stderr = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
    assert child.returncode == 130, (stdout, stderr)
    assert "Ctrl-C again to stop your code now" in stdout
    assert "relu_backward (layer relu2) is running" in stdout
    assert "interrupted at step 0: a second Ctrl-C came while relu_backward (layer relu2) ran; checkpoint saved" in stderr
    assert "Traceback" not in stdout + stderr
    assert json.loads((tmp_path / "run" / "run.json").read_text())["status"] == "interrupted"


# ---------------------------------------------------------------- the command line


def test_impl_options_need_impl_and_a_model_it_can_run(idx_paths, tmp_path):
    outcome = invoke_cli(["train", "--config", "smoke", "--impl-check-steps", "3"])
    assert outcome.code == 2 and outcome.stderr.strip() == "error: --impl-check-steps goes with --impl FILE"
    other = tmp_path / "other.py"
    other.write_text("def tanh_forward(x):\n    return x, x\n\n\ndef tanh_backward(g, c):\n    return g\n", encoding="utf-8")
    config = write_config(tmp_path / "tiny.yaml", tiny_config(idx_paths, epochs=1))
    outcome = invoke_cli(["train", "--config", config, "--impl", other, "--run-dir", tmp_path / "run"], timeout=60)
    assert outcome.code == 2 and "defines none of the functions this model uses (conv2d_forward/conv2d_backward," in outcome.stderr
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------- layer options become the learner's arguments


RECORDING_FILE = """
import json
import pathlib

from cnn_cli.nn import activations, conv, pool

CALLS = pathlib.Path(__file__).with_suffix(".calls")


def _record(name, **options):
    with CALLS.open("a") as handle:
        handle.write(json.dumps([name, options]) + "\\n")


def _pair(value):
    return value if isinstance(value, tuple) else (value, value)


def conv2d_forward(x, w, b, stride=1, pad=0, **more):
    _record("conv2d", stride=stride, pad=pad, **more)
    return conv.conv2d_forward(x, w, b, _pair(stride), _pair(pad), _pair(more.get("dilation", 1)), more.get("groups", 1))


def conv2d_backward(grad_out, cache):
    return conv.conv2d_backward(grad_out, cache)


def avgpool2d_forward(x, size=2, stride=2, pad=0):
    _record("avgpool2d", size=size, stride=stride, pad=pad)
    return pool.avgpool2d_forward(x, _pair(size), _pair(stride), _pair(pad))


def avgpool2d_backward(grad_out, cache):
    return pool.avgpool2d_backward(grad_out, cache)


def leaky_relu_forward(x, slope=0.01):
    _record("leaky_relu", slope=slope)
    out, positive = activations.leaky_relu_forward(x, slope)
    return out, (positive, slope)


def leaky_relu_backward(grad_out, cache):
    return activations.leaky_relu_backward(grad_out, *cache)
"""


def test_layer_options_become_the_learners_arguments(idx_paths, tmp_path):
    """cnn's own functions behind the table's signatures: the run is cnn's, exactly, and the options arrive as documented."""
    path = tmp_path / "recording.py"
    path.write_text(RECORDING_FILE, encoding="utf-8")
    config = tiny_config(idx_paths, epochs=1)
    config["model"]["layers"] = [
        {"type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 2, "dilation": 2, "bias": False},
        {"type": "leaky_relu", "negative_slope": 0.2},
        {"type": "conv2d", "out_channels": 4, "kernel_size": 3, "stride": 2, "padding": 1, "groups": 2},
        {"type": "avgpool2d", "kernel_size": 2, "padding": 1},
        {"type": "flatten"},
        {"type": "dense", "out_features": 10},
    ]
    log = Log()
    result = impl_run(config, tmp_path / "run", path, log, check_steps=5, stop_after_steps=5)
    assert log[1].endswith(": conv1, conv2 (conv2d); leaky_relu1 (leaky_relu); avgpool2d1 (avgpool2d)"), log
    weights = check_record(result.run.root)["weights"]
    assert weights["steps"] == 5 and set(weights["max_difference"].values()) == {0.0}, weights
    calls = {json.dumps(call) for call in map(json.loads, path.with_suffix(".calls").read_text().splitlines())}
    assert calls == {
        json.dumps(["conv2d", {"stride": 1, "pad": 2, "dilation": 2}]),
        json.dumps(["conv2d", {"stride": 2, "pad": 1, "groups": 2}]),
        json.dumps(["leaky_relu", {"slope": 0.2}]),
        json.dumps(["avgpool2d", {"size": 2, "stride": 2, "pad": 1}]),
    }


def test_every_layer_wrapper_replaces_what_the_shared_table_says():
    from cnn_cli.learn.learner_api import BY_NAME
    from cnn_cli.learn.learner_layers import LEARNER_LAYERS, LEARNER_LOSSES

    assert {cls.type_name: BY_NAME[cls.op].replaces for cls in LEARNER_LAYERS.values()} == {t: t for t in LEARNER_LAYERS}
    assert all(BY_NAME[name].replaces == name and not BY_NAME[name].backward for name in LEARNER_LOSSES)
    assert {f.replaces for f in BY_NAME.values() if f.replaces} == set(LEARNER_LAYERS) | set(LEARNER_LOSSES)

"""``cnn summary``'s layer table: window, receptive field, memory per image, and nested blocks with ``--depth``.

The receptive fields are checked against a hand computation with the recurrence
r_out = r_in + (k - 1)·d·j_in, j_out = j_in·s, from r = j = 1 at the input.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from cnn_cli.layers import Layer
from cnn_cli.model.network import Model, build_model
from cnn_cli.model.summary import summary_table
from cnn_cli.nn.shapes import ReceptiveField
from tests.support.cli import EXIT_BAD_INPUT, error_line, invoke_cli, write_config

# mnist.yaml by hand. conv1 3x3 p1: r = 1 + 2·1 = 3, j = 1. conv2 3x3 s2 p1: r = 3 + 2·1 = 5, j = 2.
# conv3 3x3: r = 5 + 2·2 = 9. conv4 3x3: r = 9 + 2·2 = 13. The flatten keeps each value's field (13),
# then conv5 (1x1 over the 6400 flattened values) sees the whole 10x10 map: r = 13 + (10 - 1)·2 = 31,
# wider than the 28-pixel image (the rest is conv1's and conv2's padding). conv6 sees what conv5 saw.
MNIST_FIELDS = {
    "conv1": (3, 1),
    "relu1": (3, 1),
    "conv2": (5, 2),
    "relu2": (5, 2),
    "conv3": (9, 2),
    "relu3": (9, 2),
    "conv4": (13, 2),
    "relu4": (13, 2),
    "flatten1": (13, None),
    "conv5": (31, None),
    "relu5": (31, None),
    "conv6": (31, None),
}

# lenet5.yaml by hand. C1 5x5 p2: r = 5, j = 1. S2 2x2 s2: r = 5 + 1·1 = 6, j = 2. C3 5x5: r = 6 + 4·2 = 14.
# S4 2x2 s2: r = 14 + 1·2 = 16, j = 4. fc1 sees the whole 5x5 map: r = 16 + (5 - 1)·4 = 32.
LENET5_FIELDS = {
    "conv1": (5, 1),
    "tanh1": (5, 1),
    "avgpool2d1": (6, 2),
    "conv2": (14, 2),
    "tanh2": (14, 2),
    "avgpool2d2": (16, 4),
    "flatten1": (16, None),
    "fc1": (32, None),
    "tanh3": (32, None),
    "fc2": (32, None),
    "tanh4": (32, None),
    "fc3": (32, None),
}


def table_rows(stdout: str) -> dict[str, list[str]]:
    """The printed table as {layer name: its cells}, split on runs of two or more spaces."""
    import re

    lines = stdout.splitlines()
    rules = [i for i, line in enumerate(lines) if line and set(line) == {"-"}]
    body = [*lines[rules[0] + 1 : rules[1]], lines[rules[1] + 1]]  # the input, the layers, the totals
    return {cells[0]: cells for cells in (re.split(r"\s{2,}", line.strip()) for line in body)}


def expected_cells(size: int, jump: int | None) -> tuple[str, str]:
    return f"{size}x{size}", "-" if jump is None else str(jump)


@pytest.mark.parametrize(("config", "fields"), [("mnist", MNIST_FIELDS), ("lenet5", LENET5_FIELDS)])
def test_receptive_fields_match_the_hand_computation(config: str, fields: dict[str, tuple[int, int | None]]) -> None:
    rows = build_model(config).summary()
    assert [row.name for row in rows] == list(fields)
    for row in rows:
        size, jump = fields[row.name]
        assert row.receptive_field is not None
        assert row.receptive_field.size == (size, size), row.name
        assert row.receptive_field.flat == (jump is None), row.name
        if jump is not None:
            assert row.receptive_field.jump == (jump, jump), row.name
    outcome = invoke_cli(["summary", "--config", config])
    assert outcome.code == 0, outcome.output
    printed = table_rows(outcome.stdout)
    for name, (size, jump) in fields.items():
        rf, shown_jump = expected_cells(size, jump)
        assert rf in printed[name] and printed[name][printed[name].index(rf) + 1] == shown_jump, printed[name]


@pytest.mark.parametrize(("config", "last", "unit"), [("mnist", "conv4", 5), ("lenet5", "avgpool2d2", 2)])
def test_the_receptive_field_is_where_one_units_gradient_lands(config: str, last: str, unit: int) -> None:
    """The recurrence against the network itself: backpropagate from one unit to the input (the linear
    layers only, float64, so no ReLU or tanh zeroes a pixel) and measure the rows and columns it reaches."""
    model = build_model(config, dtype="float64")
    names = [layer.name for layer in model.layers]
    linear = [layer for layer in model.layers[: names.index(last) + 1] if layer.type_name in ("conv2d", "avgpool2d")]
    out = np.random.default_rng(0).standard_normal((1, *model.input_shape))
    for layer in linear:
        out = layer.forward(out)
    grad = np.zeros_like(out)
    grad[0, 0, unit, unit] = 1.0  # a unit whose window lies inside the image
    for layer in reversed(linear):
        grad = layer.backward(grad)
    reached = np.abs(grad[0]).sum(axis=0) > 0
    rows, cols = np.flatnonzero(reached.any(axis=1)), np.flatnonzero(reached.any(axis=0))
    field = next(row.receptive_field for row in model.summary() if row.name == last)
    assert field is not None
    assert (rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1) == field.size
    assert 0 < rows[0] and rows[-1] < model.input_shape[1] - 1  # not clipped by the image edge


def test_the_mnist_table_reads_28_14_12_10_with_kernel_stride_padding_and_memory() -> None:
    outcome = invoke_cli(["summary", "--config", "mnist"])
    assert outcome.code == 0, outcome.output
    printed = table_rows(outcome.stdout)
    assert printed["input"][1:] == ["(1, 28, 28)", "1x1", "1", "3.1 KB"]  # 784 float32 values
    # kernel, stride, padding, output shape: the feature maps go 28 -> 28 -> 14 -> 12 -> 10
    assert printed["conv1"][2:6] == ["3x3", "1", "1", "(16, 28, 28)"]
    assert printed["conv2"][2:6] == ["3x3", "2", "1", "(32, 14, 14)"]
    assert printed["conv3"][2:6] == ["3x3", "1", "0", "(64, 12, 12)"]
    assert printed["conv4"][2:6] == ["3x3", "1", "0", "(64, 10, 10)"]
    # params, parameter memory (float32: 4 bytes each), activation memory per image, FLOPs
    assert printed["conv1"][-4:] == ["160", "640 B", "50.2 KB", "225,792"]  # 16·28·28·4 = 50,176 bytes
    assert printed["conv5"][-4:] == ["819,328", "3.3 MB", "512 B", "1,638,400"]
    assert printed["relu1"][-3:] == ["0", "50.2 KB", "0"]  # no parameters: no parameter memory
    assert printed["total"] == ["total", "880,842", "3.5 MB", "305.3 KB", "16,354,304"]
    assert "memory per image in float32" in outcome.stdout
    assert outcome.stdout.splitlines()[-1].startswith("forward FLOPs per image 16.4 M")


def test_memory_follows_the_dtype() -> None:
    outcome = invoke_cli(["summary", "--config", "mnist", "--set", "train.dtype=float64"])
    assert outcome.code == 0, outcome.output
    printed = table_rows(outcome.stdout)
    assert printed["conv1"][-4:-1] == ["160", "1.3 KB", "100.4 KB"]
    assert "memory per image in float64" in outcome.stdout


def test_dilation_groups_and_uneven_windows_are_shown(tmp_path) -> None:
    config = {
        "model": {
            "input_shape": [4, 20, 20],
            "layers": [
                {"type": "conv2d", "out_channels": 8, "kernel_size": [3, 5], "dilation": 2, "groups": 2, "stride": [2, 1]},
                {"type": "maxpool2d", "kernel_size": 2},
                {"type": "padding", "padding": 1},
                {"type": "flatten"},
                {"type": "dense", "out_features": 10},
            ],
        }
    }
    outcome = invoke_cli(["summary", "--config", write_config(tmp_path / "odd.yaml", config)])
    assert outcome.code == 0, outcome.output
    printed = table_rows(outcome.stdout)
    # r = 1 + (3-1)·2·1 = 5 high, 1 + (5-1)·2·1 = 9 wide; j = 2 high, 1 wide; output 8 x 8 x 12
    assert printed["conv1"][2:8] == ["3x5 d2 g2", "2x1", "0", "(8, 8, 12)", "5x9", "2x1"]
    # pooling 2x2 s2: r = 5 + 1·2 = 7 high, 9 + 1·1 = 10 wide; j = 4 high, 2 wide
    assert printed["maxpool2d1"][2:8] == ["2x2", "2", "0", "(8, 4, 6)", "7x10", "4x2"]
    assert printed["padding1"][2:6] == ["1", "(8, 6, 8)", "7x10", "4x2"]  # padding moves the window, not its size
    # the dense layer sees the padded 6x8 map: r = 7 + 5·4 = 27 high, 10 + 7·2 = 24 wide
    assert printed["fc1"][2:5] == ["(10,)", "27x24", "-"]


def test_a_non_image_input_has_no_receptive_field(tmp_path) -> None:
    config = {"model": {"input_shape": [784], "layers": [{"type": "dense", "out_features": 10}]}}
    outcome = invoke_cli(["summary", "--config", write_config(tmp_path / "flat.yaml", config)])
    assert outcome.code == 0, outcome.output
    assert table_rows(outcome.stdout)["fc1"][3:5] == ["-", "-"]


# ---------------------------------------------------------------- nested blocks and --depth


class Block(Layer[Any]):
    """A stand-in for a block of layers (no such layer type ships yet): its children run in order."""

    type_name = "block"

    def __init__(self, name: str, children: list[Layer[Any]]) -> None:
        super().__init__(name)
        self._children = children
        self.params = {f"{child.name}.{key}": value for child in children for key, value in child.params.items()}
        self.input_shape, self.output_shape = children[0].input_shape, children[-1].output_shape

    def children(self) -> list[Layer[Any]]:
        return self._children

    def receptive_field(self, field: ReceptiveField) -> ReceptiveField:
        for child in self._children:
            field = child.receptive_field(field)
        return field

    def flops(self) -> int:
        return sum(child.flops() for child in self._children)


def nested_model() -> Model:
    """mnist's layers with conv2..relu3 inside a block, and conv3..relu3 in a block inside that one."""
    layers = build_model("mnist").layers
    inner = Block("inner", layers[4:6])
    outer = Block("outer", [layers[2], layers[3], inner])
    return Model([*layers[:2], outer, *layers[6:]], (1, 28, 28), "softmax_cross_entropy", np.float32)


def test_depth_walks_the_children_of_a_block() -> None:
    model = nested_model()
    everything = model.summary()
    assert [(row.name, row.depth) for row in everything[:8]] == [
        ("conv1", 0),
        ("relu1", 0),
        ("outer", 0),
        ("conv2", 1),
        ("relu2", 1),
        ("inner", 1),
        ("conv3", 2),
        ("relu3", 2),
    ]
    assert [row.name for row in model.summary(2)][2:7] == ["outer", "conv2", "relu2", "inner", "conv4"]
    assert [row.name for row in model.summary(1)][:4] == ["conv1", "relu1", "outer", "conv4"]
    fields = {row.name: row.receptive_field.size[0] for row in everything if row.receptive_field}
    assert (fields["conv2"], fields["conv3"], fields["inner"], fields["outer"], fields["conv4"]) == (5, 9, 9, 9, 13)
    # a block's parameters include its children's: the totals count each parameter once, at any depth
    lines = summary_table(everything, model.input_shape, model.dtype)
    total = next(line for line in lines if line.startswith("total")).split()
    assert total[1] == "880,842" and total[-1] == f"{sum(row.flops for row in build_model('mnist').summary()):,}"
    assert any(line.startswith("    conv3") for line in lines)  # two levels down, indented twice


def test_depth_on_the_command_line() -> None:
    full = invoke_cli(["summary", "--config", "mnist"])
    top = invoke_cli(["summary", "--config", "mnist", "--depth", "1"])
    assert full.code == top.code == 0
    assert top.stdout == full.stdout  # no layer has children today
    error_line(invoke_cli(["summary", "--config", "mnist", "--depth", "0"]), EXIT_BAD_INPUT, "--depth")


def test_summary_print_config_prints_the_resolved_yaml_and_no_table() -> None:
    outcome = invoke_cli(["summary", "--config", "mnist-sgd", "--print-config"])
    assert outcome.code == 0, outcome.output
    assert "name: mnist-sgd" in outcome.stdout and "RF" not in outcome.stdout
    assert "extends" not in outcome.stdout

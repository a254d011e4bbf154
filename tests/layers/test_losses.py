"""The loss registry: one class per loss, chosen by name, each answering for its own outputs."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from cnn_cli.layers.losses import LOSSES, BinaryCrossEntropy, Loss, SoftmaxCrossEntropy, SumSquaredError


def test_loss_by_name_is_the_registered_class() -> None:
    assert list(LOSSES) == ["softmax_cross_entropy", "binary_cross_entropy", "sum_squared_error"]
    for name, cls in LOSSES.items():
        loss = Loss(name, 1 if cls is BinaryCrossEntropy else 4)
        assert type(loss) is cls and loss.name == name
        assert type(copy.deepcopy(loss)) is cls and copy.deepcopy(loss).num_outputs == loss.num_outputs


def test_unknown_loss_name_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        Loss("hinge", 3)


@pytest.mark.parametrize("cls", [SoftmaxCrossEntropy, SumSquaredError])
def test_one_output_per_class(cls: type[Loss]) -> None:
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((5, 4, 1, 1))
    loss = Loss(cls.name, 4)
    assert loss.num_classes == 4 and cls.output_problem((4, 1, 1)) is None
    np.testing.assert_array_equal(loss.predict(logits), logits.reshape(5, 4).argmax(axis=1))
    np.testing.assert_allclose(loss.probabilities(logits).sum(axis=1), 1.0)
    grad = loss.class_score_gradient(logits, 2)
    assert grad.shape == logits.shape and grad.reshape(5, 4)[:, 2].tolist() == [1.0] * 5 and grad.sum() == 5


def test_binary_cross_entropy_reads_two_classes_from_one_output() -> None:
    logits = np.array([[-2.0], [0.5], [3.0]])
    loss = Loss("binary_cross_entropy", 1)
    assert loss.num_classes == 2
    assert loss.predict(logits).tolist() == [0, 1, 1]
    probs = loss.probabilities(logits)
    np.testing.assert_allclose(probs[:, 1], 1 / (1 + np.exp(-logits[:, 0])))
    assert loss.class_score_gradient(logits, 0)[:, 0].tolist() == [-1.0] * 3
    assert BinaryCrossEntropy.output_problem((10,)) == "binary_cross_entropy needs one output, the last layer gives (10,)"
    assert BinaryCrossEntropy.output_problem((1, 1, 1)) is None

"""A correct solution of the l2_update exercise: the skeleton of `cnn exercise start l2_update`, filled in.

The tests hold it to passing every stage of `cnn exercise check`, and derive the typical wrong
solutions from it (tests/learn/test_exercise_solutions.py).
"""

import numpy as np


def l2_penalty(w, weight_decay):
    """The term the update minimises along with the data loss: ½ λ Σ w²."""
    return 0.5 * weight_decay * np.sum(w * w)


def l2_update(w, grad_w, lr, weight_decay):
    """Return new_w: one SGD step on data loss + ½ λ Σ w², given grad_w = ∂(data loss)/∂w."""
    new_w = w.copy()
    new_w = w - lr * (grad_w + weight_decay * w)
    return new_w

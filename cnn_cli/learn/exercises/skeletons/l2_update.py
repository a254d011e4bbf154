"""Exercise l2_update: one SGD step with L2 regularisation (weight decay).

Written by `cnn exercise start l2_update`. The penalty is given; fill in
l2_update, then check your work with

    cnn exercise check l2_update_exercise.py

The check runs five stages and stops at the first that fails: shapes; notes 001's
updates with α = λ = 0.1 (as `cnn explain l2-update` works them); random weights
against cnn's own update; edge cases (λ = 0, lr = 0, a large λ); central
differences of the penalty against the λw your update implies. Keep the name and
signature: the checker calls it (`cnn docs l2`).

Shapes: w, grad_w and new_w have one shape, any (a conv's (C_out, C_in, kH, kW),
a dense layer's (F_out, F_in)). lr and weight_decay are numbers.

The derivation (in full: `cnn docs l2`; notes 001). The training loss is the data
loss plus a penalty on large weights:

    L = data loss + ½ λ Σ w²            (λ = weight_decay; biases are not penalised)

The ½ is there so that the penalty's derivative is simply λw:

    ∂L/∂w = ∂(data loss)/∂w + λ w       (grad_w is the first term)

and one step of gradient descent with learning rate lr (notes 001's α, `cnn docs l2`) is

    w ← w − lr · (∂(data loss)/∂w + λ w)
"""

import numpy as np


def l2_penalty(w, weight_decay):
    """The term the update minimises along with the data loss: ½ λ Σ w²."""
    return 0.5 * weight_decay * np.sum(w * w)


def l2_update(w, grad_w, lr, weight_decay):
    """Return new_w: one SGD step on data loss + ½ λ Σ w², given grad_w = ∂(data loss)/∂w."""
    new_w = w.copy()
    # TODO
    raise NotImplementedError("l2_update: fill me in")
    return new_w

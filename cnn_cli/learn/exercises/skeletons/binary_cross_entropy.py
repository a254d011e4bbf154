"""Exercise binary_cross_entropy: the gradient of binary cross-entropy, on the logit.

Written by `cnn exercise start binary_cross_entropy`. The loss value is given;
fill in its gradient, then check your work with

    cnn exercise check binary_cross_entropy_exercise.py

The check runs five stages and stops at the first that fails: shapes; a batch of
two to redo by hand; random logits against cnn's own gradient; edge cases (logits
of ±50, logits of shape (N,), soft targets, a batch of 1); central differences of
the loss. Keep the name and signature: the checker calls it.

Shapes:
    logits       (N, 1) or (N,): one logit z per sample, the score of class 1
    targets      (N,), 0 or 1 (or probabilities in [0, 1])
    loss         one number, the mean over the batch
    grad_logits  like logits: ∂loss/∂logits

The derivation (in full: `cnn docs binary_cross_entropy`; notes 003 and 004).
With a = σ(z), one sample's loss is L = −y log a − (1 − y) log(1 − a). Notes 004
takes the chain rule one factor at a time:

    ∂L/∂a = (a − y) / (a(1 − a))        ∂a/∂z = a(1 − a)        so    ∂L/∂z = a − y

The denominator cancels: ∂L/∂a alone is the gradient for the probability, not for
the logit this function receives. The loss is the mean over the batch, so

    ∂loss/∂z[n] = (σ(z[n]) − y[n]) / N

shaped like the logits.
"""

import numpy as np


def binary_cross_entropy(logits, targets):
    """Return (loss, grad_logits): the batch mean of −[y log σ(z) + (1 − y) log(1 − σ(z))], and ∂loss/∂logits."""
    z = logits.reshape(-1)
    y = targets.reshape(-1).astype(z.dtype)
    n = z.shape[0]
    # −y log σ(z) − (1 − y) log(1 − σ(z)), written so that no exp overflows and no log sees 0:
    loss = np.mean(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z))))
    e = np.exp(-np.abs(z))
    a = np.where(z >= 0, 1 / (1 + e), e / (1 + e))  # σ(z), without overflow
    grad_logits = np.zeros_like(logits)
    # TODO: fill in grad_logits (shaped like logits) from a, y and n.
    raise NotImplementedError("binary_cross_entropy: fill in grad_logits")
    return loss, grad_logits

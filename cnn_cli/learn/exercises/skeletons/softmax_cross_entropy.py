"""Exercise softmax_cross_entropy: the gradient of the softmax cross-entropy loss.

Written by `cnn exercise start softmax_cross_entropy`. The loss value is given;
fill in its gradient, then check your work with

    cnn exercise check softmax_cross_entropy_exercise.py

The check runs five stages and stops at the first that fails: shapes; notes 001's
two-class example and a batch of two (as `cnn explain softmax-ce` works them);
random logits against cnn's own gradient; edge cases (logits of ±1000, a batch of
1, two classes); central differences of the loss. Keep the name and signature:
the checker calls it (`cnn docs softmax_cross_entropy`).

Shapes:
    logits       (N, K), one score per class
    labels       (N,), integers in [0, K)
    loss         one number, the mean over the batch
    grad_logits  like logits: ∂loss/∂logits

The derivation (in full: `cnn docs softmax_cross_entropy`; notes 000 §2.9, 001, 002).
With p = softmax(z) for one sample and k its label, the sample's loss is
−log p_k = −z_k + log Σ_j e^(z_j). Differentiating with respect to z_c:

    ∂(−log p_k)/∂z_c = −[c = k] + e^(z_c) / Σ_j e^(z_j) = p_c − y_c

with y the one-hot label: p_c for every class, minus 1 at the label. The loss is
the mean over the N samples, so each row of the gradient is divided by N:

    ∂loss/∂z[n, c] = (p[n, c] − y[n, c]) / N

Compute p from the shifted logits, as the loss does: e^1000 overflows, e^0 does not.
"""

import numpy as np


def softmax_cross_entropy(logits, labels):
    """Return (loss, grad_logits): the batch mean of −log p[label], and ∂loss/∂logits."""
    n = logits.shape[0]
    shifted = logits - logits.max(axis=1, keepdims=True)  # every exponent <= 0: nothing overflows
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -log_p[np.arange(n), labels].mean()
    p = np.exp(log_p)  # softmax(logits), row by row
    grad_logits = np.zeros_like(logits)
    # TODO: fill in grad_logits from p and the labels.
    raise NotImplementedError("softmax_cross_entropy: fill in grad_logits")
    return loss, grad_logits

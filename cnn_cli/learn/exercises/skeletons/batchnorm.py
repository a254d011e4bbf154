"""Exercise batchnorm: the backward pass of batch normalisation in training mode.

Written by `cnn exercise start batchnorm`. The forward pass is given; fill in
batchnorm_backward, then check your work with

    cnn exercise check batchnorm_exercise.py

The check runs five stages and stops at the first that fails: shapes; the 2x3
example of `cnn explain batchnorm` (3 samples of 2 features here); random tensors
against cnn's own backward; edge cases (one feature, a negative γ, a large ε,
inputs far from 0); central differences of your own forward. Keep the names and
signatures: the checker calls them (`cnn docs batchnorm`).

Shapes (batchnorm1d, after a dense layer):
    x         (N, D): N samples of D features; each feature has its own statistics
    gamma     (D,)    the learned scale γ
    beta      (D,)    the learned shift β
    out       (N, D)
    grad_out  like out: ∂L/∂out
    dx, dgamma, dbeta: like x, gamma, beta

The derivation (in full: `cnn docs batchnorm`). Per feature, over the N samples:

    μ = (1/N) Σ x,   x̄ = x − μ,   v = (1/N) Σ x̄²,   σ = √(v + ε),   x̂ = x̄ / σ,   out = γ·x̂ + β

Every output of a feature depends on every input of that feature, through μ and σ.
So ∂L/∂x has three paths: the direct one (x̂ = x̄/σ), the one through the mean μ
and the one through the variance v. Walk the forward backwards one line at a time
(∂L/∂x̂, ∂L/∂(1/σ), ∂L/∂σ, ∂L/∂v, ∂L/∂x̄, ∂L/∂μ, ∂L/∂x) and add up the paths, or sum
them into the one line

    dx = (γ/σ)/N · (N·dy − Σdy − x̂·Σ(dy·x̂))

and the parameters: dβ = Σ dy, dγ = Σ dy·x̂ (sums over the batch).
"""

import numpy as np


def batchnorm_forward(x, gamma, beta, eps=1e-5):
    """Training mode: each feature (column) of x normalised by the batch's own mean and variance, then γ·x̂ + β."""
    n = x.shape[0]
    mu = x.sum(axis=0) / n
    xc = x - mu
    var = (xc**2).sum(axis=0) / n
    std = np.sqrt(var + eps)
    x_hat = xc / std
    out = gamma * x_hat + beta
    cache = (xc, std, x_hat, gamma)
    return out, cache


def batchnorm_backward(grad_out, cache):
    """Return (dx, dgamma, dbeta) for grad_out = ∂L/∂out, shaped (N, D)."""
    xc, std, x_hat, gamma = cache
    n = grad_out.shape[0]
    dx = np.zeros_like(xc)
    dgamma = np.zeros_like(gamma)
    dbeta = np.zeros_like(gamma)
    # TODO: fill in dx, dgamma and dbeta.
    raise NotImplementedError("batchnorm_backward: fill me in")
    return dx, dgamma, dbeta

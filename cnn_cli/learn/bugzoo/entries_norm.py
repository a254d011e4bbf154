"""The bug zoo's mistakes in batch norm and global average pooling.

Batch norm's are shown in training mode (``cnn gradcheck`` checks a model with batch
norm that way): each output depends on the whole batch through its channel's mean and
variance, and two of the mistakes forget one of those paths.
"""

from __future__ import annotations

from cnn_cli.learn.bugzoo import nets
from cnn_cli.learn.bugzoo import patches_norm as pn
from cnn_cli.learn.bugzoo.mutation import Mutation, layers_of
from cnn_cli.model.network import Model

BATCHNORM_DOCS = "batchnorm (backprop.md §2.15)"
BELOW_BN2 = ("conv1.weight", "conv1.bias", "bn1.weight", "bn1.bias", "fc1.weight", "fc1.bias", "input")


def batch_norms(model: Model, weight_decay: float) -> list[str]:
    """The model's batch-norm layers (either kind)."""
    return [layer.name for layer in model.layers if layer.type_name in ("batchnorm2d", "batchnorm1d")]


ENTRIES = [
    Mutation(
        "bn-no-mean-term",
        "batch-norm backward without the −Σdy term: dx = (γ/σ)/M · (M·dy − x̂·Σ(dy·x̂))",
        "In training every input moves its channel's mean μ, and μ reaches every output of the channel: that path gives "
        "the −Σdy term. Without it every tensor below the last batch norm fails. A bias right before a batch norm fails "
        "too: its true gradient is exactly 0, because the mean subtracts it again, and only the −Σdy term says so.",
        BATCHNORM_DOCS,
        pn.bn_no_mean_term,
        nets.BN_NET,
        BELOW_BN2,
        batch_norms,
        "no batchnorm2d or batchnorm1d layer",
        op="batchnorm",
        hint="every input also moves its channel's mean, which every output subtracts: dx needs the −Σdy term "
        "(dx = (γ/σ)/M · (M·dy − Σdy − x̂·Σ(dy·x̂)))",
    ),
    Mutation(
        "bn-no-variance-term",
        "batch-norm backward that takes σ for a constant: dx = (γ/σ) · (dy − mean(dy))",
        "In training every input also moves its channel's variance, and σ divides every output: that path gives the "
        "−x̂·Σ(dy·x̂) term. Without it the tensors below the last batch norm fail, except a bias right before a batch "
        "norm: its gradient still sums to 0, as it should.",
        BATCHNORM_DOCS,
        pn.bn_no_variance_term,
        nets.BN_NET,
        ("conv1.weight", "bn1.weight", "bn1.bias", "fc1.weight", "input"),
        batch_norms,
        "no batchnorm2d or batchnorm1d layer",
        op="batchnorm",
        hint="σ is computed from the batch too, so every input moves it: dx needs the −x̂·Σ(dy·x̂) term of the variance",
    ),
    Mutation(
        "bn-running-stats-in-training",
        "batch-norm forward that normalises with the running statistics in training too",
        "The forward then treats μ and σ as constants, but the backward still sends the gradient through the batch's "
        "mean and variance: the two disagree, and everything below the last batch norm fails. Were the backward made "
        "to match, a gradient check would pass and only the forward would be wrong: the outputs would not have mean 0 "
        "and variance 1 over the batch, which the PyTorch parity test and `cnn explain batchnorm` check.",
        BATCHNORM_DOCS,
        pn.bn_running_stats_in_training,
        nets.BN_NET,
        BELOW_BN2,
        batch_norms,
        "no batchnorm2d or batchnorm1d layer",
    ),
    Mutation(
        "gap-no-divide",
        "global-average-pool backward gives each input the whole ∂L/∂y instead of ∂L/∂y / (H·W)",
        "The output is the mean of the H·W values of its map, so each input's share is 1/(H·W). Without it every "
        "gradient below the pooling is H·W times too large (16 on its own net's 4x4 maps).",
        "global_avg_pool (backprop.md §2.16)",
        pn.gap_no_divide,
        nets.GAP_NET,
        ("conv1.weight", "conv1.bias", "input"),
        layers_of("global_avg_pool"),
        "no global_avg_pool layer",
        op="global_avg_pool",
        hint="the output is the mean of the H·W values of its map, so each input gets ∂L/∂y / (H·W)",
    ),
]

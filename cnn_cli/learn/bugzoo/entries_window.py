"""The bug zoo's mistakes in convolution, ReLU and pooling backward passes (the first entries of ``--break list``)."""

from __future__ import annotations

from cnn_cli.learn.bugzoo import nets
from cnn_cli.learn.bugzoo import patches as p
from cnn_cli.learn.bugzoo import patches_pointwise as pp
from cnn_cli.learn.bugzoo.mutation import (
    CONV_DX,
    OWN,
    PASSES_ON_RANDOM,
    Mutation,
    layers_of,
    overlapping,
    square_kernel,
)

ENTRIES = [
    Mutation(
        "col2im-assign",
        "col2im writes each window's gradient with grad_x[window] = ... instead of += ...",
        "Overlapping windows share input pixels; with = each pixel keeps only the last window's share. "
        "Every input gradient of a conv whose windows overlap is wrong, and so is every tensor below it; "
        "that conv's own weight and bias are still right (they never go through col2im).",
        CONV_DX,
        p.col2im_assign,
        nets.CONV_STACK,
        ("conv1.weight", "conv1.bias", "input"),
        layers_of("conv2d", overlapping),
        "no conv2d layer whose windows overlap",
        op="conv2d",
        hint="windows overlap, so an input pixel collects from several of them: the sum needs `+=`, not `=`",
    ),
    Mutation(
        "col2im-assign-no-overlap",
        "col2im-assign's = instead of +=, shown on a net whose convs have stride = kernel size",
        "On its own net every conv has stride = kernel size: the windows tile the input, every pixel is read by exactly "
        "one window and there is nothing to add up, so = and += agree and the check passes. A gradient check only tests "
        "the geometry it is given: on a net whose windows overlap (stride < kernel size) the same mistake fails, as "
        "col2im-assign does.",
        CONV_DX,
        p.col2im_assign,
        nets.PATCHES,
        (),
        layers_of("conv2d", overlapping),
        "no conv2d layer whose windows overlap (= and += agree when every pixel is read once)",
    ),
    Mutation(
        "bias-not-summed",
        "conv bias gradient summed over the positions of the first sample only, not over the batch",
        "The bias is added to every output of every sample, so its gradient is the sum of ∂L/∂y over the batch and "
        "all positions. Only the conv biases fail; the batch must have 2 or more samples to show it.",
        "conv2d (backprop.md §2.1, '∂L/∂bias: the bias gradient')",
        p.bias_not_summed,
        nets.CONV_STACK,
        ("conv1.bias", "conv2.bias"),
        layers_of("conv2d", lambda layer: "bias" in layer.params),
        "no conv2d layer with a bias",
        reach=OWN,
        op="conv2d",
        hint="the bias is added to every output of every sample, so ∂L/∂b sums ∂L/∂y over the batch too, not over one sample",
    ),
    Mutation(
        "relu-no-mask",
        "ReLU backward returns grad_out unchanged (no [x > 0] mask)",
        "Units that output 0 pass gradient they never had. Everything below the last ReLU fails; the layers "
        "above it (here the dense layer) are still right.",
        "relu (backprop.md §2.5)",
        pp.relu_no_mask,
        nets.CONV_STACK,
        ("conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias", "input"),
        layers_of("relu"),
        "no relu layer",
        op="relu",
        hint="a unit whose input was ≤ 0 output a constant 0, so it passes no gradient: multiply by the mask [x > 0]",
    ),
    Mutation(
        "relu-at-zero",
        "ReLU backward masks with x >= 0 instead of x > 0",
        PASSES_ON_RANDOM + "It shows on real data: after a ReLU (or on MNIST's blank pixels) exact zeros are common, "
        "and cnn, like PyTorch, passes no gradient at 0. `cnn exercise check` tests exact zeros.",
        "relu (backprop.md §2.5)",
        pp.relu_at_zero,
        nets.CONV_STACK,
        (),
        layers_of("relu"),
        "no relu layer",
        op="relu",
        hint="at exactly 0 the derivative does not exist; cnn (like PyTorch) takes it as 0: the mask is x > 0, not x >= 0",
    ),
    Mutation(
        "maxpool-spread",
        "max-pool backward gives the output gradient to every input of the window",
        "Only the winner influenced the output, so only it gets ∂L/∂y; the others must get 0. Everything below the pool fails.",
        "maxpool2d (backprop.md §2.3)",
        p.maxpool_spread,
        nets.POOL_NET,
        ("conv1.weight", "conv1.bias", "input"),
        layers_of("maxpool2d"),
        "no maxpool2d layer",
        op="maxpool2d",
        hint="only the window's winner reached the output, so only it gets ∂L/∂y; every other input of the window gets 0",
    ),
    Mutation(
        "maxpool-ties-all",
        "max-pool backward gives the gradient to every input that ties for the window's maximum",
        PASSES_ON_RANDOM + "Ties are common in training: on MNIST's blank background every conv output equals its bias, "
        "so whole windows tie, and giving each tied input the full ∂L/∂y multiplies the gradient. cnn, like PyTorch, "
        "gives it to the first maximum in reading order. `cnn exercise check maxpool2d` tests ties.",
        "maxpool2d (backprop.md §2.3)",
        p.maxpool_ties_all,
        nets.POOL_NET,
        (),
        layers_of("maxpool2d"),
        "no maxpool2d layer",
        op="maxpool2d",
        hint="the forward copied one input, so one input gets ∂L/∂y: the first maximum in reading order (as in PyTorch), "
        "not every input that ties with it",
    ),
    Mutation(
        "maxpool-tie-last",
        "max-pool backward gives a tied window's gradient to its last maximum (a loop with >=)",
        PASSES_ON_RANDOM + "The gradient still goes to one input, so its size is right, but not to the input cnn and "
        "PyTorch pick (the first maximum in reading order), and the two disagree whenever a window ties. "
        "`cnn exercise check maxpool2d` tests ties.",
        "maxpool2d (backprop.md §2.3)",
        p.maxpool_tie_last,
        nets.POOL_NET,
        (),
        layers_of("maxpool2d"),
        "no maxpool2d layer",
        op="maxpool2d",
        hint="a tie goes to the first maximum in reading order (numpy's argmax, PyTorch): compare with >, not >=",
    ),
    Mutation(
        "kernel-not-rotated",
        "conv input gradient computed as the full correlation of ∂L/∂Y with K instead of rot180(K)",
        "Each input pixel must meet each ∂L/∂y through the tap that connected them; without the 180° turn the "
        "taps are mirrored. The conv's own weight and bias stay right; its input gradient and everything below "
        "fail (a 1x1 or centre-symmetric kernel would hide it).",
        "conv2d (backprop.md §2.1, '∂L/∂x: the input gradient'; `cnn explain conv-backward`)",
        p.kernel_not_rotated,
        nets.CONV_STACK,
        ("conv1.weight", "conv1.bias", "input"),
        layers_of("conv2d", lambda layer: layer.kernel_size != (1, 1)),
        "no conv2d layer with a kernel larger than 1x1 (a 1x1 kernel is its own rot180)",
        op="conv2d",
        hint="∂L/∂X is the full correlation of ∂L/∂Y with rot180(K) (K[::-1, ::-1]), or equivalently += ∂L/∂y · K over each window",
    ),
    Mutation(
        "kernel-transposed",
        "conv input gradient computed as the full correlation of ∂L/∂Y with Kᵀ instead of rot180(K)",
        "A transpose swaps rows with columns; rot180 reverses both. They agree only on kernels that happen to be "
        "symmetric, so the conv's input gradient and everything below it fail; its own weight and bias stay right.",
        "conv2d (backprop.md §2.1, '∂L/∂x: the input gradient'; `cnn explain convolution`)",
        p.kernel_transposed,
        nets.CONV_STACK,
        ("conv1.weight", "conv1.bias", "input"),
        layers_of("conv2d", square_kernel),
        "no conv2d layer with a square kernel larger than 1x1",
        op="conv2d",
        hint="rot180(K) reverses the rows and the columns (K[::-1, ::-1]); a transpose (K.T) swaps them, which is another kernel",
    ),
    Mutation(
        "col2im-no-stride",
        "col2im steps through the input one pixel at a time, ignoring the stride",
        "With stride s, window (i, j) starts at (i·s, j·s); adding its gradient at (i, j) puts it on the wrong "
        "pixels. Only a conv with stride > 1 is affected: its input gradient and everything below it fail.",
        "conv2d (backprop.md §1.3 tap_slice, §2.1 '∂L/∂x')",
        p.col2im_no_stride,
        nets.CONV_STACK,
        ("input",),
        layers_of("conv2d", lambda layer: layer.stride != (1, 1)),
        "no conv2d layer with a stride above 1",
        op="conv2d",
        hint="window (i, j) starts at (i·stride, j·stride): its gradient goes back there, not to (i, j)",
    ),
    Mutation(
        "avgpool-no-divide",
        "average-pool backward gives each input the whole ∂L/∂y instead of ∂L/∂y / (kH·kW)",
        "The output is the mean of kH·kW inputs, so each input's share is 1/(kH·kW). Without it every gradient "
        "below the pool is kH·kW times too large.",
        "avgpool2d (backprop.md §2.4)",
        p.avgpool_no_divide,
        nets.AVGPOOL_NET,
        ("conv1.weight", "conv1.bias", "input"),
        layers_of("avgpool2d"),
        "no avgpool2d layer",
        op="avgpool2d",
        hint="the output is the mean of kH·kW inputs, so each input gets ∂L/∂y / (kH·kW)",
    ),
    Mutation(
        "avgpool-assign",
        "average-pool backward writes each window's share with = instead of +=",
        "When the stride is smaller than the window, an input lies in several windows and must collect a share "
        "from each; with = it keeps one. Everything below the pool fails (on windows that tile the input, = would pass).",
        "avgpool2d (backprop.md §2.4)",
        p.avgpool_assign,
        nets.AVGPOOL_NET,
        ("conv1.weight", "conv1.bias", "input"),
        layers_of("avgpool2d", overlapping),
        "no avgpool2d layer whose windows overlap",
        op="avgpool2d",
        hint="with stride < size the windows overlap and an input collects a share from each: the sum needs `+=`",
    ),
]

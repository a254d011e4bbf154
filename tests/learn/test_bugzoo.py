"""``cnn gradcheck --break``: each deliberate mistake fails exactly the tensors it should.

The expected tensors follow from where each mistake sits: a wrong input gradient of
layer k spoils every tensor below k and nothing above it; a wrong loss gradient spoils
everything. The unbroken nets pass, so every FAIL below is the mistake's doing.
"""

from __future__ import annotations

import numpy as np
import pytest

from cnn_cli.learn import bugzoo
from cnn_cli.learn.bugzoo import MUTATIONS, PATCHES
from cnn_cli.learn.gradcheck import gradcheck_model
from cnn_cli.nn import conv as nn_conv
from tests.support.cli import EXIT_BAD_INPUT, EXIT_FAULT, error_line, invoke_cli


def failing(config) -> tuple[str, ...]:
    return tuple(r.name for r in gradcheck_model(config) if not r.passed)


@pytest.mark.parametrize("config_name", ["CONV_STACK", "POOL_NET", "PATCHES"])
def test_the_unbroken_demo_nets_pass(config_name):
    assert failing(getattr(bugzoo, config_name)) == ()


@pytest.mark.parametrize("name", [name for name, m in MUTATIONS.items() if m.fails])
def test_each_mistake_fails_exactly_its_tensors(name):
    mutation = MUTATIONS[name]
    with mutation.apply():
        results = gradcheck_model(mutation.demo_config, weight_decay=mutation.weight_decay)
    assert tuple(r.name for r in results if not r.passed) == mutation.fails
    for r in results:
        if not r.passed:
            assert r.max_rel_error > 1e-2, r  # off by a lot, not by roundoff
    # and the library is whole again afterwards
    assert failing(mutation.demo_config) == ()


def test_the_expected_sets_are_the_layers_below_the_mistake():
    """Spot-check the reasoning behind the table rather than the table against itself."""
    everything = set(bugzoo._everything(bugzoo.CONV_STACK))
    assert set(MUTATIONS["loss-not-averaged"].fails) == everything
    assert set(MUTATIONS["softmax-without-y"].fails) == everything
    above_last_relu = {"fc1.weight", "fc1.bias"}
    assert set(MUTATIONS["relu-no-mask"].fails) == everything - above_last_relu
    assert set(MUTATIONS["bias-not-summed"].fails) == {n for n in everything if n.startswith("conv") and n.endswith(".bias")}


def test_loss_not_averaged_is_off_by_the_same_factor_everywhere():
    """Every gradient is N times too large: |N·a − a| / (N·a + a) = (N − 1)/(N + 1) = 1/3 for N = 2."""
    mutation = MUTATIONS["loss-not-averaged"]
    with mutation.apply():
        results = gradcheck_model(mutation.demo_config, batch_size=2)
    np.testing.assert_allclose([r.max_rel_error for r in results], 1 / 3, rtol=1e-6)


def test_assign_instead_of_add_hides_when_stride_equals_kernel_size():
    """Why it passes: with stride = kernel the windows tile the input, no pixel is read twice,
    so col2im never has two contributions to add and `=` does what `+=` does. The same
    mistake on overlapping windows (stride 1 or 2 under a 3x3 kernel) fails, as the test above shows."""
    mutation = MUTATIONS["col2im-assign-no-overlap"]
    assert mutation.apply is MUTATIONS["col2im-assign"].apply  # the very same bug
    for layer in PATCHES["layers"]:
        if layer["type"] == "conv2d":
            assert layer["stride"] == layer["kernel_size"]
    with mutation.apply():
        assert failing(PATCHES) == ()
        # one overlapping layer is enough to expose it
        overlapping = {**PATCHES, "layers": [{**PATCHES["layers"][0], "stride": 1}, *PATCHES["layers"][1:]]}
        assert "input" in failing(overlapping)
    assert "nothing to add up" in mutation.why


def test_the_mutation_is_undone_even_when_the_check_raises():
    original = nn_conv._col2im
    with pytest.raises(RuntimeError), MUTATIONS["col2im-assign"].apply():
        assert nn_conv._col2im is not original
        raise RuntimeError("boom")
    assert nn_conv._col2im is original


def test_break_command_explains_the_failure():
    """The check catches the mistake, so the command fails (exit 1), as its help says."""
    outcome = invoke_cli(["gradcheck", "--break", "kernel-not-rotated"], timeout=60)
    assert outcome.code == EXIT_FAULT, outcome.output
    assert "failed:  conv1.weight, conv1.bias, input" in outcome.stdout
    assert "(as expected)" in outcome.stdout
    assert "read:    cnn docs conv2d" in outcome.stdout


def test_break_on_your_own_config_reports_failures():
    outcome = invoke_cli(["gradcheck", "--config", "smoke", "--break", "relu-no-mask"], timeout=60)
    assert outcome.code == EXIT_FAULT, outcome.output
    assert "conv1.weight" in outcome.stdout.split("failed:")[1].splitlines()[0]
    assert "fc1.weight" not in outcome.stdout.split("failed:")[1].splitlines()[0]


def test_break_list_and_unknown_names():
    outcome = invoke_cli(["gradcheck", "--break", "list"])
    assert outcome.code == 0
    assert [line.split()[0] for line in outcome.stdout.splitlines()[: len(MUTATIONS)]] == list(MUTATIONS)
    error_line(invoke_cli(["gradcheck", "--break", "no-such-bug"]), EXIT_BAD_INPUT, "no-such-bug")
    error_line(invoke_cli(["gradcheck"]), EXIT_BAD_INPUT, "--config")


def test_show_prints_the_finite_difference_table():
    outcome = invoke_cli(["gradcheck", "--config", "smoke", "--show", "2"], timeout=60)
    assert outcome.code == 0, outcome.output
    assert "L(θ+ε)" in outcome.stdout and "analytic" in outcome.stdout
    assert outcome.stdout.count("(PASS, max rel err") == 7


def test_show_names_the_unit_whose_kink_a_step_crossed():
    """With a huge ε nearly every step flips some ReLU: the skipped rows say which one."""
    results = gradcheck_model("smoke", eps=1e-2, max_checks_per_param=4, show=3)
    skipped = [e for r in results for e in r.entries if e.skipped]
    assert skipped
    assert all(e.skipped.startswith(("relu1 unit", "relu2 unit")) and e.skipped.endswith("crossed 0") for e in skipped)
    shown = [e for r in results for e in r.entries if not e.skipped]
    for e in shown:
        assert e.numeric == pytest.approx((e.loss_plus - e.loss_minus) / 2e-2)


def test_show_names_a_max_pool_window_that_changed_its_winner():
    results = gradcheck_model(bugzoo.POOL_NET, eps=0.5, max_checks_per_param=6, show=6)
    messages = [e.skipped for r in results for e in r.entries if e.skipped]
    assert any("changed its winner" in m for m in messages) or any("crossed 0" in m for m in messages)
    assert any("pool" in m for m in messages)


def test_a_mistake_that_slips_through_exits_0_and_says_so():
    outcome = invoke_cli(["gradcheck", "--break", "col2im-assign-no-overlap"], timeout=60)
    assert outcome.code == 0, outcome.output
    assert "failed:  nothing; the check passed with the mistake in place" in outcome.stdout
    assert "ran in:  nothing: its own small net has no conv2d layer whose windows overlap" in outcome.stdout


def test_no_overlap_on_a_net_whose_windows_overlap_says_what_passes_and_why():
    """On smoke (3x3 kernels, stride 2) the same `=` fails: the report must not claim it passes, and says why conv2 and fc1 do."""
    outcome = invoke_cli(["gradcheck", "--config", "smoke", "--break", "col2im-assign-no-overlap"], timeout=60)
    assert outcome.code == EXIT_FAULT, outcome.output
    assert "PASSES" not in outcome.stdout
    assert "failed:  conv1.weight, conv1.bias, input" in outcome.stdout
    assert "passed:  conv2.weight, conv2.bias, fc1.weight, fc1.bias" in outcome.stdout
    assert "they belong to conv2, the topmost layer the mistake runs in, or to layers above it" in outcome.stdout
    assert "ran in:  conv1, conv2" in outcome.stdout


@pytest.mark.parametrize(
    ("name", "absent"),
    [
        ("maxpool-spread", "the config smoke has no maxpool2d layer"),
        ("bce-not-averaged", "the config smoke has a loss other than binary_cross_entropy"),
        ("l2-missing", "the config smoke has weight decay 0"),
    ],
)
def test_a_mistake_the_net_cannot_make_says_why_it_passed(name, absent):
    outcome = invoke_cli(["gradcheck", "--config", "smoke", "--break", name], timeout=60)
    assert outcome.code == 0, outcome.output
    assert f"ran in:  nothing: {absent}" in outcome.stdout
    assert "so the mistake never ran and every tensor passes" in outcome.stdout


def test_only_the_own_parameters_fail_for_a_parameter_mistake():
    outcome = invoke_cli(["gradcheck", "--config", "smoke", "--break", "dense-bias-not-summed"], timeout=60)
    assert outcome.code == EXIT_FAULT
    assert "failed:  fc1.bias" in outcome.stdout
    assert "the mistake only touches the parameter gradients of fc1" in outcome.stdout


@pytest.mark.parametrize("name", [name for name, m in MUTATIONS.items() if not m.fails and name != "col2im-assign-no-overlap"])
def test_mistakes_a_numeric_check_cannot_see_pass_on_their_own_net_and_say_why(name):
    """Ties, exact zeros and dropout (off in evaluation mode) never show in a random float64 gradient check;
    each says so, and names what does catch it (the exercise check's edge cases)."""
    mutation = MUTATIONS[name]
    with mutation.apply():
        assert failing(mutation.demo_config) == ()
    assert "passes with the mistake in place" in mutation.why
    assert "`cnn exercise check" in mutation.why


def test_patches_restore_class_attributes_exactly():
    """A mistake swapped into a class (MaxPool2D's staticmethods) leaves nothing behind on the class."""
    from cnn_cli.layers import MaxPool2D

    before = dict(vars(MaxPool2D))
    with MUTATIONS["maxpool-ties-all"].apply():
        assert "_backward" in vars(MaxPool2D)
    assert dict(vars(MaxPool2D)) == before

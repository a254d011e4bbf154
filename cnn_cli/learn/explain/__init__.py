"""``cnn explain``: the lecture notes' worked examples, computed live by the library.

Every number printed as "cnn" comes from a call into ``cnn_cli.nn`` (or a model
built from ``cnn_cli.layers``) at the moment the example runs; nothing is
re-typed. Beside it stands the value the notes print, or, for the learner's own
matrices, the same quantity worked out by hand (a plain sum of products written
out in the line). Each comparison is a ✓ or a ✗; any ✗ makes ``cnn explain``
exit 1, so a broken library function shows up here as it would in a test.

Where a note's own printed number is wrong, the example says so as a note
erratum (not a ✗): the notes are quoted, not trusted.

The library modules are looked up as module attributes at call time
(``nn_conv.conv2d_forward``), so that a deliberately broken function swapped into
the module is the one that runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cnn_cli.errors import CnnError
from cnn_cli.learn.explain.conv import conv_backward, convolution, cross_correlation
from cnn_cli.learn.explain.network import l2_update, seed004_net
from cnn_cli.learn.explain.normalization import batchnorm, global_avg_pool
from cnn_cli.learn.explain.report import ExampleInput, Report
from cnn_cli.learn.explain.routing import maxpool, relu, softmax_ce


@dataclass(frozen=True)
class Example:
    name: str
    summary: str
    run: Callable[[ExampleInput], Report]
    takes: tuple[str, ...] = ()  # the learner's matrices it uses: "input", "kernel", "grad"


EXAMPLES = {
    e.name: e
    for e in [
        Example(
            "cross-correlation",
            "notes 003's 3x3 ⋆ 2x2 = [[8,7],[4,5]], as sums of products and im2col rows (`cnn docs conv2d`)",
            cross_correlation,
            ("input", "kernel"),
        ),
        Example(
            "convolution",
            "the same with rot180(K) = [[7,5],[11,3]], and why cnn computes cross-correlation (`cnn docs conv2d`)",
            convolution,
            ("input", "kernel"),
        ),
        Example(
            "conv-backward",
            "∂L/∂K = X ⋆ ∂L/∂Y, ∂L/∂b = Σ ∂L/∂Y, ∂L/∂X as col2im += and as full correlation (`cnn docs conv2d`)",
            conv_backward,
            ("input", "kernel", "grad"),
        ),
        Example("maxpool", "where a max-pool gradient goes (notes 000 §2.7, `cnn docs maxpool2d`)", maxpool, ("input", "grad")),
        Example("relu", "where a ReLU gradient goes (notes 000 §2.8, `cnn docs relu`)", relu, ("input", "grad")),
        Example("softmax-ce", "p − y with the numbers of notes 000, 001 and 002 (`cnn docs softmax_cross_entropy`)", softmax_ce),
        Example(
            "seed004-net", "notes 004's 15-parameter net: forward, every chain-rule factor, (A2 − Y)Fᵀ (`cnn docs seed004`)", seed004_net
        ),
        Example("l2-update", "notes 001's w ← w − α(∂L/∂w + λw) with its numbers (`cnn docs seesaw`)", l2_update),
        Example(
            "batchnorm",
            "a 2x3 batch norm: every forward intermediate, the staged and the one-line backward agreeing (`cnn docs batchnorm`)",
            batchnorm,
        ),
        Example("global-avg-pool", "the mean of a map, and dy/(H·W) back to each input (`cnn docs global_avg_pool`)", global_avg_pool),
    ]
}


def _given_options(given: ExampleInput) -> list[str]:
    """The matrices the learner gave, by option name without the dashes, in the order the options are listed."""
    return [name for name in ("input", "kernel", "grad") if getattr(given, name) is not None]


def _refuse_unused(example: Example, given: ExampleInput) -> None:
    """An option the example would not read is an error, not silently ignored."""
    unused = [f"--{name}" for name in _given_options(given) if name not in example.takes]
    if unused:
        takes = " and ".join(f"--{name}" for name in example.takes) or "none of --input/--kernel/--grad"
        verb = "is" if len(unused) == 1 else "are"
        raise CnnError(f"{example.name}: {' and '.join(unused)} {verb} not used by this example (it takes {takes})")


def run_examples(names: list[str], given: ExampleInput | None = None) -> list[Report]:
    """Run the named examples (without names: every example, or with the learner's matrices every one that uses all of them).

    Raises:
        CnnError: an unknown name, or a named example that does not use a matrix the learner gave.
    """
    given = given or ExampleInput()
    unknown = [name for name in names if name not in EXAMPLES]
    if unknown:
        raise CnnError(f"unknown example {unknown[0]!r}; known: {', '.join(EXAMPLES)}")
    if not names:
        options = set(_given_options(given))
        names = [e.name for e in EXAMPLES.values() if options <= set(e.takes) and (e.takes or not options)]
    for name in names:
        _refuse_unused(EXAMPLES[name], given)
    return [EXAMPLES[name].run(given) for name in names]


def format_reports(reports: list[Report]) -> str:
    """Every report's text, then one summary line per report and in total."""
    parts = []
    for report in reports:
        parts.append(f"== {report.name} " + "=" * max(0, 60 - len(report.name)))
        parts.append(report.text)
        parts.append("")
    checks = sum(r.checks for r in reports)
    failures = sum(r.failures for r in reports)
    errata = sum(r.errata for r in reports)
    verdict = "all agree" if failures == 0 else f"{failures} DIFFER (✗)"
    parts.append(f"{checks} values checked, {verdict}; note errata: {errata}")
    return "\n".join(parts)


def list_examples() -> str:
    width = max(len(name) for name in EXAMPLES)
    lines = [f"{e.name:<{width}}  {e.summary}" for e in EXAMPLES.values()]
    lines += [
        "",
        "Then do it yourself: `cnn exercise list` has an exercise for every layer, loss and update,"
        " and notes 004's net (`cnn docs exercises`).",
    ]
    return "\n".join(lines)


def write_exercise(name: str, path: Path | None) -> Path:
    """``cnn explain --exercise NAME``, kept for old instructions: the skeleton of ``cnn exercise start NAME``.

    ``conv`` (the one exercise there was) is the conv2d exercise; the default file is still ./conv_exercise.py.
    """
    from cnn_cli.learn.exercises import get_exercise, start_exercise

    exercise = get_exercise(name, "--exercise")
    default = Path("conv_exercise.py") if name == "conv" else Path(f"{exercise.name}_exercise.py")
    return start_exercise(exercise.name, path if path is not None else default, how_to_force="")

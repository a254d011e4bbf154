"""What ``cnn gradcheck`` prints with ``--break`` (and ``--impl``): the check, then the mistake explained.

With a mistake swapped in, the report says which tensors failed and which passed,
and why each group did: the layers the mistake runs in are found in the model, and
what lies below the topmost of them (for a wrong input gradient), or only their
own parameters (for a wrong parameter gradient), is what it can spoil. A net
without any such layer is told so: the mistake never ran, so of course it passed.
The command exits 1 when the check catches the mistake (any tensor fails), 0 when
it does not.
"""

from __future__ import annotations

import contextlib
from typing import Any

from cnn_cli.errors import CnnError
from cnn_cli.learn.bugzoo.table import ALL, BELOW, MUTATIONS, OWN, WEIGHTS, Mutation


def get_mutation(name: str) -> Mutation:
    if name not in MUTATIONS:
        raise CnnError(f"--break: unknown mistake {name!r}; `cnn gradcheck --break list` shows: {', '.join(MUTATIONS)}")
    return MUTATIONS[name]


def list_mutations() -> str:
    width = max(len(name) for name in MUTATIONS)
    lines = [f"{m.name:<{width}}  {m.mistake}" for m in MUTATIONS.values()]
    lines.append("")
    lines.append("Run one: cnn gradcheck --break NAME (on its own small net), or add --config C for yours.")
    lines.append("It exits 1 when the check catches the mistake (a tensor FAILs) and 0 when the mistake slips through.")
    return "\n".join(lines)


def _names(items: list[str]) -> str:
    return ", ".join(items) if items else "nothing"


def _why_passed(mutation: Mutation, runs_in: list[str]) -> str:
    """Why the tensors that passed did, from where the mistake runs in the model."""
    if mutation.reach == BELOW:
        top = runs_in[-1]
        return (
            f"they belong to {top}, the topmost layer the mistake runs in, or to layers above it: backward computes them "
            "before the wrong input gradient flows down"
        )
    if mutation.reach == OWN:
        return f"the mistake only touches the parameter gradients of {_names(runs_in)}; nothing else is computed from them"
    if mutation.reach == WEIGHTS:
        return "L2 decays only weights: biases and the input have no penalty term to get wrong"
    return "these agree by chance on the sampled entries"


def explain_mutation(
    mutation: Mutation,
    failed: list[str],
    passed: list[str],
    runs_in: list[str],
    net: str,
    expected_known: bool,
) -> str:
    """What the learner reads under the table: the mistake, what failed and passed and why, where the docs derive it."""
    lines = [f"mistake: {mutation.mistake}"]
    if not runs_in:
        lines.append(f"ran in:  nothing: {net} has {mutation.absent}, so the mistake never ran and every tensor passes")
    elif mutation.reach != ALL:
        lines.append(f"ran in:  {_names(runs_in)}")
    lines.append(f"failed:  {_names(failed)}" if failed else "failed:  nothing; the check passed with the mistake in place")
    if failed and passed:
        lines.append(f"passed:  {_names(passed)}")
        reason = _why_passed(mutation, runs_in)
        if reason:
            lines.append(f"         ({reason})")
    if expected_known:
        match = tuple(failed) == mutation.fails
        expected = ", ".join(mutation.fails) if mutation.fails else "nothing"
        lines.append(f"expected to fail: {expected} ({'as expected' if match else 'NOT what was expected'})")
    lines.append(f"why:     {mutation.why}")
    lines.append(f"read:    cnn docs {mutation.docs}")
    return "\n".join(lines)


def _weight_decay_of(config: Any, mutation: Mutation, on_demo: bool) -> float:
    if on_demo:
        return mutation.weight_decay
    optimizer = getattr(config, "optimizer", None)
    return float(getattr(optimizer, "weight_decay", 0.0) or 0.0)


def gradcheck_report(
    config_name: str | None,
    seed: int = 0,
    batch_size: int | None = None,
    break_name: str | None = None,
    show: int = 0,
    atol: float | None = None,
    mode: str = "auto",
) -> tuple[str, bool]:
    """What ``cnn gradcheck`` prints, and whether it passed (``--break list`` counts as passed).

    With ``break_name`` the check runs with that mistake swapped in, and "passed" means
    the check did not catch it: the command exits 1 when any tensor fails.
    ``atol`` is the absolute floor of the check (None: the default, ``cnn docs gradcheck``); ``mode``
    train/eval/auto as :func:`cnn_cli.learn.gradcheck.gradcheck_model` takes it.
    """
    from cnn_cli.config.load import load_config
    from cnn_cli.learn.gradcheck import ATOL, format_gradcheck, gradcheck_mode, gradcheck_model
    from cnn_cli.learn.gradcheck_entries import format_entries
    from cnn_cli.model.network import build_model

    if break_name == "list":
        return list_mutations(), True
    mutation = get_mutation(break_name) if break_name is not None else None
    if config_name is None and mutation is None:
        raise CnnError("give --config CONFIG (e.g. --config mnist), --break NAME (--break list) or --impl FILE.py")
    on_demo = config_name is None
    config: Any = load_config(config_name) if config_name is not None else mutation.demo_config  # type: ignore[union-attr]
    weight_decay = _weight_decay_of(config, mutation, on_demo) if mutation is not None else 0.0
    with mutation.apply() if mutation is not None else contextlib.nullcontext():
        results = gradcheck_model(
            config, seed, batch_size, show=show, weight_decay=weight_decay, atol=ATOL if atol is None else atol, mode=mode
        )
    parts = [format_gradcheck(results)]
    if gradcheck_mode(build_model(config), mode) == "train":
        parts.insert(0, "training mode: batch norm uses the batch's own mean and variance, so each ±ε step reruns the whole batch")
    if show:
        parts.append("")
        parts.append(format_entries(results))
    if mutation is None:
        return "\n".join(parts), all(r.passed for r in results)
    failed = [r.name for r in results if not r.passed]
    passed = [r.name for r in results if r.passed]
    runs_in = mutation.runs_in(build_model(config, dtype="float64"), weight_decay)
    net = "its own small net" if on_demo else f"the config {config_name}"
    parts.insert(0, f"with the mistake '{mutation.name}' swapped in" + (" (its own small net)" if on_demo else "") + ":")
    parts.append("")
    parts.append(explain_mutation(mutation, failed, passed, runs_in, net, expected_known=on_demo))
    return "\n".join(parts), not failed

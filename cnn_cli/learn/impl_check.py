"""``cnn gradcheck --impl FILE.py``: a learner's own backward passes, one table row per gradient.

The file defines any of the functions of :data:`cnn_cli.learn.learner_api.LEARNER_FUNCTIONS`
(``cnn exercise start NAME`` writes one). For each exercise the file has, on one small
float64 case with a random upstream gradient (never all ones) — the central-difference
case of ``cnn exercise check``, so a convolution runs with stride 2 and padding 1 and its
windows overlap — every returned gradient is compared with central differences of the
learner's own forward (so the check never depends on cnn being right) and with cnn's own
backward. The learner's code runs in a process of its own, under a time limit, through the
same runner as ``cnn exercise check`` (:mod:`cnn_cli.learn.learner_process`): a file that
raises, loops or ends the process is a failed row, never a pass.

``cnn exercise check`` does more: it runs every stage (shapes, the notes' worked numbers,
edge cases) and names the mistake when it knows it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnn_cli.errors import CnnError
from cnn_cli.learn.exercises import EXERCISES, exercises_in
from cnn_cli.learn.exercises.compare import NUMERIC_TOLERANCE, as_array, relative_error, value_result
from cnn_cli.learn.exercises.spec import EPS, NUMERIC, Exercise
from cnn_cli.learn.learner_process import DEFAULT_TIMEOUT, LearnerFailure, run_learner

TOLERANCE = NUMERIC_TOLERANCE


@dataclass
class ImplResult:
    """One tensor of one learner function: e.g. ("conv2d_backward", "dw")."""

    function: str
    tensor: str
    vs_numeric: float
    vs_cnn: float
    passed: bool
    message: str = ""


def _grad_function(exercise: Exercise) -> str:
    return exercise.backward_name or exercise.forward_name


def _check(exercise: Exercise, path: Path, seed: int, timeout: float) -> list[ImplResult]:
    rng = np.random.default_rng(seed)
    case = exercise.cases(NUMERIC, rng)[0]
    call, arrays = exercise.learner_call(case, "c0.", numeric=True)
    answer = run_learner(path, [call], arrays, timeout)
    function = _grad_function(exercise)
    if isinstance(answer, LearnerFailure):
        message = answer.headline + (f" ({answer.lines[-1]})" if answer.lines else "")
        return [ImplResult(answer.function, "-", np.nan, np.nan, False, message)]
    returned = answer[0]
    mine = exercise.unpack(returned)
    if isinstance(mine, str):  # it returned something that is no answer: named after the function that returned it
        return [ImplResult(exercise.forward_name if returned.not_a_pair else function, "-", np.nan, np.nan, False, mine)]
    expected = exercise.reference(case)
    forward_out = exercise.outputs[0]
    if forward_out == "out":
        checked = value_result("out", mine.get("out"), expected["out"], 3)
        if not checked.ok:
            message = checked.problem or "the forward differs from cnn's: fix it first (the skeleton's is right)"
            return [ImplResult(exercise.forward_name, "out", np.nan, np.nan, False, message)]
    results = []
    for name, value, numeric in exercise.numeric_pairs(case, mine, returned, "c0."):
        array, problem = as_array(value)
        reference = expected.get(name)
        if array is None or array.shape != numeric.shape:
            reason = problem or f"shape {array.shape if array is not None else '?'}, expected {numeric.shape}"
            results.append(ImplResult(function, name, np.nan, np.nan, False, reason))
            continue
        vs_numeric = relative_error(array, numeric)
        vs_cnn = relative_error(array, reference) if reference is not None and reference.shape == array.shape else np.nan
        results.append(ImplResult(function, name, vs_numeric, vs_cnn, bool(vs_numeric <= TOLERANCE)))
    return results


def check_learner_file(path: Path, seed: int = 0, timeout: float = DEFAULT_TIMEOUT) -> list[ImplResult]:
    """Check every exercise function the file defines; see the module docstring."""
    path = Path(path)
    try:
        found = exercises_in(path)
    except CnnError as exc:
        raise CnnError(f"--impl: {exc}") from None
    if isinstance(found, str):  # the file does not parse: the learner's code failed
        return [ImplResult("import", "-", np.nan, np.nan, False, found)]
    results: list[ImplResult] = []
    for exercise in found:
        if exercise.name in EXERCISES and exercise.name != "net004":
            results.extend(_check(exercise, path, seed, timeout))
    if not results:
        raise CnnError(f"--impl: {path}: only `cnn exercise check` checks the whole net (net004)")
    return results


def format_impl(results: list[ImplResult]) -> str:
    rows = [("function", "tensor", "vs numeric", "vs cnn", "result")]
    for r in results:
        rows.append(
            (
                r.function,
                r.tensor,
                "-" if np.isnan(r.vs_numeric) else f"{r.vs_numeric:.2e}",
                "-" if np.isnan(r.vs_cnn) else f"{r.vs_cnn:.2e}",
                ("PASS" if r.passed else "FAIL") + (f"  {r.message}" if r.message else ""),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [
        "  ".join([row[0].ljust(widths[0]), row[1].ljust(widths[1]), row[2].rjust(widths[2]), row[3].rjust(widths[3]), row[4]])
        for row in rows
    ]
    lines.insert(1, "-" * len(lines[0]))
    failed = [f"{r.function} {r.tensor}" for r in results if not r.passed]
    lines.append(f"{len(results) - len(failed)}/{len(results)} passed" + (f"; wrong: {', '.join(failed)}" if failed else ""))
    lines.append(
        f"relative error |a − n| / max(|a| + |n|, floor); PASS needs ≤ {TOLERANCE:.0e} against central differences (ε = {EPS:.0e})."
    )
    if failed:
        lines.append("`cnn exercise check FILE` goes stage by stage and names the mistake when it knows it; `cnn docs TOPIC` derives it.")
    return "\n".join(lines)

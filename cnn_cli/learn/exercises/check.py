"""``cnn exercise check``: a learner's file, stage by stage, stopping at the first stage that fails.

1. shapes: each function returns what the table says, with the right shapes;
2. a worked example: the notes' own numbers where they have some, small enough to check by hand;
3. random tensors: against cnn's own backward;
4. edge cases each layer must get right (ties, exact zeros, stride, padding, dilation, groups, a batch of 1...);
5. central differences of the learner's own forward, float64, with a random upstream gradient.

Every stage runs the learner's code in a process of its own (:mod:`cnn_cli.learn.learner_process`). When a
tensor is wrong, cnn's backward is run again on the same inputs with each relevant
bug-zoo mistake swapped in; if one gives exactly the learner's tensor, the report
names it and says what is right instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cnn_cli.learn.bugzoo import Mutation, mutations_for
from cnn_cli.learn.exercises.compare import (
    TensorResult,
    numeric_result,
    pattern,
    shape_hint,
    shape_result,
    show_matrix,
    value_result,
)
from cnn_cli.learn.exercises.spec import NUMERIC, SHAPES, STAGE_TITLES, STAGES, WORKED, Case, Exercise
from cnn_cli.learn.learner_process import LearnerFailure, Returned, run_learner

INDENT = "      "
# The layers of the whole-net exercise, whose bug-zoo mistakes can show in it.
NET004_OPS = ("conv2d", "relu", "maxpool2d", "flatten", "dense", "binary_cross_entropy")
# The residual exercise's block: its own mistake, and those of the layers inside it.
RESIDUAL_OPS = ("residual", "dense", "relu")
MATH_NAMES = {
    "dx": "∂L/∂x (dx)",
    "dw": "∂L/∂w (dw)",
    "db": "∂L/∂b (db)",
    "dgamma": "∂L/∂γ (dgamma)",
    "dbeta": "∂L/∂β (dbeta)",
    "grad_logits": "∂L/∂z (grad_logits)",
    "conv1.weight": "∂L/∂W1 (conv1.weight)",
    "conv1.bias": "∂L/∂b1 (conv1.bias)",
    "fc1.weight": "∂L/∂W2 (fc1.weight)",
    "fc1.bias": "∂L/∂b2 (fc1.bias)",
}


@dataclass
class StageOutcome:
    """One stage of one exercise: whether it passed, and its printed lines (the first is its heading)."""

    stage: str
    passed: bool
    lines: list[str] = field(default_factory=list)


@dataclass
class ExerciseReport:
    exercise: Exercise
    stages: list[StageOutcome]

    @property
    def passed(self) -> bool:
        return len(self.stages) == len(STAGES) and all(s.passed for s in self.stages)

    def text(self, path: Path) -> str:
        ex = self.exercise
        lines = [f"exercise {ex.name}: {', '.join(ex.functions)} in {path.name}  (derivation: cnn docs {ex.topic})"]
        for outcome in self.stages:
            lines.extend(outcome.lines)
        if self.passed:
            lines.append(
                f"PASS: all {len(STAGES)} stages. Your {ex.name} agrees with cnn's, with the worked numbers and with central differences."
            )
        else:
            number, total = len(self.stages), len(STAGES)
            rest = {total: "", total - 1: f"; stage {total} not run"}.get(number, f"; stages {number + 1}-{total} not run")
            lines.append(f"FAIL at stage {number} of {total} ({STAGE_TITLES[self.stages[-1].stage]}){rest}. Fix it and check again.")
        return "\n".join(lines)


def check_exercise(exercise: Exercise, path: Path, timeout: float, seed: int = 0) -> ExerciseReport:
    """Run the stages in order on the learner's file; stop at the first that fails."""
    rng = np.random.default_rng(seed)
    stages: list[StageOutcome] = []
    passed_cases: list[Case] = []  # where the learner agreed with cnn: a mistake that changes them is not the learner's
    for number, stage in enumerate(STAGES, 1):
        cases = exercise.cases(stage, rng)
        outcome = run_stage(exercise, stage, cases, path, timeout, passed_cases)
        title = exercise.numeric_title if stage == NUMERIC and exercise.numeric_title else STAGE_TITLES[stage]
        if stage == WORKED and exercise.worked_from:
            title += f": {exercise.worked_from}"
        outcome.lines[0] = f"[{number}/{len(STAGES)}] {title}{outcome.lines[0]}"
        stages.append(outcome)
        if not outcome.passed:
            break
        if stage not in (SHAPES, NUMERIC):
            passed_cases.extend(cases)
    return ExerciseReport(exercise, stages)


def run_stage(
    exercise: Exercise, stage: str, cases: list[Case], path: Path, timeout: float, passed_cases: list[Case] | None = None
) -> StageOutcome:
    calls, arrays = [], {}
    for k, case in enumerate(cases):
        call, case_arrays = exercise.learner_call(case, f"c{k}.", stage == NUMERIC)
        calls.append(call)
        arrays.update(case_arrays)
    answer = run_learner(path, calls, arrays, timeout)
    count = f" ({len(cases)} cases)" if len(cases) > 1 else ""
    if isinstance(answer, LearnerFailure):
        where = f' on "{cases[answer.call].label}"' if 0 <= answer.call < len(cases) and len(cases) > 1 else ""
        return StageOutcome(stage, False, [f"{count}: FAIL{where}", answer.text(INDENT)])
    worst: dict[str, TensorResult] = {}
    for k, (case, returned) in enumerate(zip(cases, answer, strict=True)):
        failed = _check_case(exercise, stage, case, returned, f"c{k}.", passed_cases or [])
        if isinstance(failed, list):
            label = f' on "{case.label}"' if len(cases) > 1 else ""
            return StageOutcome(stage, False, [f"{count}: FAIL{label}", *failed])
        for result in failed.values():
            if result.name not in worst or result.size > worst[result.name].size:
                worst[result.name] = result
    return StageOutcome(stage, True, [f"{count}: ok", *(INDENT + r.line for r in worst.values())])


def _check_case(
    exercise: Exercise, stage: str, case: Case, returned: Returned, prefix: str, passed_cases: list[Case]
) -> dict[str, TensorResult] | list[str]:
    """The case's results by output name when all are right; otherwise the lines that say what is wrong."""
    mine = exercise.unpack(returned)
    if isinstance(mine, str):
        return [INDENT + mine]
    expected = exercise.reference(case)
    names = [name for name in exercise.outputs if name in mine or name not in exercise.optional]
    width = max(len(name) for name in names)
    if stage == NUMERIC:
        width = max(width, *(len(n) for n, _, _ in exercise.numeric_pairs(case, mine, returned, prefix)))
        results = {
            n: numeric_result(n, value, numeric, width) for n, value, numeric in exercise.numeric_pairs(case, mine, returned, prefix)
        }
    elif stage == SHAPES:
        results = {name: shape_result(name, mine.get(name), expected[name], width) for name in names}
    else:
        results = {name: value_result(name, mine.get(name), expected[name], width) for name in names}
    if all(r.ok for r in results.values()):
        return results
    lines = [INDENT + f"({case.note})"] if case.note else []
    lines += [INDENT + r.line for r in results.values()]
    if case.show:
        lines += _shown(case, results, expected)
    lines += diagnose(exercise, case, [r for r in results.values() if not r.ok], expected, stage, passed_cases)
    return lines


def _shown(case: Case, results: dict[str, TensorResult], expected: dict[str, np.ndarray]) -> list[str]:
    """The worked example's inputs, and each wrong tensor as the learner's and as cnn's, to redo by hand."""
    lines = []
    for name, value in [*case.inputs.items(), ("∂L/∂out", case.upstream)]:
        if value is not None and np.asarray(value).dtype.kind in "fiub":
            grid = show_matrix(np.asarray(value, dtype=np.float64), INDENT + "  ")
            if grid:
                lines += [f"{INDENT}{name} =", *grid]
    for result in results.values():
        if not result.ok and result.mine is not None and result.mine.shape == expected[result.name].shape:
            for whose, value in (("yours", result.mine), ("cnn's", expected[result.name])):
                grid = show_matrix(value, INDENT + "  ")
                if grid:
                    lines += [f"{INDENT}{result.name}, {whose} =", *grid]
    return lines


def _relevant(exercise: Exercise) -> list[Mutation]:
    if exercise.name in ("net004", "residual"):
        return [m for op in (NET004_OPS if exercise.name == "net004" else RESIDUAL_OPS) for m in mutations_for(op)]
    return mutations_for(exercise.name)


def _equal(a: np.ndarray, b: np.ndarray) -> bool:
    scale = max(float(np.max(np.abs(b), initial=0.0)), 1e-12)
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=1e-6, atol=1e-6 * scale))


def _changes(mutation: Mutation, exercise: Exercise, cases: list[Case]) -> bool:
    """Whether the mistake gives another answer than cnn's on any of ``cases`` (cases the learner got right)."""
    for case in cases:
        right = exercise.reference(case)
        with mutation.apply():
            wrong = exercise.reference(case)
        if any(not _equal(wrong[name], right[name]) for name in right if name in wrong):
            return True
    return False


def _best_match(
    exercise: Exercise, case: Case, arrays: dict[str, np.ndarray], expected: dict[str, np.ndarray], passed_cases: list[Case]
) -> tuple[list[str], Mutation, list[Mutation]] | None:
    """The mistake explaining the most wrong tensors (and any others that explain as many), leaving out
    mistakes that would have failed a case the learner passed."""
    found: list[tuple[list[str], Mutation]] = []
    for mutation in _relevant(exercise):
        with mutation.apply():
            theirs = exercise.reference(case)
        explained = [
            name
            for name, mine in arrays.items()
            if name in theirs and _equal(mine, theirs[name]) and not _equal(theirs[name], expected[name])
        ]
        if explained:
            found.append((explained, mutation))
    if len(found) > 1:
        found = [(names, m) for names, m in found if not _changes(m, exercise, passed_cases)] or found
    if not found:
        return None
    most = max(len(names) for names, _ in found)
    best = [(names, m) for names, m in found if len(names) == most]
    return best[0][0], best[0][1], [m for _, m in best[1:]]


def diagnose(
    exercise: Exercise,
    case: Case,
    wrong: list[TensorResult],
    expected: dict[str, np.ndarray],
    stage: str,
    passed_cases: list[Case] | None = None,
) -> list[str]:
    """Name the bug-zoo mistake that gives the learner's wrong tensors, or describe what the numbers show."""
    if stage == NUMERIC:
        which = ", ".join(MATH_NAMES.get(r.name, r.name) for r in wrong)
        return [
            f"{INDENT}diagnosis: your {which} disagrees with central differences of your own forward, although it agreed with",
            f"{INDENT}           cnn's on every earlier case: look at what this case adds ({case.label}), or at a forward you changed",
            f"{INDENT}read: cnn docs {exercise.topic}",
        ]
    arrays = {r.name: r.mine for r in wrong if r.mine is not None}
    match = _best_match(exercise, case, arrays, expected, passed_cases or [])
    best = (match[0], match[1]) if match else None
    lines = _where_the_chain_breaks(exercise, wrong)
    if best is not None:
        names, mutation = best
        verb = "equals" if len(names) == 1 else "equal"
        which = ", ".join(MATH_NAMES.get(n, n) for n in names)
        lines.append(f"{INDENT}diagnosis: your {which} {verb} what `{mutation.name}` gives: {mutation.hint}")
        if match and match[2]:
            others = ", ".join(f"`{m.name}`" for m in match[2])
            lines.append(f"{INDENT}           (on this case {others} gives the same numbers)")
    explained_names = best[0] if best else []
    batch = _batch(case)
    for result in wrong:
        if result.name in explained_names:
            continue
        if result.mine is None or result.mine.shape != expected[result.name].shape:
            hint = result.problem
            if result.mine is not None:
                inputs = {f"{k}": np.shape(v) for k, v in case.inputs.items()}
                extra = shape_hint(result.name, result.mine.shape, expected[result.name].shape, inputs)
                hint = f"{hint} ({extra})" if extra else hint
            lines.append(f"{INDENT}diagnosis: your {MATH_NAMES.get(result.name, result.name)} {hint}")
        elif not explained_names:
            lines.append(
                f"{INDENT}diagnosis: your {MATH_NAMES.get(result.name, result.name)}: {pattern(result.mine, expected[result.name], batch)}"
            )
    topic = best[1].topic if best else exercise.topic
    lines.append(f"{INDENT}read: cnn docs {topic}" + ("" if best else "; `cnn gradcheck --break list` shows the mistakes cnn knows"))
    return lines


def _where_the_chain_breaks(exercise: Exercise, wrong: list[TensorResult]) -> list[str]:
    """For the whole net: the first wrong intermediate gradient from the top, when the learner returned them."""
    steps = exercise.optional_steps
    first = next((r.name for r in wrong if r.name in steps), None)
    if first is None:
        return []
    return [f"{INDENT}the chain first goes wrong at {first}: everything above it is right, so look at {steps[first]}"]


def _batch(case: Case) -> int | None:
    first: Any = next(iter(case.inputs.values()), None)
    return int(first.shape[0]) if isinstance(first, np.ndarray) and first.ndim >= 1 else None

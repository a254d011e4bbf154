"""``cnn exercise``: from watching backprop to doing it.

One exercise per learner function of :data:`cnn_cli.learn.learner_api.LEARNER_FUNCTIONS`
(conv2d, maxpool2d, ..., l2_update, residual), plus ``net004``, notes 004's whole net by the
chain rule. ``start`` writes a skeleton (``skeletons/NAME.py``: the forward written
out, the shapes, the derivation in a docstring, the ``cnn docs`` section);
``check`` runs the learner's file through the stages of :mod:`.check`, in a
process of its own (:mod:`cnn_cli.learn.learner_process`) (`cnn docs exercises`).
"""

from __future__ import annotations

import ast
from importlib import resources
from pathlib import Path

from cnn_cli.bounded_read import read_bytes
from cnn_cli.errors import CnnError
from cnn_cli.learn.exercises.check import ExerciseReport, check_exercise
from cnn_cli.learn.exercises.ops_loss import BinaryCrossEntropyExercise, L2UpdateExercise, SoftmaxCrossEntropyExercise
from cnn_cli.learn.exercises.ops_net import Net004Exercise
from cnn_cli.learn.exercises.ops_norm import BatchNormExercise, GlobalAvgPoolExercise
from cnn_cli.learn.exercises.ops_pointwise import (
    DenseExercise,
    DropoutExercise,
    FlattenExercise,
    LeakyReLUExercise,
    ReLUExercise,
    SigmoidExercise,
    TanhExercise,
)
from cnn_cli.learn.exercises.ops_residual import ResidualExercise
from cnn_cli.learn.exercises.ops_window import AvgPool2DExercise, Conv2DExercise, MaxPool2DExercise
from cnn_cli.learn.exercises.spec import STAGES, Exercise
from cnn_cli.learn.learner_api import LEARNER_FUNCTIONS
from cnn_cli.learn.learner_code import LEARNER_CODE_BYTES
from cnn_cli.learn.learner_process import DEFAULT_TIMEOUT

_ALL: list[Exercise] = [
    Conv2DExercise(),
    MaxPool2DExercise(),
    AvgPool2DExercise(),
    ReLUExercise(),
    LeakyReLUExercise(),
    SigmoidExercise(),
    TanhExercise(),
    DenseExercise(),
    FlattenExercise(),
    DropoutExercise(),
    SoftmaxCrossEntropyExercise(),
    BinaryCrossEntropyExercise(),
    BatchNormExercise(),
    GlobalAvgPoolExercise(),
    L2UpdateExercise(),
    ResidualExercise(),
    Net004Exercise(),
]
EXERCISES: dict[str, Exercise] = {ex.name: ex for ex in _ALL}
ALIASES = {
    "conv": "conv2d",
    "maxpool": "maxpool2d",
    "avgpool": "avgpool2d",
    "softmax": "softmax_cross_entropy",
    "bce": "binary_cross_entropy",
    "batchnorm1d": "batchnorm",
    "gap": "global_avg_pool",
}
if [f.name for f in LEARNER_FUNCTIONS] != [name for name in EXERCISES if name != "net004"]:  # pragma: no cover - a table edit
    raise RuntimeError("cnn_cli.learn.exercises: one exercise per entry of LEARNER_FUNCTIONS, in its order")


def get_exercise(name: str, option: str = "NAME") -> Exercise:
    key = ALIASES.get(name, name)
    if key not in EXERCISES:
        raise CnnError(f"{option}: unknown exercise {name!r}; `cnn exercise list` shows: {', '.join(EXERCISES)}")
    return EXERCISES[key]


def list_exercises() -> str:
    """One line per exercise: its name, what the learner writes, and the ``cnn docs`` topic."""
    width = max(len(name) for name in EXERCISES)
    lines = [f"{name:<{width}}  {ex.summary}  (cnn docs {ex.topic})" for name, ex in EXERCISES.items()]
    lines += [
        "",
        "Start one:  cnn exercise start NAME        (writes NAME_exercise.py: the forward given, the backward to write)",
        "Check it:   cnn exercise check NAME_exercise.py",
        f"The check runs {len(STAGES)} stages: shapes, a worked example, random tensors against cnn's backward, edge cases,",
        "and central differences; it stops at the first that fails and names the mistake when it knows it.",
    ]
    return "\n".join(lines)


def skeleton_text(name: str) -> str:
    """The skeleton file of exercise ``name``, as shipped in the package."""
    return resources.files(__package__).joinpath("skeletons", f"{get_exercise(name).name}.py").read_text(encoding="utf-8")


def default_path(name: str) -> Path:
    return Path(f"{get_exercise(name).name}_exercise.py")


def start_exercise(name: str, path: Path | None = None, force: bool = False, how_to_force: str = ", or add --force") -> Path:
    """Write exercise ``name``'s skeleton to ``path`` (default ./NAME_exercise.py); refuse to overwrite unless ``force``."""
    from cnn_cli.runs.folders import write_text

    text = skeleton_text(name)
    target = Path(path) if path is not None else default_path(name)
    if target.is_dir():
        raise CnnError(f"{target}: is a folder; give a file name such as {target / default_path(name)}")
    if target.exists() and not force:
        raise CnnError(f"{target}: already exists; not overwriting your work (give another path with -o{how_to_force})")
    write_text(target, text)
    return target


def defined_names(path: Path) -> set[str] | str:
    """The names the file's top level defines (functions, classes, assignments, imports), read without running it;
    or, for a file that does not parse, what is wrong with it."""
    try:
        source = read_bytes(path, LEARNER_CODE_BYTES, "Python file").decode("utf-8")
    except UnicodeDecodeError:
        return f"{path.name} is not UTF-8 text"
    try:
        tree = ast.parse(source, filename=str(path))
    except SyntaxError as exc:
        shown = (exc.text or "").strip()
        return f"{path.name} does not parse: line {exc.lineno}: {exc.msg}" + (f": {shown}" if shown else "")
    names: set[str] = set()
    statements = list(tree.body)
    while statements:
        node = statements.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, (ast.If, ast.Try, ast.With)):
            statements.extend(getattr(node, "body", []) + getattr(node, "orelse", []) + getattr(node, "finalbody", []))
            for handler in getattr(node, "handlers", []):
                statements.extend(handler.body)
    return names


def exercises_in(path: Path, name: str | None = None) -> list[Exercise] | str:
    """The exercises the file is for (``name``'s, or every one whose functions it defines), or why it cannot be read."""
    path = Path(path)
    names = defined_names(path)
    if isinstance(names, str):
        return names
    if name is not None:
        exercise = get_exercise(name, "--exercise")
        if not any(function in names for function in exercise.functions):
            found = [ex.name for ex in EXERCISES.values() if any(f in names for f in ex.functions)]
            hint = f" (it has {', '.join(found)}'s: try --exercise {found[0]})" if found else ""
            raise CnnError(f"{path}: defines no {' or '.join(exercise.functions)}{hint}")
        return [exercise]
    found_exercises = [ex for ex in EXERCISES.values() if any(f in names for f in ex.functions)]
    if not found_exercises:
        wanted = ", ".join(ex.backward_name or ex.forward_name for ex in EXERCISES.values())
        raise CnnError(f"{path}: defines none of the exercises' functions ({wanted}); start from `cnn exercise start NAME`")
    return found_exercises


def check_file(path: Path, name: str | None = None, timeout: float = DEFAULT_TIMEOUT, seed: int = 0) -> tuple[str, bool]:
    """What ``cnn exercise check`` prints, and whether every stage of every exercise in the file passed."""
    if not timeout > 0:
        raise CnnError(f"--timeout: expected a number of seconds > 0, got {timeout}")
    path = Path(path)
    found = exercises_in(path, name)
    if isinstance(found, str):
        return f"FAIL: {found}\nFix it and check again.", False
    reports: list[ExerciseReport] = [check_exercise(exercise, path, timeout, seed) for exercise in found]
    text = "\n\n".join(report.text(path) for report in reports)
    if len(reports) > 1:
        passed = [r.exercise.name for r in reports if r.passed]
        text += f"\n\n{len(passed)} of {len(reports)} exercises passed" + (f": {', '.join(passed)}" if passed else "")
    return text, all(r.passed for r in reports)


__all__ = ["EXERCISES", "check_file", "default_path", "exercises_in", "get_exercise", "list_exercises", "skeleton_text", "start_exercise"]

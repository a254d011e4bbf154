"""``cnn exercise check`` on every exercise: the reference solution passes all five stages, and each
typical wrong solution stops at the stage it should, with the diagnosis it should get.

The wrong solutions are in tests/learn/wrong_solutions.py: the skeleton with a backward a learner
really writes. A named mistake must be a real entry of the bug zoo (``cnn gradcheck --break``).
"""

from __future__ import annotations

import ast
import re
from collections import Counter

import pytest

from cnn_cli.learn.bugzoo import MUTATIONS
from cnn_cli.learn.exercises import EXERCISES, check_file, skeleton_text
from cnn_cli.learn.learner_api import LEARNER_FUNCTIONS
from tests.learn.wrong_solutions import SOLUTIONS, WRONG

TIMEOUT = 30  # seconds per stage: generous, so that a loaded test machine does not fail a correct solution


def test_one_exercise_per_learner_function_and_the_whole_net():
    assert list(EXERCISES) == [f.name for f in LEARNER_FUNCTIONS] + ["net004"]


@pytest.mark.parametrize("name", list(EXERCISES))
def test_the_reference_solution_passes_every_stage(name):
    text, passed = check_file(SOLUTIONS / f"{name}.py", timeout=TIMEOUT)
    assert passed, text
    for number in range(1, 6):
        assert re.search(rf"^\[{number}/5\] .*: ok$", text, flags=re.MULTILINE), (number, text)
    assert "PASS: all 5 stages" in text


@pytest.mark.parametrize("name", list(EXERCISES))
def test_the_solution_keeps_the_skeletons_forward_and_names(name):
    """A solution is the skeleton with its TODO filled in: every function the skeleton gives is there unchanged."""
    skeleton = ast.parse(skeleton_text(name))
    solution = ast.parse((SOLUTIONS / f"{name}.py").read_text(encoding="utf-8"))
    given = {node.name: ast.dump(node) for node in skeleton.body if isinstance(node, ast.FunctionDef)}
    found = {node.name: ast.dump(node) for node in solution.body if isinstance(node, ast.FunctionDef)}
    assert set(found) == set(given)
    to_write = {function for function, dump in given.items() if "NotImplementedError" in dump}
    assert to_write and to_write <= set(EXERCISES[name].functions)
    for function in set(given) - to_write:
        assert found[function] == given[function], function


def test_every_exercise_has_at_least_two_typical_wrong_solutions():
    counts = Counter(w.exercise for w in WRONG)
    assert set(counts) == set(EXERCISES)
    assert min(counts.values()) >= 2, counts


def test_every_named_mistake_is_a_bugzoo_entry():
    for wrong in WRONG:
        for name in re.findall(r"`([a-z0-9-]+)`", " ".join(wrong.says)):
            assert name in MUTATIONS, (wrong.exercise, name)


@pytest.mark.parametrize("wrong", WRONG, ids=[f"{w.exercise}-{w.mistake}" for w in WRONG])
def test_a_typical_mistake_stops_at_its_stage_with_its_diagnosis(tmp_path, wrong):
    path = tmp_path / f"{wrong.exercise}_exercise.py"
    path.write_text(wrong.text, encoding="utf-8")
    text, passed = check_file(path, timeout=TIMEOUT)
    assert not passed
    assert f"FAIL at stage {wrong.stage} of 5" in text, text
    for fragment in wrong.says:
        assert fragment in text, f"{fragment!r} not in:\n{text}"
    assert "Traceback" not in text


def test_an_untouched_skeleton_fails_at_the_first_stage_saying_what_to_write(tmp_path):
    for name in EXERCISES:
        path = tmp_path / f"{name}.py"
        path.write_text(skeleton_text(name), encoding="utf-8")
    text, passed = check_file(tmp_path / "relu.py", timeout=TIMEOUT)
    assert not passed
    assert "relu_backward is not written yet (it raises NotImplementedError): fill it in" in text
    assert "FAIL at stage 1 of 5 (shapes); stages 2-5 not run" in text


def test_every_mutation_of_an_exercise_has_a_hint_and_a_docs_topic():
    from cnn_cli.learn.exercises import EXERCISES
    from cnn_cli.learn.guide import TOPICS

    for mutation in MUTATIONS.values():
        assert mutation.topic in TOPICS, mutation.name
        if mutation.op:
            assert mutation.op in EXERCISES and mutation.hint, mutation.name
    covered = {m.op for m in MUTATIONS.values() if m.op}
    assert covered == set(EXERCISES) - {"net004"}  # the whole net uses its layers' mistakes

"""What an exercise is: the learner's functions, the cases each stage tries, and cnn's own answer to each.

An :class:`Exercise` knows how to call the learner's functions on a :class:`Case`
(through :mod:`cnn_cli.learn.learner_process`, in another process), how to read
what came back as named outputs (``out``, ``dx``, ``dw``, ...), and how cnn's own
layers answer the same case (:meth:`Exercise.reference`). cnn's answer is computed
by the layers as a model would run them, looking the math up at call time, so that
the bug zoo's mistakes, swapped in, change it: that is how ``check`` names them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cnn_cli.learn.learner_api import BY_NAME, LearnerFunction
from cnn_cli.learn.learner_process import LearnerCall, Returned, array_ref

SHAPES, WORKED, RANDOM, EDGES, NUMERIC = "shapes", "worked", "random", "edges", "numeric"
STAGES = (SHAPES, WORKED, RANDOM, EDGES, NUMERIC)
STAGE_TITLES = {
    SHAPES: "shapes",
    WORKED: "worked example",
    RANDOM: "random tensors against cnn's backward",
    EDGES: "edge cases",
    NUMERIC: "central differences of your own forward (float64, random ∂L/∂out)",
}
EPS = 1e-5  # central-difference step: ε_mach^(1/3) balances truncation (ε²) against roundoff (ε_mach/ε)


@dataclass
class Case:
    """One set of inputs for the learner's functions.

    Attributes:
        label: what the case tests, printed when it fails.
        inputs: the forward's array arguments by name, in call order.
        options: its keyword (or, for ``l2_update``, trailing positional) arguments.
        upstream: ∂L/∂out handed to the backward (random, never all ones).
        note: why the case matters, printed when it fails.
        show: small enough to print the inputs and both answers on a failure.
    """

    label: str
    inputs: dict[str, np.ndarray]
    options: dict[str, Any] = field(default_factory=dict)
    upstream: np.ndarray | None = None
    note: str = ""
    show: bool = False

    @property
    def grad_out(self) -> np.ndarray:
        """The upstream gradient, for a case that has one (every case of a layer exercise)."""
        if self.upstream is None:  # pragma: no cover - a layer case is always built with one
            raise ValueError(f"case {self.label!r} has no upstream gradient")
        return self.upstream


class Exercise:
    """One exercise: a learner function of :data:`cnn_cli.learn.learner_api.LEARNER_FUNCTIONS` (or the whole net004).

    Subclasses give the cases of each stage and cnn's answer; this base class calls
    a ``NAME_forward(*inputs, **options) -> (out, cache)`` / ``NAME_backward(upstream, cache)``
    pair, the layers' convention.
    """

    name = ""
    summary = ""  # one line for `cnn exercise list`
    worked_from = ""  # where the worked example's numbers come from
    numeric_title = ""  # the numeric stage's title, when it is not central differences of the learner's forward
    grads: tuple[str, ...] = ("dx",)  # what the backward returns, in order
    wrt: dict[str, str] = {"dx": "x"}  # each gradient and the input it differentiates
    optional: tuple[str, ...] = ()  # outputs the learner may leave out (net004's intermediate gradients)
    optional_steps: dict[str, str] = {}  # for each optional output, the step that computes it

    @property
    def api(self) -> LearnerFunction:
        return BY_NAME[self.name]

    @property
    def topic(self) -> str:
        return self.api.guide

    @property
    def forward_name(self) -> str:
        return self.api.forward.split("(")[0]

    @property
    def backward_name(self) -> str | None:
        return self.api.backward.split("(")[0] if self.api.backward else None

    @property
    def functions(self) -> tuple[str, ...]:
        """The names the learner's file must define."""
        return (self.forward_name,) + ((self.backward_name,) if self.backward_name else ())

    @property
    def outputs(self) -> tuple[str, ...]:
        return ("out", *self.grads)

    def cases(self, stage: str, rng: np.random.Generator) -> list[Case]:  # pragma: no cover - interface
        raise NotImplementedError

    def reference(self, case: Case) -> dict[str, np.ndarray]:  # pragma: no cover - interface
        """cnn's answer to ``case``, by output name (``out`` and each gradient)."""
        raise NotImplementedError

    # ------------------------------------------------------------ calling the learner

    def learner_call(self, case: Case, prefix: str, numeric: bool) -> tuple[LearnerCall, dict[str, np.ndarray]]:
        """The call of the learner's pair on ``case``; arrays are named ``prefix + name``."""
        arrays = {prefix + key: value for key, value in case.inputs.items()}
        if case.upstream is not None:
            arrays[prefix + "upstream"] = case.upstream
        call = LearnerCall(
            self.forward_name,
            [array_ref(prefix + key) for key in case.inputs],
            dict(case.options),
            backward=self.backward_name,
            upstream=prefix + "upstream",
            numeric=[prefix + self.wrt[g] for g in self.grads] if numeric else [],
            weights=prefix + "upstream" if numeric else None,
        )
        return call, arrays

    def unpack(self, returned: Returned) -> dict[str, Any] | str:
        """The learner's outputs by name, or what is wrong with the way they came back."""
        if returned.not_a_pair:
            return f"{self.forward_name} returned {describe(returned.value)}, not the pair (out, cache)"
        found: dict[str, Any] = {"out": returned.value}
        grads = returned.grads
        if len(self.grads) == 1:
            if isinstance(grads, (tuple, list)):
                return f"{self.backward_name} returned {describe(grads)}; return {self.grads[0]} itself"
            found[self.grads[0]] = grads
            return found
        if not isinstance(grads, (tuple, list)) or len(grads) != len(self.grads):
            return f"{self.backward_name} returned {describe(grads)}, expected the tuple ({', '.join(self.grads)})"
        found.update(zip(self.grads, grads, strict=True))
        return found

    def numeric_pairs(self, case: Case, mine: dict[str, Any], returned: Returned, prefix: str) -> list[tuple[str, Any, np.ndarray]]:
        """(gradient name, the learner's gradient, central differences of the learner's forward) for the numeric stage."""
        return [(g, mine[g], returned.numeric[prefix + self.wrt[g]]) for g in self.grads]


def describe(value: Any) -> str:
    """A returned value in words: 'a str ('hello')', 'a tuple of 3 values', 'None', 'an array of shape (2, 3)'."""
    from cnn_cli.learn.learner_process import Foreign, Number

    if value is None:
        return "None (a missing `return`?)"
    if isinstance(value, Foreign):
        return f"a {value.kind} ({value.shown})"
    if isinstance(value, Number):
        return f"the number {value.value:g}"
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape}"
    if isinstance(value, (tuple, list)):
        return f"a {'list' if isinstance(value, list) else 'tuple'} of {len(value)} values"
    if isinstance(value, dict):
        return f"a dict with keys {', '.join(value)}"
    return type(value).__name__


def rand(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.standard_normal(shape)


def away_from_zero(rng: np.random.Generator, *shape: int, gap: float = 0.1) -> np.ndarray:
    """Random values with |v| ≥ gap: no ±ε step crosses a kink at 0."""
    return rng.uniform(gap, 1.5, shape) * rng.choice([-1.0, 1.0], shape)


def distinct(rng: np.random.Generator, *shape: int) -> np.ndarray:
    """Values 2/size apart in random order: no window ties, and no ±ε step changes a winner."""
    size = int(np.prod(shape))
    return rng.permutation(np.linspace(-1.0, 1.0, size)).reshape(shape)

"""Optimizers over named parameter and gradient dicts, LR schedules, clipping, L2.

The optimizer sees only ``params`` and ``grads`` (dicts of arrays under the
same dotted names, updated in place), never the layers. Update rules follow
PyTorch's ``torch.optim`` so a model can be stepped side by side with one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cnn_cli.nn.threads import for_each_slice

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam")
SCHEDULES = ("constant", "step", "cosine", "onecycle")  # the learning-rate schedules learning_rate() knows


def is_weight(name: str) -> bool:
    """Weights get L2 regularisation, biases do not (notes 001 sums over w only; ``cnn docs l2``)."""
    return name.endswith(".weight")


def l2_penalty(params: dict[str, np.ndarray], weight_decay: float) -> float:
    """Notes 001's regularisation term ½λ Σ w² over every weight (not biases; ``cnn docs l2``)."""
    if weight_decay == 0.0:
        return 0.0
    return 0.5 * weight_decay * sum(float(np.sum(p.astype(np.float64) ** 2)) for n, p in params.items() if is_weight(n))


def add_l2_gradient(params: dict[str, np.ndarray], grads: dict[str, np.ndarray], weight_decay: float) -> None:
    """∂(½λΣw²)/∂w = λw, added to each weight's gradient in place (notes 001, ``cnn docs l2``)."""
    if weight_decay == 0.0:
        return
    for name, grad in grads.items():
        if is_weight(name):
            grad += params[name].dtype.type(weight_decay) * params[name]


def clip_grad_norm(grads: dict[str, np.ndarray], max_norm: float) -> float:
    """Scale all gradients so their global L2 norm is at most ``max_norm``. Returns the norm before clipping."""
    total = math.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in grads.values()))
    if total > max_norm:
        scale = max_norm / (total + 1e-6)
        for grad in grads.values():
            grad *= grad.dtype.type(scale)
    return total


def apply_update(
    optimizer: Optimizer, params: dict[str, np.ndarray], grads: dict[str, np.ndarray], weight_decay: float, max_norm: float | None
) -> None:
    """One training update after backward: add the L2 gradient (notes 001, ``cnn docs l2``), clip, then the optimizer's step."""
    add_l2_gradient(params, grads, weight_decay)
    if max_norm is not None:
        clip_grad_norm(grads, max_norm)
    optimizer.step(params, grads)


class Optimizer:
    """Base: holds per-parameter state as plain arrays (saved in checkpoints)."""

    name = ""

    def __init__(self, lr: float) -> None:
        self.lr = lr
        self.steps = 0
        self.state: dict[str, np.ndarray] = {}

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        """Update every parameter in place from its gradient."""
        self.steps += 1
        for name, param in params.items():
            self._update(name, param, grads[name])

    def _update(self, name: str, param: np.ndarray, grad: np.ndarray) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    state_suffixes: tuple[str, ...] = ()

    def missing_state(self, param_names: list[str], state: dict[str, np.ndarray]) -> str | None:
        """The first state key a resumed optimizer needs but ``state`` lacks (None when complete)."""
        if "steps" not in state:
            return "steps"
        for name in param_names:
            for suffix in self.state_suffixes:
                if f"{name}.{suffix}" not in state:
                    return f"{name}.{suffix}"
        return None

    def state_arrays(self) -> dict[str, np.ndarray]:
        """Everything needed to resume exactly: state arrays plus the step count."""
        return {**{k: v.copy() for k, v in self.state.items()}, "steps": np.array(self.steps)}

    def load_state_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore what :meth:`state_arrays` returned."""
        self.steps = int(arrays.get("steps", 0))
        self.state = {k: np.array(v) for k, v in arrays.items() if k != "steps"}


class SGD(Optimizer):
    """w ← w − η ∂L/∂w (notes 004's gradient descent, ``cnn docs sgd``)."""

    name = "sgd"

    def _update(self, name, param, grad):
        param -= param.dtype.type(self.lr) * grad


class Momentum(Optimizer):
    """Heavy ball: v ← μv + g, w ← w − ηv. Nesterov: w ← w − η(g + μv) with the new v."""

    name = "momentum"
    state_suffixes = ("velocity",)

    def __init__(self, lr: float, momentum: float = 0.9, nesterov: bool = False) -> None:
        super().__init__(lr)
        self.momentum = momentum
        self.nesterov = nesterov

    def _update(self, name, param, grad):
        velocity = self.state.get(f"{name}.velocity")
        if velocity is None:
            velocity = self.state[f"{name}.velocity"] = grad.copy()  # first step: v = g (as torch)
        else:
            velocity *= velocity.dtype.type(self.momentum)
            velocity += grad
        direction = grad + velocity.dtype.type(self.momentum) * velocity if self.nesterov else velocity
        param -= param.dtype.type(self.lr) * direction


class Adam(Optimizer):
    """Kingma & Ba: m ← β1 m + (1−β1) g, v ← β2 v + (1−β2) g², w ← w − η m̂ / (√v̂ + ε)."""

    name = "adam"
    state_suffixes = ("m", "v")

    def __init__(self, lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        super().__init__(lr)
        self.beta1, self.beta2 = betas
        self.eps = eps
        self._scratch: dict[str, np.ndarray] = {}

    def step(self, params, grads):
        # Bias corrections depend on the step number, so compute them once per step.
        self.steps += 1
        self._correction1 = 1.0 - self.beta1**self.steps
        self._correction2 = 1.0 - self.beta2**self.steps
        for name, param in params.items():
            self._update(name, param, grads[name])

    def _update(self, name, param, grad):
        dtype = param.dtype.type
        if f"{name}.m" not in self.state:  # first step: moments start at zero
            self.state[f"{name}.m"] = np.zeros_like(param)
            self.state[f"{name}.v"] = np.zeros_like(param)
        m, v = self.state[f"{name}.m"], self.state[f"{name}.v"]
        # One scratch array per parameter, reused every step: no large temporaries to allocate.
        scratch = self._scratch.get(name)
        if scratch is None or scratch.shape != param.shape or scratch.dtype != param.dtype:
            scratch = self._scratch[name] = np.empty_like(param)
        arrays = (param, grad, m, v, scratch)
        if not all(a.flags.c_contiguous for a in arrays):
            self._update_part(dtype, *arrays)
            return
        # Every element is updated on its own: split the flat arrays between threads.
        flat = [a.reshape(-1) for a in arrays]
        for_each_slice(lambda part: self._update_part(dtype, *(a[part] for a in flat)), param.size, param.size)

    def _update_part(self, dtype, param, grad, m, v, scratch):
        m *= dtype(self.beta1)
        np.multiply(grad, dtype(1.0 - self.beta1), out=scratch)
        m += scratch  # m = β1 m + (1 − β1) g
        v *= dtype(self.beta2)
        np.multiply(grad, grad, out=scratch)
        scratch *= dtype(1.0 - self.beta2)
        v += scratch  # v = β2 v + (1 − β2) g²
        np.sqrt(v, out=scratch)
        scratch /= dtype(math.sqrt(self._correction2))
        scratch += dtype(self.eps)  # √v̂ + ε, written as √v / √(1 − β2^t) + ε (as torch)
        np.divide(m, scratch, out=scratch)
        scratch *= dtype(self.lr / self._correction1)
        param -= scratch  # w ← w − η m̂ / (√v̂ + ε)


def make_optimizer(name: str, lr: float, momentum: float = 0.9, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> Optimizer:
    """Build one of ``sgd``, ``momentum``, ``nesterov``, ``adam``."""
    if name == "sgd":
        return SGD(lr)
    if name in ("momentum", "nesterov"):
        return Momentum(lr, momentum, nesterov=name == "nesterov")
    if name == "adam":
        return Adam(lr, (betas[0], betas[1]), eps)
    raise ValueError(f"unknown optimizer {name!r}; expected one of {OPTIMIZERS}")


ANNEALS = ("cos", "linear")  # how a one-cycle phase moves between its two rates


@dataclass(frozen=True)
class OneCycle:
    """Smith's one-cycle shape, as PyTorch's ``OneCycleLR`` (two phases, no momentum cycling).

    Attributes:
        pct_start: fraction of all steps spent rising from max_lr/div_factor to max_lr.
        div_factor: the first rate is max_lr / div_factor.
        final_div_factor: the last rate is (max_lr / div_factor) / final_div_factor.
        anneal: ``cos`` or ``linear`` interpolation within each phase.
    """

    pct_start: float = 0.3
    div_factor: float = 25.0
    final_div_factor: float = 1e4
    anneal: str = "cos"


def one_cycle_lr(max_lr: float, step: int, total_steps: int, cycle: OneCycle) -> float:
    """The one-cycle rate at 0-based step ``step`` of ``total_steps`` (``torch.optim.lr_scheduler.OneCycleLR``).

    Phase 1 runs from step 0 to ``pct_start·T − 1`` and rises from ``max_lr/div`` to
    ``max_lr``; phase 2 runs from there to step ``T − 1`` and falls to
    ``max_lr/div/final_div``. Within a phase at fraction ``p`` of the way: cos gives
    ``end + ½(start − end)(1 + cos πp)``, linear gives ``start + p(end − start)``.
    """
    initial = max_lr / cycle.div_factor
    phases = ((float(cycle.pct_start * total_steps) - 1, initial, max_lr), (total_steps - 1.0, max_lr, initial / cycle.final_div_factor))
    start_step = 0.0
    for index, (end_step, start_lr, end_lr) in enumerate(phases):
        if step <= end_step or index == len(phases) - 1:
            span = end_step - start_step
            progress = min((step - start_step) / span, 1.0) if span > 0 else 1.0
            if cycle.anneal == "linear":
                return start_lr + progress * (end_lr - start_lr)
            return end_lr + 0.5 * (start_lr - end_lr) * (1.0 + math.cos(math.pi * progress))
        start_step = end_step
    raise AssertionError("unreachable: the last phase always answers")  # pragma: no cover


def learning_rate(
    base_lr: float,
    step: int,
    steps_per_epoch: int,
    total_epochs: int,
    schedule: str = "constant",
    step_size: int = 1,
    gamma: float = 0.1,
    min_lr: float = 0.0,
    warmup_epochs: float = 0.0,
    cycle: OneCycle = OneCycle(),
) -> float:
    """The learning rate for optimizer step ``step`` (0-based).

    constant: base_lr. step: base_lr · γ^⌊epoch / step_size⌋. cosine: from base_lr
    down to min_lr over all steps. onecycle: up to base_lr and down again over all
    steps, shaped by ``cycle`` (:func:`one_cycle_lr`). Warm-up (optional) ramps linearly from
    base_lr/warmup_steps up to the scheduled value over the first warm-up steps.
    """
    epoch = step // max(steps_per_epoch, 1)
    total_steps = max(total_epochs * steps_per_epoch, 1)
    if schedule == "constant":
        lr = base_lr
    elif schedule == "step":
        lr = base_lr * gamma ** (epoch // step_size)
    elif schedule == "cosine":
        progress = min(step / total_steps, 1.0)
        lr = min_lr + 0.5 * (base_lr - min_lr) * (1.0 + math.cos(math.pi * progress))
    elif schedule == "onecycle":
        lr = one_cycle_lr(base_lr, step, total_steps, cycle)
    else:
        raise ValueError(f"unknown schedule {schedule!r}")
    warmup_steps = int(round(warmup_epochs * steps_per_epoch))
    if step < warmup_steps:
        lr *= (step + 1) / warmup_steps
    return lr

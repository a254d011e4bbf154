"""``cnn train --impl FILE``: train the real network with the learner's own layer functions.

Every layer (and the loss) whose type has a function pair in FILE runs the
learner's forward and backward (:mod:`cnn_cli.learn.learner_layers`); the rest
stay cnn's. Around that:

- before anything is created, each learner function is called once on a small
  random batch: one that raises fails the command with its name; one that is not
  written yet (``raise NotImplementedError``, an exercise's TODO) leaves its layers
  to cnn, with a note;
- the run folder keeps a copy of the file and run.json its SHA-256; a resume
  needs the same file;
- for the first ``check_steps`` steps a reference copy of the model with cnn's own
  code takes the same steps on the same batches (:class:`LearnerStep`), and the
  report at the end says how far apart the weights are
  (:mod:`cnn_cli.learn.learner_check`);
- each step runs under a deadline, and a second Ctrl-C (or SIGTERM, SIGHUP) stops the
  learner's code where it is; either way the run is saved at its last finished step.
  Code that catches that stop and goes on is given :data:`GRACE_S` more seconds (or a
  third signal), then the process ends at once, naming the function; the last saved
  checkpoint stays (:func:`abandon`).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from cnn_cli import signals
from cnn_cli.errors import CnnError, StepStopped
from cnn_cli.learn.learner_check import WeightCheck, diagnose, float64_copy
from cnn_cli.learn.learner_code import LearnerCode, LearnerStop, StopLearnerCode
from cnn_cli.learn.learner_layers import LEARNER_LAYERS, LEARNER_LOSSES, find_unwritten, learner_ops, use_learner_code
from cnn_cli.model.network import Model
from cnn_cli.runs.checkpoint import atomic_write
from cnn_cli.runs.folders import RunPaths
from cnn_cli.runs.learner_record import LearnerRecord, recorded_learner
from cnn_cli.runs.rng_state import model_rng_state, restore_rng_state
from cnn_cli.training.loop import train_step
from cnn_cli.training.state import InterruptFlag, RunningTotals, TrainState

DEFAULT_CHECK_STEPS = 50
DEFAULT_DEADLINE = 600.0  # seconds per step: generous for loop-based learner code on a full MNIST batch
_DEADLINE_SIGNAL = getattr(signal, "SIGUSR2", None)
GRACE_S = 2.0  # after a stop was raised inside learner code, how long it may take to let it through


def abandon(message: str, exit_code: int) -> NoReturn:
    """The last resort against learner code that catches every exception: say what ran, end the process now.

    No ``finally`` runs: the run keeps its last saved checkpoint, its ``run.lock`` is freed by the
    kernel, and readers see from the recorded PID that its process is gone (:mod:`cnn_cli.runs.liveness`).
    """
    with contextlib.suppress(OSError):
        os.write(2, f"error: {message}; it caught the stop and went on, so cnn exits now (the last checkpoint is kept)\n".encode())
    os._exit(exit_code)


@dataclass(frozen=True)
class LearnerOptions:
    """What ``cnn train --impl FILE [--impl-check-steps N] [--reference RUN] [--impl-deadline S]`` asks for."""

    file: Path
    check_steps: int = DEFAULT_CHECK_STEPS
    reference: Path | None = None
    deadline: float = DEFAULT_DEADLINE  # 0: none


class Deadline:
    """Stops a step that runs too long: a watchdog thread signals the main thread, whose handler raises
    :class:`StopLearnerCode` wherever the code is (inside the learner's function, most likely).

    Only the main thread receives signals; elsewhere (a sweep's worker) steps run without a deadline.
    """

    def __init__(self, seconds: float, running: Callable[[], str | None] = lambda: None) -> None:
        self.seconds = seconds
        self.what = ""  # e.g. "step 12": what is running, for the message
        self._running = running  # the learner function running now, for the last resort's message
        self._fired = False
        self.enabled = seconds > 0 and _DEADLINE_SIGNAL is not None and threading.current_thread() is threading.main_thread()
        self._main = threading.main_thread().ident or 0
        self._condition = threading.Condition()
        self._armed, self._closing = False, False
        self._until: float | None = None  # when the running step's time is up
        self._watchdog: threading.Thread | None = None

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """The signal handler and the watchdog, for as long as steps may run."""
        if not self.enabled:
            yield
            return
        previous = signal.signal(_DEADLINE_SIGNAL, self._expired)  # type: ignore[arg-type]
        self._closing = False
        self._watchdog = threading.Thread(target=self._watch, name="cnn-impl-deadline", daemon=True)
        self._watchdog.start()
        try:
            yield
        finally:
            with self._condition:
                self._closing = True
                self._condition.notify()
            self._watchdog.join()
            self._watchdog = None
            signal.signal(_DEADLINE_SIGNAL, previous)  # type: ignore[arg-type]

    @contextlib.contextmanager
    def running(self, what: str) -> Iterator[None]:
        """One step (or the trial calls) under the deadline."""
        if self._watchdog is None:
            yield
            return
        with self._condition:
            self.what, self._armed, self._fired, self._until = what, True, False, time.monotonic() + self.seconds
            self._condition.notify()
        try:
            yield
        finally:
            with self._condition:
                self._armed, self._until = False, None

    def _watch(self) -> None:
        with self._condition:
            while not self._closing:
                left = None if self._until is None else self._until - time.monotonic()
                if left is None or left > 0:
                    self._condition.wait(left)
                    continue
                if self._fired:  # the stop was raised GRACE_S ago and the step still runs: the code caught it
                    running = self._running() or "your code"
                    abandon(f"{self.what} ran past the {self.seconds:g} s deadline (--impl-deadline) in {running}", 1)
                self._fired, self._until = True, time.monotonic() + GRACE_S
                signal.pthread_kill(self._main, _DEADLINE_SIGNAL)  # type: ignore[arg-type]

    def _expired(self, signum: int, frame: Any) -> None:
        if self._armed:  # a signal that arrives after its step ended is ignored
            raise StopLearnerCode(f"{self.what} ran past the {self.seconds:g} s deadline (--impl-deadline)", "deadline")


@dataclass
class LearnerRun:
    """The learner's code in a run: the model that runs it, the cnn model it wraps, and what to say about it."""

    options: LearnerOptions
    code: LearnerCode
    cnn_model: Model  # cnn's layers, sharing the parameters and generators of ``model``
    model: Model  # the model that trains: learner layers where the file defines them
    unwritten: dict[str, str]  # table name -> why its layers stay cnn's

    @property
    def ops(self) -> dict[str, str]:
        return learner_ops(self.cnn_model, self.code, frozenset(self.unwritten))

    def describe(self) -> list[str]:
        """The lines at the start of the run: which layers run the learner's code, and which stay cnn's."""
        by_op: dict[str, list[str]] = {}
        for layer, op in self.ops.items():
            by_op.setdefault(op, []).append("the loss" if layer == "loss" else layer)
        uses = "; ".join(f"{', '.join(names)} ({op})" for op, names in by_op.items())
        lines = [f"learner code {self.code.label}: {uses}"]
        own = [layer.name for layer in self.cnn_model.all_layers() if layer.name not in self.ops and not layer.children()]
        own += ["the loss"] if "loss" not in self.ops else []
        lines += [f"  cnn's own code: {', '.join(own)}"] if own else []
        lines += [f"  note: {why}; its layers use cnn's" for why in self.unwritten.values()]
        types = {layer.type_name for layer in self.cnn_model.all_layers()}
        lines += [f"  note: {half}: its layers use cnn's" for op, half in self.code.half_pairs() if op in types]
        if self.options.check_steps:
            lines.append(f"  the first {self.options.check_steps} steps are checked against cnn's own code (--impl-check-steps)")
        return lines

    def record(self, paths: RunPaths) -> dict[str, Any]:
        """Copy the file into the run folder (if not there yet) and return run.json's entry."""
        copy_path = paths.learner_code / self.code.path.name
        if not copy_path.is_file():
            paths.learner_code.mkdir(exist_ok=True)
            atomic_write(copy_path, lambda handle: handle.write(self.code.source))
        record = LearnerRecord(self.code.path.name, self.code.sha256, str(copy_path.relative_to(paths.root)), self.ops)
        return record.as_dict(str(self.options.file))

    def resume_args(self) -> tuple[str, ...]:
        return ("--impl", str(self.options.file))


def start_learner_code(options: LearnerOptions, code: LearnerCode, model: Model) -> LearnerRun:
    """Wrap the model in the learner's code, after one trial call of each function; refuses (CnnError) before anything is written."""
    if not learner_ops(model, code):
        types = sorted({layer.type_name for layer in model.all_layers() if layer.type_name in LEARNER_LAYERS})
        wanted = [f"{op}_forward/{op}_backward" for op in types]
        wanted += [model.loss.name] if model.loss.name in LEARNER_LOSSES else []
        raise CnnError(f"--impl: {options.file}: defines none of the functions this model uses ({', '.join(wanted)})")
    deadline = Deadline(options.deadline)
    try:
        with deadline.installed(), deadline.running("the trial call of your functions"):
            unwritten = find_unwritten(use_learner_code(model, code))
    except StepStopped as stop:
        raise CnnError(f"--impl: {options.file}: {stop.message}") from None
    if not learner_ops(model, code, frozenset(unwritten)):
        raise CnnError(f"--impl: {options.file}: every function this model uses is not written yet: {'; '.join(unwritten.values())}")
    return LearnerRun(options, code, model, use_learner_code(model, code, frozenset(unwritten)), unwritten)


def check_same_file(paths: RunPaths, code: LearnerCode) -> None:
    """A resumed --impl run continues with the very file it started with (the same SHA-256)."""
    recorded = recorded_learner(paths)
    if recorded is None:
        raise CnnError(f"--impl: {paths.root} trained with cnn's own code; resume it without --impl (or start a new run with it)")
    if recorded.sha256 != code.sha256:
        raise CnnError(
            f"--impl: {code.path} is {code.label}, but {paths.root} trained with {recorded.label}; "
            f"resume with that file (its copy: {paths.root / recorded.copy}), or start a new run"
        )


def check_resume_without_impl(paths: RunPaths) -> None:
    """A run that trained with learner code does not silently continue with cnn's."""
    recorded = recorded_learner(paths)
    if recorded is not None:
        raise CnnError(
            f"{paths.root} trained with learner code {recorded.label}; resume with --impl and that file "
            f"(its copy: {paths.root / recorded.copy})"
        )


class LearnerStep:
    """One training step of an --impl run, under the deadline; for the first steps, the check's steps after it.

    The check compares the learner's code with cnn's own on the same batches from the
    same weights. It runs in float64 (:func:`cnn_cli.learn.learner_check.float64_copy`):
    a float64 run is compared as it is; a float32 run's steps are repeated by a float64
    twin that runs the learner's code, beside the float64 reference with cnn's.
    """

    def __init__(self, run: LearnerRun, interrupt: InterruptFlag, log: Any) -> None:
        self.run, self.interrupt, self.log = run, interrupt, log
        self.deadline = Deadline(run.options.deadline, lambda: run.code.running)
        self._stopped = False  # a second signal raised the stop inside the learner's code
        self.check: WeightCheck | None = None
        self._reference: TrainState | None = None  # cnn's own code
        self._twin: TrainState | None = None  # the learner's code in float64 (None: the run itself is float64)

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """For the length of the fit: the deadline's handler, and a second Ctrl-C that stops the learner's code."""
        self.interrupt.on_signal = self._signal
        try:
            with self.deadline.installed():
                yield
        finally:
            self.interrupt.on_signal = None

    def _signal(self, repeated: bool) -> None:
        running = self.run.code.running
        if running is None:
            return
        this = signals.describe(signals.exit_code() - signals.EXIT_BASE)  # the signal being handled
        if repeated and self._stopped:  # the stop raised at the second signal was caught by the learner's code
            abandon(f"{running} did not stop at the second {this}", signals.exit_code())
        if repeated:
            self._stopped = True
            raise StopLearnerCode(f"a second {this} came", this, signals.exit_code())
        self.log(f"stopping after this step ({running} is running); Ctrl-C again to stop your code now")

    def __call__(self, state: TrainState, x: np.ndarray, y: np.ndarray) -> None:
        checking = self.run.options.check_steps > 0 and (self.check is None or self.check.steps < self.run.options.check_steps)
        if checking and self.check is None:
            self._start_check(state)
        batch = (x.copy(), y.copy()) if checking else None  # the learner's code gets copies, but be sure
        generators, before = model_rng_state(state.model), state.step
        try:
            self._guarded_step(state, x, y, f"step {state.step + 1}")
        except StepStopped:
            restore_rng_state(state.model, generators)  # a resume draws this step's dropout masks again
            raise
        if batch is not None and state.step > before:
            self._check_step(state, *batch)

    def _guarded_step(self, state: TrainState, x: np.ndarray, y: np.ndarray, what: str) -> None:
        try:
            with self.deadline.running(what):
                train_step(state, x, y)
        except StopLearnerCode as stop:  # the deadline passed while cnn's own code ran
            last = f"; the learner function called last: {self.run.code.last}" if self.run.code.last else ""
            raise LearnerStop(f"{stop.reason}{last}", True, stop.exit_code, stop.cause) from None

    def _start_check(self, state: TrainState) -> None:
        """The reference (cnn's own layers) and, for a float32 run, the learner's float64 twin: both from the weights,
        optimizer state and generators as they are now."""

        def replica(model: Model) -> TrainState:
            optimizer = copy.deepcopy(state.optimizer)
            optimizer.load_state_arrays({k: v.astype(np.float64) for k, v in state.optimizer.state_arrays().items()})
            return dataclasses.replace(state, model=model, optimizer=optimizer, totals=RunningTotals(), history=[], log=_quiet)

        self._reference = replica(float64_copy(self.run.cnn_model))
        if state.model.dtype != np.float64:
            twin = use_learner_code(float64_copy(self.run.cnn_model), self.run.code, frozenset(self.run.unwritten))
            self._twin = replica(twin)
        self.check = WeightCheck(list(state.model.params), state.step, repeated_in_float64=self._twin is not None)

    def _check_step(self, state: TrainState, x: np.ndarray, y: np.ndarray) -> None:
        """The same step for the check's models, then the comparison (and the diagnosis, at the first divergence)."""
        reference, twin, check = self._reference, self._twin, self.check
        if reference is None or check is None:  # pragma: no cover - started by __call__
            return
        began = time.perf_counter()
        if twin is not None:
            twin.step = state.step - 1
            self._guarded_step(twin, x, y, f"step {state.step}'s float64 check")
        before = None
        if check.first is None:  # kept for the diagnosis, should this step be the first to diverge
            before = ({name: value.copy() for name, value in reference.model.params.items()}, model_rng_state(reference.model))
        reference.step = state.step - 1
        train_step(reference, x, y)
        learner = twin.model if twin is not None else state.model
        if check.compare(state.step, learner.params, reference.model.params) and before is not None:
            self._diagnose(reference.model, before, x, y)
        if check.steps >= self.run.options.check_steps:
            self._reference = self._twin = None  # done: free their memory
        check.seconds += time.perf_counter() - began

    def _diagnose(self, reference: Model, before: tuple[dict[str, np.ndarray], dict[str, Any]], x: np.ndarray, y: np.ndarray) -> None:
        """Which learner function differs from cnn's on this batch, from the weights before the step; said at once in brief."""
        if self.check is None or self.check.first is None:  # pragma: no cover - called at the first divergence
            return
        probe = copy.deepcopy(reference)
        probe.load_params(before[0])
        restore_rng_state(probe, before[1])
        self.check.suspects = diagnose(probe, self.run.code, x, y, frozenset(self.run.unwritten))
        step, tensor, difference = self.check.first
        self.log(f"note: after step {step} your model's {tensor} is {difference:.1e} away from cnn's; the report at the end says where")


def _quiet(line: str) -> None:
    pass

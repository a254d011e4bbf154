"""The range of every number a command-line option takes: finite, documented, checked before any work starts.

Each numeric option of every command takes its type from here (the table below), so
the range is said once: click checks it while parsing (one ``error:`` line, exit 2,
before a config is read or a model built) and ``--help`` prints it beside the option
(``[10<=x<=100000]``). Floats must also be finite: NaN passes every comparison, so
click's own range check would let it through. Whole numbers may be written ``1e3``.

Config keys have their ranges in ``config/sections.py``; a sweep's trial count in
``sweep/spec.py`` (counted before its grid is expanded); the entries of ``cnn explain``'s
matrices in ``learn/explain/report.py`` (:data:`EXPLAIN_ENTRY_LIMIT`).
"""

from __future__ import annotations

import math
from typing import Any

import click

from cnn_cli.learn.explain.report import MAX_ENTRY as EXPLAIN_ENTRY_LIMIT

__all__ = ["EXPLAIN_ENTRY_LIMIT"]


class Count(click.IntRange):
    """A whole number in [min, max]; ``1e3`` is read as 1000, ``1e20`` is refused by the range, not as "not an integer"."""

    name = "integer"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                number = None
            if number is not None and not value.strip().lstrip("+-").isdigit():
                if not math.isfinite(number) or number != int(number):
                    self.fail(f"{value!r} is not a whole number", param, ctx)
                value = str(int(number))
        return super().convert(value, param, ctx)


class Amount(click.FloatRange):
    """A finite number in its range (NaN and ±inf refused: NaN would pass click's comparisons)."""

    name = "number"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


# ---------------------------------------------------------------- the table: every numeric option of every command

# train --seed and gradcheck --seed are checked as the config key train.seed is (an int >= 0: any such int seeds
# NumPy), so that their message names the key.
SEED = Count(0, 2**63 - 1)  # exercise check --seed
LR = Amount(1e-12, 1e4)  # lr-find --min-lr / --max-lr: a range test diverges long before 1e4
LR_FIND_STEPS = Count(10, 100_000)  # lr-find --steps
OVERFIT_BATCHES = Count(1, 100_000)  # train --overfit-batches
IMPL_CHECK_STEPS = Count(0, 100_000)  # train --impl-check-steps
IMPL_DEADLINE_S = Amount(0, 86_400, min_open=True)  # train --impl-deadline: up to a day per step
EXERCISE_TIMEOUT_S = Amount(0, 3_600, min_open=True)  # exercise check --timeout: up to an hour per stage
GRADCHECK_BATCH = Count(1, 1_000_000)  # gradcheck --batch-size (the memory estimate refuses what does not fit)
GRADCHECK_SHOW = Count(0, 1_000)  # gradcheck --show
GRADCHECK_ATOL = Amount(0.0, 1.0)  # gradcheck --atol
TOP_K = Count(1, 1_000)  # predict --top-k (more than the classes shows them all)
PORT = Count(0, 65_535)  # serve --port (0 picks a free one)
WORKERS = Count(1, 1_024)  # sweep --workers
CONNECT_TIMEOUT_S = Amount(0, 3_600, min_open=True)  # sweep --connect-timeout: connect and handshake together
GRADCHECK_TIMEOUT_S = Amount(0, 3_600, min_open=True)  # gradcheck --timeout (with --impl): up to an hour per function
SUMMARY_DEPTH = Count(1, 64)  # summary --depth

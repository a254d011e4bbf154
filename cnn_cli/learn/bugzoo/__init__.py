"""The bug zoo: deliberately wrong backward passes, and what a gradient check says about each.

``cnn gradcheck --break NAME`` swaps one of these into the library for the length
of one check, runs the usual numeric-gradient comparison and puts the result
beside the explanation: which tensors fail and why, which pass and why, and which
docs section derives the right formula. Each mistake is one a learner really
makes (CS231n's assignments are full of them), and ``cnn exercise check`` names
them when a learner's gradient matches one. Some entries are lessons in what a
check can miss: ``=`` instead of ``+=`` in col2im passes when stride = kernel size,
because then no two windows share an input pixel; a max-pool that gives a tie's
gradient to every tied input passes because a random batch never ties.

- :mod:`.table`: every entry (:data:`MUTATIONS`), from :mod:`.entries_window`,
  :mod:`.entries_pointwise` and :mod:`.entries_residual`; :mod:`.mutation` says what an entry holds;
- :mod:`.patches`, :mod:`.patches_pointwise`: the wrong code, as context managers
  that swap it into the library and restore it on exit;
- :mod:`.nets`: the small nets each mistake is shown on;
- :mod:`.report`: what ``cnn gradcheck --break`` prints.
"""

from __future__ import annotations

from cnn_cli.learn.bugzoo.mutation import everything as _everything
from cnn_cli.learn.bugzoo.nets import (
    AVGPOOL_NET,
    BINARY_NET,
    CONV_STACK,
    DENSE_NET,
    DROPOUT_NET,
    LEAKY_STACK,
    PATCHES,
    POOL_NET,
    RESIDUAL_NET,
    SQUASH_NET,
)
from cnn_cli.learn.bugzoo.report import explain_mutation, get_mutation, gradcheck_report, list_mutations
from cnn_cli.learn.bugzoo.table import MUTATIONS, Mutation, mutations_for

__all__ = [
    "AVGPOOL_NET",
    "BINARY_NET",
    "CONV_STACK",
    "DENSE_NET",
    "DROPOUT_NET",
    "LEAKY_STACK",
    "MUTATIONS",
    "PATCHES",
    "POOL_NET",
    "RESIDUAL_NET",
    "SQUASH_NET",
    "Mutation",
    "_everything",
    "explain_mutation",
    "get_mutation",
    "gradcheck_report",
    "list_mutations",
    "mutations_for",
]

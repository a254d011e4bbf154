"""The bug zoo's table: every entry, in the order ``cnn gradcheck --break list`` shows them.

An entry is used twice. ``cnn gradcheck --break NAME`` swaps it into the library
for one whole-model gradient check. ``cnn exercise check`` runs cnn's own backward
with it swapped in on the learner's inputs, and when the learner's gradient equals
what the mistake gives, names the mistake (``op`` says for which exercise).
"""

from __future__ import annotations

from cnn_cli.learn.bugzoo import entries_norm, entries_pointwise, entries_residual, entries_window
from cnn_cli.learn.bugzoo.mutation import ALL, BELOW, OWN, WEIGHTS, Mutation, everything

__all__ = ["ALL", "BELOW", "MUTATIONS", "OWN", "WEIGHTS", "Mutation", "mutations_for"]

MUTATIONS: dict[str, Mutation] = {
    m.name: m for m in [*entries_window.ENTRIES, *entries_pointwise.ENTRIES, *entries_norm.ENTRIES, *entries_residual.ENTRIES]
}
for _name, _mutation in list(MUTATIONS.items()):
    if _mutation.reach == ALL:  # a wrong loss gradient spoils every tensor of its net
        MUTATIONS[_name] = Mutation(**{**vars(_mutation), "fails": everything(_mutation.demo_config)})


def mutations_for(op: str) -> list[Mutation]:
    """The mistakes a learner's ``op`` (an exercise name) can make, in table order."""
    return [m for m in MUTATIONS.values() if m.op == op]

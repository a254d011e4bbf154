"""The teaching kit: the notes' worked examples (``explain``), gradient checks and
the bug zoo, learner-implementation checks, the backward views, feature maps,
the profile and the backprop guide (``guide``). It computes; ``pictures`` draws.
"""

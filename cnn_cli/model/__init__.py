"""The Model: a stack of layers with a loss, built from a config, with forward,
backward, the per-layer trace and the parameter and gradient dicts the
optimizer sees.
"""

"""Sweep files shipped with cnn: `cnn sweep sweep-lr` finds them by name."""

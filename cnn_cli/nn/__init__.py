"""Pure array math: every forward and hand-written backward, as functions of arrays.

Layers (``cnn_cli.layers``) hold parameters and call these functions; nothing in
this package keeps state between calls except the ``cache`` a forward returns.
"""

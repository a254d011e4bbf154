"""The command line: one module per command group, built with click.

Only this package knows click. Each command parses its options, calls one plain
function of the packages below, and prints; it holds no math and no training
logic. ``main.py`` registers every command on the root group of ``group.py``.
"""

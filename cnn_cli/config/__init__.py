"""The run configuration: one typed description of every key (``sections``), read
from YAML safely (``yaml_text``), with ``--set`` overrides (``overrides``), checked
across sections and against the model's shapes and memory (``build``, ``memory``),
and loaded by built-in name or path (``load``).
"""

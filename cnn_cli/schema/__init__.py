"""Typed dataclasses validated field by field: the markers a field carries
(Range, OneOf, ...), conversion with errors that name the key path, and the
JSON Schema generated from the same classes. Generic: it knows nothing of cnn's
configs, so layers and the config can both use it.
"""

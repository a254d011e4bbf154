"""The figures, one module per family: learning curves, confusion and mistakes,
filters and feature maps, gradient flow, backward views, lr-find and compare,
plus ``run`` (every picture of a run folder) and ``viz`` (one input).
"""

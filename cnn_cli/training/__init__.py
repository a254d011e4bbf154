"""Training: ``train`` sets a run up, ``loop`` runs epochs of steps, ``state``
holds what the loop and its callbacks share, ``callbacks`` do one job each
(records, checkpoints, metrics, early stopping, progress, gradients.csv,
TensorBoard), plus dry runs, lr-find and transfer from another checkpoint.
"""

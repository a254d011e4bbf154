"""Sweeps: many training runs at once on Dask (an embedded LocalCluster, or a cluster via ``--scheduler``).

- :mod:`~cnn_cli.sweep.spec`: the sweep file, validated; grid and random trials.
- :mod:`~cnn_cli.sweep.trial`: one trial on a worker; its records come back as bytes.
- :mod:`~cnn_cli.sweep.data`: how workers without a shared filesystem find the dataset.
- :mod:`~cnn_cli.sweep.engine`: the client: cluster, submission, Ctrl-C, ``--resume``.
- :mod:`~cnn_cli.sweep.report`: sweep.csv, the table and sweep.png.
- the ``cnn sweep`` command itself is :mod:`cnn_cli.cli.sweep`.

Dask is an extra (``pip install ".[sweep]"``); nothing here imports it until a sweep runs.
"""

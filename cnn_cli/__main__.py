"""``python -m cnn_cli`` runs the same CLI as ``cnn``."""

from cnn_cli.cli.main import main

main()

"""cnn: a convolutional network trainer whose backward passes are written by hand in NumPy."""

__version__ = "0.1.0"

"""Configs shipped with cnn: `cnn train --config mnist` finds them by name."""

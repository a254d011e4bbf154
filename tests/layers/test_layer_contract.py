"""The declared layer contract, checked for every registered layer type.

Each type has a spec that the config loader validates, ``build(spec, input_shape, ctx)``
that sets the shapes shape inference promised, and a forward that keeps nothing for
a backward when ``keep_cache`` is False (evaluation and prediction).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from cnn_cli.config.build import model_config_from_dict
from cnn_cli.layers import LAYER_SPECS, LAYER_TYPES, BuildContext
from cnn_cli.model.network import build_model

MINIMAL_OPTIONS = {
    "conv2d": {"out_channels": 3, "kernel_size": 3, "padding": 1},
    "padding": {"padding": 1},
    "maxpool2d": {"kernel_size": 2},
    "avgpool2d": {"kernel_size": 2},
    "leaky_relu": {"negative_slope": 0.1},
    "dense": {"out_features": 4},
    "dropout": {"p": 0.5},
}
IMAGE = (2, 6, 6)
FEATURES_ONLY = {"batchnorm1d": (6,)}  # layers that take (F,), not an image


def built(type_name: str):
    shape = FEATURES_ONLY.get(type_name, IMAGE)
    model_config = model_config_from_dict(
        {"input_shape": list(shape), "layers": [{"type": type_name, **MINIMAL_OPTIONS.get(type_name, {})}]}
    )
    spec = model_config.layers[0]
    layer = LAYER_TYPES[type_name].build(spec, shape, BuildContext(np.random.default_rng(0), np.dtype("float64"), "kaiming"))
    return spec, layer


def test_every_layer_type_has_a_spec_whose_type_is_its_registry_name() -> None:
    assert set(LAYER_SPECS) == set(LAYER_TYPES)
    for name, spec_class in LAYER_SPECS.items():
        assert next(f.default for f in dataclasses.fields(spec_class) if f.name == "type") == name
        assert LAYER_TYPES[name].type_name == name


@pytest.mark.parametrize("type_name", list(LAYER_TYPES))
def test_build_gives_the_shapes_and_parameter_count_shape_inference_promised(type_name: str) -> None:
    spec, layer = built(type_name)
    assert layer.name == f"{spec.name_prefix or type_name}1" == spec.name
    shape = layer.input_shape
    assert shape == FEATURES_ONLY.get(type_name, IMAGE)
    assert layer.output_shape == spec.output_shape(shape)
    assert sum(p.size for p in layer.params.values()) == spec.num_params(shape)
    out = layer.forward(np.random.default_rng(1).standard_normal((5, *shape)))
    assert out.shape == (5, *layer.output_shape)


@pytest.mark.parametrize("training", [False, True], ids=["eval", "training"])
@pytest.mark.parametrize("type_name", list(LAYER_TYPES))
def test_keep_cache_false_keeps_nothing_for_a_backward(type_name: str, training: bool) -> None:
    """Every layer that needs a cache for its backward refuses a backward after a cache-free forward,
    instead of computing a gradient from a stale or missing cache."""
    _, layer = built(type_name)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((5, *layer.input_shape))
    layer.training = training
    kept = layer.forward(x)
    grad = rng.standard_normal(kept.shape)
    expected = layer.backward(grad)
    layer.keep_cache = False
    dropped = layer.forward(x)
    if not (type_name == "dropout" and training):  # a training dropout draws a fresh mask
        assert np.array_equal(dropped, kept)
    needs_cache = type_name not in ("padding",) and not (type_name == "dropout" and not training)
    if needs_cache:
        with pytest.raises(RuntimeError, match="backward called before forward"):
            layer.backward(grad)
    else:
        np.testing.assert_array_equal(layer.backward(grad), expected)


def test_the_model_builder_rechecks_nothing_a_loaded_config_was_checked_for() -> None:
    """build_model takes a validated ModelConfig as it is: no second validator runs (the loader's work is done once)."""
    model_config = model_config_from_dict({"input_shape": [1, 8, 8], "layers": [{"type": "flatten"}, {"type": "dense", "out_features": 3}]})
    model = build_model(model_config)
    assert [layer.name for layer in model.layers] == ["flatten1", "fc1"]
    assert model.output_shape == (3,)

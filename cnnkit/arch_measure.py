"""Measuring a built model: parameter counts by layer type, depth in weight layers, cheap blueprints."""
from __future__ import annotations

import numpy as np

from cnnkit.arch_blocks import WEIGHT_LAYERS
from cnnkit.env import import_tensorflow

import_tensorflow()  # before Keras: hides TensorFlow's C++ start-up banner
import keras  # noqa: E402

__all__ = ["blueprint", "trainable_params", "params_by_type", "depth"]


def blueprint(builder, *args, **kwargs):
    """Return ``builder(*args, **kwargs)`` with the values of its weights not yet allocated.

    The model is built inside ``keras.StatelessScope(initialize_variables=False)``:
    every layer, output shape and weight shape exists, so parameter counts,
    :func:`depth` and ``cnnkit.params.explain`` work at once, but Keras fills in
    each weight only when it is first used (a forward pass, ``get_weights``,
    training). Measuring AlexNet this way takes a fraction of a second and almost
    no memory instead of seconds and the 244 MB (plus the initialisers' scratch)
    of its float32 weights. The values drawn later are random but not those of an
    ordinary build with the same seed. ``keras.backend.clear_session()`` forgets
    the pending weights of blueprints no longer in use.
    """
    if not callable(builder):
        raise TypeError(f"builder must be a function returning a Keras model, got {type(builder).__name__}")
    with keras.StatelessScope(initialize_variables=False):
        return builder(*args, **kwargs)


def trainable_params(model) -> int:
    """Number of trainable parameters (what torchvision calls parameters): Keras' count over ``trainable_weights``."""
    return int(sum(int(np.prod(w.shape)) for w in model.trainable_weights))


def params_by_type(model) -> dict[str, int]:
    """Trainable parameters per layer type, e.g. ``{"Conv2D": 2469696, "Dense": 58631144, ...}`` (zeros left out)."""
    totals: dict[str, int] = {}
    for layer in model.layers:
        n = trainable_params(layer)
        if n:
            totals[type(layer).__name__] = totals.get(type(layer).__name__, 0) + n
    return totals


def depth(model) -> int:
    """Depth in weight layers: the most convolution/dense layers on any path from input to output.

    This is how the papers count (AlexNet 8, GoogLeNet 22, ResNet-50 50): parallel
    branches and shortcut projections do not add to it; BN, pooling and activations
    do not count. Nested models count with their own depth; a layer called more than
    once counts once on each path through it.

    The call graph is read from ``model.get_config()``, Keras' public record of it:
    ``layer.input``/``layer.output`` give only a layer's first call, and a nested
    functional model's ones are its own inner tensors, so they cannot follow a
    shared layer or a nested model; the configuration lists every call of every
    layer (``inbound_nodes``) with the (layer, call, output) each argument came from.
    Reading it serialises every layer's configuration: some 30-200 ms for the
    ImageNet models.
    """
    if isinstance(model, keras.Sequential):  # a chain: no call graph in its configuration
        return sum(_own_depth(layer) for layer in model.layers)
    config = model.get_config()
    if "layers" not in config or not all("inbound_nodes" in layer for layer in config["layers"]):
        raise TypeError(f"depth needs a functional or Sequential Keras model, got {type(model).__name__} "
                        "(a subclassed model keeps no call graph to measure)")
    calls = {layer["name"]: layer["inbound_nodes"] for layer in config["layers"]}
    memo: dict[tuple[str, int], int] = {}

    def longest(name: str, call: int) -> int:
        """Most weight layers on a path from an input up to and including call ``call`` of layer ``name``."""
        if (name, call) not in memo:
            parents = [longest(*source) for source in _sources(calls[name][call])] if calls[name] else []
            memo[(name, call)] = _own_depth(model.get_layer(name)) + max(parents, default=0)
        return memo[(name, call)]

    # A functional model keeps only the calls its outputs are computed from, so the deepest
    # call listed is an output's. (The ``output_layers`` entry is not read: it numbers the
    # calls of a nested model from 1, its arguments from 0.)
    return max(longest(name, call) for name, nodes in calls.items() for call in range(max(len(nodes), 1)))


def _own_depth(layer) -> int:
    """Weight layers a layer adds to a path: a nested model's own depth, 1 for a conv/dense layer, else 0."""
    if hasattr(layer, "layers") and hasattr(layer, "outputs"):  # a nested functional or Sequential model
        return depth(layer)
    return 1 if type(layer).__name__ in WEIGHT_LAYERS else 0


def _sources(arguments):
    """The (layer name, call index) of every Keras tensor in a call's serialised arguments (any nesting)."""
    if isinstance(arguments, dict):
        if arguments.get("class_name") == "__keras_tensor__":
            name, call, _ = arguments["config"]["keras_history"]
            yield name, call
        else:
            for value in arguments.values():
                yield from _sources(value)
    elif isinstance(arguments, (list, tuple)):
        for value in arguments:
            yield from _sources(value)

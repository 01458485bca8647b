"""Hidden units as interchangeable parts: a dense net to start from zeros, unit swaps, how alike units are.

A layer's units (the output columns ``[..., j]`` of its kernel, Dense
(n_in, n_out) or Conv2D (kh, kw, c_in, c_out)) enter the rest of the network
only through the next layer's input rows ``[..., j, :]``. Two facts of lesson
08 follow from that:

* **Symmetry of the start.** If every unit of a layer starts with the same
  weights, every unit computes the same activation and receives the same
  gradient, so no update can tell them apart: they stay identical for the
  whole training (:func:`unit_spread` measures it; 0 means identical). With
  all-zero weights and ReLU it is worse: every pre-activation is 0, ReLU's
  slope there is 0, and the hidden layers receive no gradient at all.
* **Many equally good minima.** Reordering the units of a layer (its kernel's
  columns and bias, the per-unit weights of the channel-wise layers after it,
  and the next kernel's rows the same way) gives different weights that
  compute exactly the same function (:func:`permute_units`,
  :func:`swap_units`). Every minimum thus has copies, and the loss on the
  straight line between two copies (:func:`cnnkit.loss_slices.loss_between`)
  shows whether it is convex there.
"""
from __future__ import annotations

import numpy as np

from cnnkit._validate import as_float_array, integer, non_negative_int, positive_int_sequence
from cnnkit.env import import_tensorflow

import_tensorflow()  # before Keras: hides TensorFlow's C++ start-up banner
import keras  # noqa: E402
from keras import layers  # noqa: E402

__all__ = ["CHANNELWISE", "dense_net", "permute_units", "swap_units", "unit_spread"]

#: Layers that act on each unit (channel) separately: the units can be reordered through them.
CHANNELWISE = (layers.ReLU, layers.Activation, layers.LeakyReLU, layers.MaxPooling2D, layers.AveragePooling2D,
               layers.GlobalAveragePooling2D, layers.GlobalMaxPooling2D, layers.Dropout, layers.BatchNormalization)
_WEIGHTED = (layers.Dense, layers.Conv2D)


def dense_net(input_shape=(32, 32, 3), classes: int = 10, *, hidden=(32, 32), activation: str = "relu",
              kernel_initializer="glorot_uniform", seed: int = 0, name: str = "dense_net"):
    """A fully connected classifier on flattened images: Flatten -> [Dense(h_i, activation)] -> Dense(classes, softmax).

    Shapes: input ``input_shape`` (H, W, C), flattened to H*W*C; hidden layer i
    (named ``dense{i}``, from 1) has ``hidden[i - 1]`` units; output (classes,)
    probabilities (layer ``classifier``). ``kernel_initializer`` (a Keras
    initializer or its name: ``"zeros"`` for an all-zero start) draws every
    kernel; biases start at 0, as in Keras. ``seed`` fixes the random draws.
    """
    hidden = positive_int_sequence(hidden, "hidden")
    classes = integer(classes, "classes", minimum=2)
    keras.utils.set_random_seed(non_negative_int(seed, "seed"))
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = layers.Flatten(name="flatten")(inputs)
    for i, width in enumerate(hidden, start=1):
        x = layers.Dense(width, activation=activation, kernel_initializer=kernel_initializer, name=f"dense{i}")(x)
    outputs = layers.Dense(classes, activation="softmax", kernel_initializer=kernel_initializer, name="classifier")(x)
    return keras.Model(inputs, outputs, name=name)


def unit_spread(kernel) -> float:
    """Largest difference between two units of a layer: ``max_{i, j, k} |W[i, j] - W[i, k]|``.

    ``kernel`` is a Dense kernel (n_in, n_out) or a Conv2D kernel
    (kh, kw, c_in, c_out); units are the columns along the last axis and the
    other axes are flattened into i. Computed as ``max_i (max_j W[i, j] -
    min_j W[i, j])``. 0 means every unit has the same incoming weights (for a
    layer whose biases agree too: the units compute the same function).
    """
    w = as_float_array(kernel, "kernel", ndim=(2, 3, 4, 5), layout="(..., units)")
    if w.size == 0:
        raise ValueError(f"kernel must hold weights, got an empty array of shape {w.shape}")
    w = w.reshape(-1, w.shape[-1])
    return float(np.max(w.max(axis=1) - w.min(axis=1)))


def swap_units(model, layer: str, i: int, j: int, *, check: bool = True):
    """A copy of ``model`` with units ``i`` and ``j`` of layer ``layer`` exchanged; same function, other weights.

    See :func:`permute_units`, of which this is the transposition (i j).
    """
    n = _units(_weighted_layer(model, layer))
    i = integer(i, "i", minimum=0, maximum=n - 1)
    j = integer(j, "j", minimum=0, maximum=n - 1)
    if i == j:
        raise ValueError(f"i and j must name two different units of layer {layer!r}, got {i} twice")
    order = np.arange(n)
    order[[i, j]] = [j, i]
    return permute_units(model, layer, order, check=check)


def permute_units(model, layer: str, order, *, check: bool = True):
    """A copy of ``model`` whose layer ``layer`` has its units in the order ``order``.

    Unit ``k`` of the copy is unit ``order[k]`` of ``model``: the kernel's
    columns ``W[..., order]`` and the bias ``b[order]`` of ``layer`` move
    together with the per-unit weights of the channel-wise layers after it
    (:data:`CHANNELWISE`, e.g. batch norm's gamma, beta, mean and variance) and
    with the next Dense or Conv2D layer's input rows ``V[..., order, :]``, so
    the copy computes the same outputs: ``f_copy(x) = f(x)`` for every x. The
    layers are read in ``model.layers`` order, which must be a chain there.
    ``check`` compares the two models on 8 seeded random inputs and raises if
    the outputs differ (a branch or reshape after the layer, which the
    reordering does not follow). Returns a new model; ``model`` is unchanged.
    """
    target = _weighted_layer(model, layer)
    n = _units(target)
    order = np.asarray(order)
    if order.shape != (n,) or not np.issubdtype(order.dtype, np.integer) or sorted(order.tolist()) != list(range(n)):
        raise ValueError(f"order must be a permutation of the {n} units of layer {layer!r} (each of 0..{n - 1} "
                         f"once), got {order.tolist() if order.size <= 20 else f'an array of shape {order.shape}'}")
    chain = list(model.layers)
    between, following = [], None
    for lyr in chain[chain.index(target) + 1:]:
        if isinstance(lyr, _WEIGHTED):
            following = lyr
            break
        if not isinstance(lyr, CHANNELWISE):
            raise ValueError(f"layer {lyr.name!r} ({type(lyr).__name__}) lies between {layer!r} and the next Dense "
                             f"or Conv2D layer and does not act on each unit separately; units can only be "
                             f"reordered through {', '.join(c.__name__ for c in CHANNELWISE)}")
        between.append(lyr)
    if following is None:
        raise ValueError(f"layer {layer!r} is the last Dense or Conv2D layer of the model: its units are the "
                         f"model's outputs, and reordering them changes what the model computes")
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    copy.get_layer(target.name).set_weights([w[..., order] for w in target.get_weights()])
    for lyr in between:
        weights = lyr.get_weights()
        if any(w.shape != (n,) for w in weights):
            raise ValueError(f"layer {lyr.name!r} between {layer!r} and {following.name!r} has weights of shapes "
                             f"{[w.shape for w in weights]}; expected one value per unit, ({n},)")
        copy.get_layer(lyr.name).set_weights([w[order] for w in weights])
    kernel, *rest = following.get_weights()
    if kernel.shape[-2] != n:
        raise ValueError(f"layer {following.name!r} after {layer!r} reads {kernel.shape[-2]} inputs per position, "
                         f"not the {n} units of {layer!r} (a reshape between them?)")
    copy.get_layer(following.name).set_weights([kernel[..., order, :], *rest])
    if check:
        _check_same_function(model, copy, layer)
    return copy


def _check_same_function(model, copy, layer):
    shape = tuple(model.inputs[0].shape[1:])
    probe = np.random.default_rng(0).uniform(0.0, 1.0, (8, *shape)).astype(np.float32)
    a = np.asarray(model(probe, training=False), dtype=np.float64)
    b = np.asarray(copy(probe, training=False), dtype=np.float64)
    gap = float(np.max(np.abs(a - b)))
    if not gap <= 1e-5 * max(1.0, float(np.max(np.abs(a)))):
        raise ValueError(f"reordering the units of layer {layer!r} changed the model's outputs by up to {gap:.3g}: "
                         f"another layer also reads them (a branch or a skip connection), which it does not follow")


def _weighted_layer(model, layer):
    if not isinstance(model, keras.Model):
        raise TypeError(f"model must be a Keras model, got {type(model).__name__}")
    if not isinstance(layer, str):
        raise TypeError(f"layer must be a layer's name (str), got {layer!r}")
    names = [lyr.name for lyr in model.layers]
    if layer not in names:
        raise ValueError(f"model {model.name!r} has no layer {layer!r}; its layers are {names}")
    found = model.get_layer(layer)
    if not isinstance(found, _WEIGHTED):
        raise ValueError(f"layer {layer!r} ({type(found).__name__}) has no kernel whose units could be reordered; "
                         f"expected a Dense or Conv2D layer")
    return found


def _units(lyr) -> int:
    return int(lyr.kernel.shape[-1])

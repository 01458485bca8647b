"""How the gradient of the loss reaches each layer: per-layer norms of d loss / d kernel on one batch.

``kernel_gradient_norms`` gives, for every layer of a Keras model that holds a
kernel (convolutions, dense layers), the L2 norm of the gradient of the mean
cross-entropy with respect to that kernel, in the order the layers run. Comparing
the first layer's norm with the last one's says whether the gradient shrinks or
grows on its way back through the network.
"""
from __future__ import annotations

import numpy as np

from cnnkit._validate import boolean, finite_array, numeric_array
from cnnkit.env import import_tensorflow

tf = import_tensorflow()  # before Keras: hides TensorFlow's C++ start-up banner
import keras  # noqa: E402


def kernel_layers(model) -> list[tuple[str, object]]:
    """``(name, layer)`` for every layer of ``model`` that holds a kernel, in network order.

    Network order is the order in which a forward pass runs the layers (Keras'
    ``model.layers``, topologically sorted), not the order in which they were
    created. A layer of a nested model is named ``"outer/inner"``. Raises
    TypeError for anything that is not a Keras model and ValueError for a model
    with no kernel at all.
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"model must be a Keras model, got {type(model).__name__}")
    found = list(_kernel_layers(model, prefix=""))
    if not found:
        raise ValueError(f"model {model.name!r} has no layer with a kernel (no Conv or Dense layer), "
                         "so there is no kernel gradient to measure")
    return found


def _kernel_layers(model, prefix: str):
    for layer in model.layers:
        name = prefix + layer.name
        if isinstance(layer, keras.Model):
            yield from _kernel_layers(layer, prefix=name + "/")
        elif isinstance(getattr(layer, "kernel", None), keras.Variable):
            yield name, layer


def kernel_gradient_norms(model, x, y, *, from_logits: bool = False) -> dict[str, float]:
    """L2 norm of the gradient of the mean cross-entropy with respect to each kernel of ``model``, on one batch.

    ``x``: a batch of N inputs of the model's input shape, e.g. images (N, H, W, C);
    uint8 images are scaled by 1/255, anything else is cast to float32 as it is.
    ``y``: their N integer labels, each in ``[0, K)`` for K outputs. The model runs
    in training mode (batch norm uses the batch's statistics, dropout is active), and
    the loss is the mean sparse cross-entropy

        L = -(1/N) * sum_n log p[n, y_n],

    where ``p`` (N, K) is the model's output: softmax probabilities (the default, as
    ``cnnkit.experiments.small_cnn`` gives), or logits turned into probabilities
    by a softmax when ``from_logits=True``. For each layer with a kernel ``W`` (a
    convolution's (kh, kw, C_in, C_out), a dense layer's (D_in, D_out)) the result
    holds ``||dL/dW||_2 = sqrt(sum of (dL/dW)^2 over every entry)``.

    Returns a dict layer name -> norm (a float), in network order
    (:func:`kernel_layers`); a kernel the loss does not depend on gets 0.0. The
    model is left as it was: the moving statistics a training-mode pass updates
    (and any other non-trainable state) are put back afterwards.
    """
    named = kernel_layers(model)
    from_logits = boolean(from_logits, "from_logits")
    x, y = numeric_array(x, "x"), numeric_array(y, "y")
    expected = tuple(model.inputs[0].shape[1:])
    if x.ndim != len(expected) + 1:
        raise ValueError(f"x must be a batch of inputs of shape (N, {', '.join(str(s) for s in expected)}) "
                         f"(rank {len(expected) + 1}), got shape {x.shape} (rank {x.ndim})")
    if any(e is not None and e != s for e, s in zip(expected, x.shape[1:])):
        raise ValueError(f"x holds inputs of shape {x.shape[1:]}, model {model.name!r} expects {expected}")
    if len(x) == 0:
        raise ValueError("x must hold at least one input, got an empty batch")
    if y.shape != (len(x),):
        raise ValueError(f"y must hold one label per input of x, shape ({len(x)},), got shape {y.shape}")
    classes = int(model.outputs[0].shape[-1])
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= classes:
        raise ValueError(f"y must hold integer labels in [0, {classes}) for the model's {classes} outputs, "
                         f"got dtype {y.dtype} with values from {y.min()} to {y.max()}")
    inputs = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else finite_array(x.astype(np.float32), "x")

    kernels = [layer.kernel for _, layer in named]
    saved_state = [v.numpy() for v in model.non_trainable_variables]
    try:
        with tf.GradientTape() as tape:
            outputs = model(tf.constant(inputs), training=True)
            if not from_logits:
                _check_probabilities(outputs, model.name)
            losses = keras.losses.sparse_categorical_crossentropy(tf.constant(y.astype(np.int64)), outputs,
                                                                  from_logits=from_logits)
            loss = tf.reduce_mean(losses)
        grads = tape.gradient(loss, kernels, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    finally:
        for variable, value in zip(model.non_trainable_variables, saved_state):
            variable.assign(value)
    return {name: float(tf.norm(g)) for (name, _), g in zip(named, grads)}


def _check_probabilities(outputs, model_name: str) -> None:
    """Raise if ``outputs`` (N, K) are not probabilities: a model that outputs logits needs ``from_logits=True``."""
    p = np.asarray(outputs, dtype=np.float64)
    if p.ndim != 2 or np.any(p < 0) or not np.allclose(p.sum(axis=1), 1.0, atol=1e-3):
        raise ValueError(f"model {model_name!r} does not output probabilities (rows of non-negative values "
                         f"summing to 1; here they sum to {p.sum(axis=-1).min():.3g}..{p.sum(axis=-1).max():.3g}): "
                         "if it outputs logits, pass from_logits=True")

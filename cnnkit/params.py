"""Parameter counts and multiply-adds, layer by layer, from the formulas.

The formulas live in :mod:`cnnkit.params_formulas`, the model walk in
:mod:`cnnkit.params_explain` and its table in :mod:`cnnkit.params_table`;
lessons use them all from here (``ck.params.explain(model)``).

Two levels:

* **Pure formulas** (no Keras needed), for lessons and exercises::

      conv_params(3, 1, 16)            # (3*3*1 + 1)*16 = 160
      conv_params(3, 1, 16, bias=False)  # 3*3*1*16 = 144
      dense_params(128, 64)            # (128 + 1)*64 = 8256
      bn_params(16)                    # ParamCount(trainable=32, non_trainable=32)
      conv_madds(5, 256, 128, 32)      # 5*5*256*128 * 32*32 multiply-adds

* **Models**: :func:`explain` walks a built Keras model (Sequential or Functional,
  nested models included) and returns one row per layer with its output shape,
  trainable and non-trainable counts, the formula filled in for that layer (for
  example ``(3*3*3 + 1)*16 = 448``) and its multiply-adds for one input.
  :func:`count` returns ``(trainable, non_trainable)``. A layer without a formula
  here raises :class:`UnsupportedLayerError` naming the layer and its type: the
  module never guesses.

Conventions
-----------
* Shapes are channels-last ``(H, W, C)`` unless a layer says ``channels_first``.
* A convolution with ``F_h x F_w`` kernels, ``C_in`` input channels, ``K`` filters
  and ``g`` groups has ``(F_h*F_w*C_in/g + 1)*K`` parameters (no ``+1`` without bias).
* **Multiply-adds** (multiply-accumulates, MACs) count the products of the weighted
  layers for one input: ``F_h*F_w*(C_in/g)*K`` per output position for a
  convolution, ``n_in*n_out`` per position for a dense layer. Bias additions,
  batch norm (foldable into the previous layer at inference), pooling, activations
  and merges are counted as 0, the convention of the ResNet and VGG papers (ResNet-50:
  about 3.9e9 at 224x224). ``None`` when the spatial size is not fixed.
* Frozen layers (``layer.trainable = False``) keep their weights, all counted as
  non-trainable, as Keras does.
"""
from __future__ import annotations

from cnnkit.params_explain import count, explain, explain_layer, profiler_flops, supported_layer_types
from cnnkit.params_formulas import (
    ParamCount, UnsupportedLayerError, bn_params, conv_madds, conv_params, dense_madds, dense_params,
    depthwise_madds, depthwise_params, separable_madds, separable_params,
)
from cnnkit.params_table import Explanation, LayerRow

__all__ = [
    "UnsupportedLayerError", "ParamCount", "LayerRow", "Explanation",
    "conv_params", "conv_madds", "dense_params", "dense_madds", "bn_params",
    "depthwise_params", "depthwise_madds", "separable_params", "separable_madds",
    "explain", "explain_layer", "count", "supported_layer_types", "profiler_flops",
]

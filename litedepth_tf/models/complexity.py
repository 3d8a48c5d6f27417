"""Parameter and multiply-accumulate (MAC) counts of Keras models, analytically from layer shapes."""

from __future__ import annotations

import math

import keras

from litedepth_tf.models.normalization import MergedNormConv2D


def _layers(model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _layers(layer)
        else:
            yield layer


def _out_hw(layer):
    shape = layer.output.shape
    if any(d is None for d in shape[1:3]):
        raise ValueError(f"count_macs needs static shapes; layer {layer.name!r} has output shape {shape}")
    return shape[1] * shape[2]


def count_macs(model: keras.Model) -> int:
    """MACs of one forward pass (batch 1) over Conv2D, DepthwiseConv2D, Dense and the merged first conv."""
    total = 0
    for layer in _layers(model):
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            k = math.prod(layer.kernel_size)
            total += _out_hw(layer) * k * layer.kernel.shape[2] * layer.depth_multiplier
        elif isinstance(layer, (keras.layers.Conv2D, MergedNormConv2D)):
            k_h, k_w, c_in, c_out = layer.kernel.shape
            total += _out_hw(layer) * k_h * k_w * c_in * c_out
        elif isinstance(layer, keras.layers.Dense):
            total += math.prod(layer.kernel.shape) * math.prod(layer.output.shape[1:-1] or (1,))
    return int(total)

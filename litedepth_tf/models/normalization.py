"""Merged normalisation: fold `(x - mean) / std` into the encoder's first convolution.

The train view normalises the raw 0..255 image with mean = std = 127.5 and then runs MobileNetV3's first
conv (3x3, stride 2, SAME, no bias). SAME padding pads the *normalised* image with zeros, i.e. the raw
image with `mean`. The merged layer therefore pads the raw image with `mean` and runs a VALID conv with

    W' = W / std,     b' = -sum_{kh,kw,cin} W * mean / std

which equals the unmerged computation exactly, borders included (LiteDepth paper, eqs. 3-6). On a
Raspberry Pi 4 this saves the normalisation pass (19 ms of 37 ms in the paper).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's SAME padding (before, after) for one spatial dimension."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


@keras.saving.register_keras_serializable(package="litedepth_tf")
class MergedNormConv2D(layers.Layer):
    """Pads with `pad_value` (SAME geometry) then a VALID conv with bias: the folded first conv."""

    def __init__(self, filters, kernel_size=3, strides=2, pad_value=127.5, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.strides = int(strides)
        self.pad_value = float(pad_value)

    def build(self, input_shape):
        h, w, cin = input_shape[1], input_shape[2], input_shape[3]
        if h is None or w is None:
            raise ValueError(
                f"MergedNormConv2D needs a static input size (got {tuple(input_shape)}); "
                "the merged model is built for one deploy resolution, e.g. 128x160."
            )
        self.pads = (same_padding(h, self.kernel_size, self.strides), same_padding(w, self.kernel_size, self.strides))
        k = self.kernel_size
        self.kernel = self.add_weight(name="kernel", shape=(k, k, cin, self.filters), initializer="glorot_uniform")
        self.bias = self.add_weight(name="bias", shape=(self.filters,), initializer="zeros")

    def call(self, x):
        (top, bottom), (left, right) = self.pads
        if top or bottom or left or right:
            x = ops.pad(x, [[0, 0], [top, bottom], [left, right], [0, 0]], constant_values=self.pad_value)
        y = ops.conv(x, self.kernel, strides=self.strides, padding="valid")
        return y + self.bias

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, kernel_size=self.kernel_size, strides=self.strides, pad_value=self.pad_value)
        return config


def fold_normalization(kernel: np.ndarray, bias: np.ndarray | None, mean: float, std: float):
    """Returns (kernel', bias') such that conv(kernel', x) + bias' == conv(kernel, (x - mean) / std) + bias."""
    kernel = np.asarray(kernel, dtype=np.float64)
    new_kernel = kernel / std
    new_bias = -kernel.sum(axis=(0, 1, 2)) * mean / std
    if bias is not None:
        new_bias = new_bias + np.asarray(bias, dtype=np.float64)
    return new_kernel.astype(np.float32), new_bias.astype(np.float32)


def merge_first_conv(encoder: keras.Model, input_shape, mean: float, std: float, conv_name: str = "conv") -> keras.Model:
    """Clones `encoder` for a fixed `input_shape`, replacing `conv_name` with a MergedNormConv2D holding
    the folded weights; every other layer keeps its weights. The result takes raw 0..255 pixels."""
    conv = encoder.get_layer(conv_name)
    if conv.kernel_size[0] != conv.kernel_size[1] or conv.strides[0] != conv.strides[1] or conv.padding != "same":
        raise ValueError(f"merge_first_conv expects a square SAME conv, got {conv.get_config()}")

    def clone(layer):
        if layer.name == conv_name:
            return MergedNormConv2D(conv.filters, conv.kernel_size[0], conv.strides[0], pad_value=mean, name=conv_name)
        return layer.__class__.from_config(layer.get_config())

    merged = keras.models.clone_model(encoder, input_tensors=keras.Input(shape=tuple(input_shape)), clone_function=clone)
    for layer in encoder.layers:
        if not layer.weights:
            continue
        weights = layer.get_weights()
        if layer.name == conv_name:
            weights = list(fold_normalization(weights[0], weights[1] if len(weights) > 1 else None, mean, std))
        merged.get_layer(layer.name).set_weights(weights)
    return merged

"""A FastDepth-architecture reference (Wofk et al., ICRA 2019) built here for latency comparisons.

MobileNetV1 encoder (`keras.applications.MobileNet`, alpha 1.0) + NNConv5 decoder: five stages of
5x5 depthwise conv -> BN -> ReLU -> 1x1 pointwise conv -> BN -> ReLU -> nearest x2 upsampling, with
additive skips from the encoder at strides 8, 4 and 2, then a 1x1 conv to depth. Channels 1024 -> 512 ->
256 -> 128 -> 64 -> 32 -> 1. Input raw RGB 0..255 (normalised in the graph), output at input resolution.
It is never trained here; it exists so `export/benchmark.py` compares LiteDepth with the usual mobile baseline.
"""

from __future__ import annotations

import keras
from keras import layers

SKIPS = {2: "conv_pw_5_relu", 3: "conv_pw_3_relu", 4: "conv_pw_1_relu"}  # decoder stage -> encoder layer


def build_fastdepth(input_shape=(224, 224, 3), batch_size=1, name="fastdepth") -> keras.Model:
    inputs = keras.Input(shape=input_shape, batch_size=batch_size, name="image")
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0)(inputs)
    encoder = keras.applications.MobileNet(input_shape=input_shape, include_top=False, weights=None, alpha=1.0)
    taps = keras.Model(encoder.input, [encoder.output] + [encoder.get_layer(n).output for n in SKIPS.values()])
    x, *skips = taps(x)
    skips = dict(zip(SKIPS, skips))
    for stage, filters in enumerate((512, 256, 128, 64, 32), start=1):
        x = layers.DepthwiseConv2D(5, padding="same", use_bias=False, name=f"dec{stage}_dw")(x)
        x = layers.ReLU()(layers.BatchNormalization(name=f"dec{stage}_dw_bn")(x, training=False))
        x = layers.Conv2D(filters, 1, use_bias=False, name=f"dec{stage}_pw")(x)
        x = layers.ReLU()(layers.BatchNormalization(name=f"dec{stage}_pw_bn")(x, training=False))
        x = layers.UpSampling2D(2, interpolation="nearest", name=f"dec{stage}_up")(x)
        if stage in skips:
            x = layers.Add(name=f"dec{stage}_skip")([x, skips[stage]])
    depth = layers.ReLU(name="depth")(layers.Conv2D(1, 1, name="dec6_pw")(x))
    return keras.Model(inputs, depth, name=name)

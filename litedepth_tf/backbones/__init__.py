"""Encoders. Each returns a keras.Model mapping an image to four features at strides 4, 8, 16, 32."""

from litedepth_tf.backbones.mobilenet import (  # noqa: F401
    MOBILENET_TAPS,
    build_mobilenet_encoder,
    imagenet_weights_path,
)

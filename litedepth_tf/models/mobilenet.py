"""The LiteDepth student encoder: MobileNetV3-Small (minimalistic) cut before its last 1x1 conv.

`keras.applications.MobileNetV3Small(minimalistic=True, include_top=False)` ends with a 1x1 96->576 conv
(`conv_1`, the paper's "960"). LiteDepth drops it: the encoder stops at `expanded_conv_10_add`. Skips are
taken by layer name (stable across Keras 3 releases):

| stride | layer                      | channels |
| ------ | -------------------------- | -------- |
| 4      | `expanded_conv_project_bn` | 16       |
| 8      | `expanded_conv_2_add`      | 24       |
| 16     | `expanded_conv_7_add`      | 48       |
| 32     | `expanded_conv_10_add`     | 96       |

BatchNorm momentum: Keras builds MobileNetV3 with `momentum=0.999`; the authors train timm's
`tf_mobilenetv3_small_minimal_100`, whose BatchNorm uses the TensorFlow default 0.99 (PyTorch momentum 0.01).
`BN_MOMENTUM = 0.99` is set on every encoder BatchNorm: at 0.999 the moving statistics of a randomly initialised
encoder need ~5000 steps to settle, and until then the inference-mode model is far from the trained one (measured:
a batch over-fitted to si 0.08 in training mode predicted a near-constant 14-15 m in inference mode).

Weights: `None` (random), `"imagenet"` (the Keras file, from the Keras cache; offline it must already be
there) or a path to a `.h5`/`.weights.h5` file holding the full MobileNetV3Small(include_top=False) weights.
"""

from __future__ import annotations

import os

import keras

MOBILENET_TAPS = (
    ("expanded_conv_project_bn", 16),
    ("expanded_conv_2_add", 24),
    ("expanded_conv_7_add", 48),
    ("expanded_conv_10_add", 96),
)

# File name Keras uses for MobileNetV3Small minimalistic, no top, alpha 1.0 (keras/src/applications/mobilenet_v3.py).
IMAGENET_FILE = "weights_mobilenet_v3_small_minimalistic_224_1.0_float_no_top_v2.h5"
BN_MOMENTUM = 0.99


def keras_cache_dir() -> str:
    base = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return os.path.join(base, "models")


def imagenet_weights_path() -> str:
    """Where Keras looks for the ImageNet weights file (drop the file there to use it offline)."""
    return os.path.join(keras_cache_dir(), IMAGENET_FILE)


def _resolve_weights(weights):
    if weights is None:
        return None
    if weights == "imagenet":
        path = imagenet_weights_path()
        if os.path.exists(path):
            return path
        try:  # Online machines: let Keras download into its cache.
            return keras.utils.get_file(
                IMAGENET_FILE,
                "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v3/" + IMAGENET_FILE,
                cache_subdir="models",
            )
        except Exception as err:  # noqa: BLE001 - any download failure gets the same actionable message
            raise FileNotFoundError(
                f"ImageNet weights for MobileNetV3Small (minimalistic) are not available offline: "
                f"expected the file {IMAGENET_FILE!r} in the Keras cache folder {keras_cache_dir()!r} "
                f"(download failed: {type(err).__name__}). Copy the file there, or pass weights=<path to the .h5>."
            ) from err
    path = os.fspath(weights)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Encoder weights file not found: {path!r}")
    return path


def build_mobilenet_encoder(input_shape=(None, None, 3), weights=None, name="mobilenet_v3_small_encoder"):
    """Returns a keras.Model: normalised image in [-1, 1] -> [f4, f8, f16, f32] (16/24/48/96 channels)."""
    path = _resolve_weights(weights)
    base = keras.applications.MobileNetV3Small(
        input_shape=input_shape,
        minimalistic=True,
        include_top=False,
        include_preprocessing=False,
        weights=None,
    )
    if path is not None:
        try:
            base.load_weights(path)
        except Exception as err:  # noqa: BLE001 - re-raise with the file named
            raise ValueError(f"Could not load MobileNetV3Small weights from {path!r}: {err}") from err
    for layer in base.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = BN_MOMENTUM
    outputs = [base.get_layer(layer).output for layer, _ in MOBILENET_TAPS]
    return keras.Model(base.input, outputs, name=name)

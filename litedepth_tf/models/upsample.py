"""Bilinear upsampling by an integer factor as one 3x3 convolution + a pixel shuffle (fast in int8 and fp32).

Why: the deploy graph ends with `resize 32x40 -> 480x640` on a single channel. On the LiteRT CPU path (XNNPACK,
x86, 1 thread) that op costs 0.55 ms in fp32 and 1.4 ms in int8 (+ the int8 -> float DEQUANTIZE) out of a
~1.5 ms model: with it, the full-integer model was 1.7x SLOWER than fp32 (2.55 vs 1.54 ms). The same
interpolation written as

    SYMMETRIC pad 1 (= edge clamping) -> 3x3 VALID conv, fy*fx output channels -> reshape / transpose / reshape

costs 0.19 ms (fp32) / 0.26 ms (int8), is fully integer (CONV_2D, MIRROR_PAD, RESHAPE, TRANSPOSE) and is
**exactly** `tf.image.resize(..., "bilinear")` (half-pixel centres, no anti-aliasing; < 1e-5 m in float, tested):
for an integer factor f, output row f*i + a reads source row i + t_a, t_a = (a + 0.5) / f - 0.5 in (-0.5, 0.5), so
only rows i-1, i, i+1 contribute, with fixed weights per phase a.

int8 detail: the per-channel int8 weight scale is max|w| / 127, so plain rounding would make each of the f*f
phases' weights sum to 1 +- ~1 % (a periodic gain error on the depth). `integer_friendly=True` (default) rounds
the weights to k / K with integers k summing to K and max k = 127: the converter then quantises them exactly,
every phase keeps gain 1, and each tap moves by < 0.5 / K (< 0.4 %, a sub-pixel shift of the interpolation).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from litedepth_tf.common.sizes import network_size


def phase_taps(factor: int) -> np.ndarray:
    """[factor, 3] weights of source offsets (-1, 0, +1) for each output phase (half-pixel centres)."""
    w = np.zeros((factor, 3), np.float64)
    for a in range(factor):
        t = (a + 0.5) / factor - 0.5
        if t < 0:
            w[a, 0], w[a, 1] = -t, 1 + t
        else:
            w[a, 1], w[a, 2] = 1 - t, t
    return w


def _integer_friendly(k: np.ndarray) -> np.ndarray:
    """Weights of one phase (summing to 1) -> k_i / K, integers k_i summing to K, max k_i = 127."""
    big = 127
    K = int(round(big / k.max()))
    q = np.round(k * K).astype(np.int64)
    q[np.argmax(k)] = big
    # fix the sum on the other non-zero taps (largest first), keeping them in [0, 127]
    residual = K - q.sum()
    for i in np.argsort(-k):
        if residual == 0:
            break
        if i == np.argmax(k) or k[i] == 0:
            continue
        step = int(np.clip(residual, -q[i], big - q[i]))
        q[i] += step
        residual -= step
    if residual != 0:  # all other taps saturated: give up on exactness for this phase
        return k
    return q / K


def upsample_kernel(factor_y: int, factor_x: int, integer_friendly: bool = True) -> np.ndarray:
    """[3, 3, 1, fy*fx] conv kernel: channel a*fx + b is output phase (a, b)."""
    wy, wx = phase_taps(factor_y), phase_taps(factor_x)
    k = np.einsum("ai,bj->ijab", wy, wx).reshape(3, 3, factor_y * factor_x)
    if integer_friendly:
        for c in range(k.shape[-1]):
            k[..., c] = _integer_friendly(k[..., c].ravel()).reshape(3, 3)
    return k[:, :, None, :].astype(np.float32)


@keras.saving.register_keras_serializable(package="litedepth")
class BilinearUpsample(keras.layers.Layer):
    """[B, h, w, 1] -> [B, h*fy, w*fx, 1] bilinear (tf.image.resize semantics), integer factors, static h, w."""

    def __init__(self, size, integer_friendly: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.size = (int(size[0]), int(size[1]))
        self.integer_friendly = bool(integer_friendly)

    def build(self, input_shape):
        h, w, c = input_shape[1], input_shape[2], input_shape[3]
        if h is None or w is None or c != 1:
            raise ValueError(f"BilinearUpsample needs a static [B, h, w, 1] input, got {input_shape}")
        if self.size[0] % h or self.size[1] % w:
            raise ValueError(f"BilinearUpsample: {self.size} is not an integer multiple of {(h, w)}")
        self.factors = (self.size[0] // h, self.size[1] // w)
        self.kernel = upsample_kernel(*self.factors, integer_friendly=self.integer_friendly)

    def call(self, x):
        h, w = x.shape[1], x.shape[2]
        fy, fx = self.factors
        xp = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="SYMMETRIC")
        y = tf.nn.conv2d(xp, tf.constant(self.kernel, dtype=x.dtype), 1, "VALID")
        y = tf.reshape(y, [-1, h, w, fy, fx])
        y = tf.transpose(y, [0, 1, 3, 2, 4])
        return tf.reshape(y, [-1, h * fy, w * fx, 1])

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.size[0], self.size[1], 1)

    def get_config(self):
        return {**super().get_config(), "size": self.size, "integer_friendly": self.integer_friendly}


def with_fast_upsampling(deploy: keras.Model, integer_friendly: bool = True) -> keras.Model:
    """The same deploy model (`model.build_deploy_model`) with its final `resize` replaced by `BilinearUpsample`.

    Reuses the deploy model's layers (no weight copy): input -> resize to the network size -> core -> upsample."""

    cores = [layer for layer in deploy.layers if isinstance(layer, keras.Model)]
    if len(cores) != 1:
        raise ValueError(f"{deploy.name!r} is not a LiteDepth deploy model (expected one nested core model)")
    core = cores[0]
    h, w = int(deploy.input.shape[1]), int(deploy.input.shape[2])
    net = tuple(core.input.shape[1:3])
    net = net if None not in net else network_size((h, w))
    if not upsample_factors_ok((h, w), net):
        raise ValueError(f"{deploy.name!r}: the depth map {net[0] // 4}x{net[1] // 4} does not divide the frame "
                         f"{h}x{w} by integer factors; the conv upsampling needs them (use --upsample=resize)")
    inputs = keras.Input(shape=(h, w, 3), batch_size=1, name="image")
    small = ops.image.resize(inputs, net, interpolation="bilinear")
    depth = core(small, training=False)["depth"]
    depth = BilinearUpsample((h, w), integer_friendly=integer_friendly, name="upsample_depth")(depth)
    model = keras.Model(inputs, depth, name=deploy.name + "_fastup")
    if hasattr(deploy, "depth_range"):
        model.depth_range = deploy.depth_range
    model.final_resize = "bilinear"
    return model


UPSAMPLE_MODES = ("auto", "resize", "conv")


def upsample_factors_ok(frame, net) -> bool:
    """Whether the stride-4 depth map of network size ``net`` upsamples to ``frame`` by integer factors
    (480x640 from 32x40: 15 and 16 yes; KITTI 352x1216 from 24x80: no)."""
    dh, dw = net[0] // 4, net[1] // 4
    return frame[0] % dh == 0 and frame[1] % dw == 0


def resolve_upsample(mode: str, quant: str, final_resize: str = "nearest") -> str:
    """The deploy graph's last op as exported: "nearest" for a nearest final resize (whatever `mode`, except
    "conv", an error: the conv replaces a bilinear resize); for a bilinear one, 'auto' -> 'conv' for int8 (the
    int8 resize is the slow op), 'resize' (the graph as built) otherwise."""
    if mode not in UPSAMPLE_MODES:
        raise ValueError(f"upsample must be one of {UPSAMPLE_MODES}, got {mode!r}")
    if final_resize == "nearest":
        if mode == "conv":
            raise ValueError("--upsample=conv replaces a bilinear final resize; this deploy model ends with a "
                             "nearest one (use --final_resize=bilinear)")
        return "nearest"
    if mode == "auto":
        return "conv" if quant == "int8" else "resize"
    return mode


def apply_upsample(deploy: keras.Model, quant: str, mode: str = "auto") -> keras.Model:
    """The deploy model to export for `quant`: unchanged ('resize', or a nearest final resize: the default,
    `models.student.build_deploy_model`, whose RESIZE_NEAREST_NEIGHBOR is exact in int8 too) or with
    `BilinearUpsample` ('conv'; integer-friendly taps for int8, exact taps for fp32 / fp16)."""
    kind = resolve_upsample(mode, quant, getattr(deploy, "final_resize", "bilinear"))
    if kind == "nearest":
        return deploy
    if kind == "conv" and mode == "auto":  # auto: conv only where the factors are integers
        cores = [layer for layer in deploy.layers if isinstance(layer, keras.Model)]
        frame = (int(deploy.input.shape[1]), int(deploy.input.shape[2]))
        net = tuple(cores[0].input.shape[1:3]) if cores else (None, None)
        net = net if None not in net else network_size(frame)
        if not upsample_factors_ok(frame, net):
            kind = "resize"
    if kind == "resize":
        return deploy
    return with_fast_upsampling(deploy, integer_friendly=(quant == "int8"))

"""Declarative helpers shared by the tests."""

from __future__ import annotations

import keras
import numpy as np


def randomize_batchnorm(model: keras.Model, seed: int = 0) -> None:
    """Gives every BatchNorm non-trivial moving statistics, so train/inference-mode mix-ups show."""
    rng = np.random.default_rng(seed)
    stack = [model]
    while stack:
        for layer in stack.pop().layers:
            if isinstance(layer, keras.Model):
                stack.append(layer)
            elif isinstance(layer, keras.layers.BatchNormalization):
                g, b, mu, var = layer.get_weights()
                layer.set_weights(
                    [rng.uniform(0.5, 1.5, g.shape), rng.normal(0, 0.2, b.shape),
                     rng.normal(0, 0.2, mu.shape), rng.uniform(0.5, 2.0, var.shape)]
                )


def make_depth_nontrivial(model: keras.Model, bias: float = -1.0) -> None:
    """Sets the last conv's bias: 40 * sigmoid(bias + w.x) then sits mid-range (~10 m at -1) and varies across the
    image instead of saturating at 40 m, so parity tests compare real, non-clamped numbers."""
    layer = model.get_layer("decoder_depth_conv")
    kernel, b = layer.get_weights()
    layer.set_weights([kernel, np.full_like(b, bias)])


def random_student(seed: int = 0):
    from litedepth_tf.model import build_student

    keras.utils.set_random_seed(seed)
    model = build_student()
    randomize_batchnorm(model, seed)
    make_depth_nontrivial(model)
    return model


def synthetic_root(tmp_path_factory, name: str, n_train: int, n_val: int, seed: int) -> str:
    """A small synthetic MAI-layout set in a fresh temp folder (for module-scoped `data_root` fixtures)."""
    from litedepth_tf.data.synthetic import generate

    root = tmp_path_factory.mktemp(name)
    generate(str(root), n_train, n_val, seed=seed, workers=1, progress=False)
    return str(root)

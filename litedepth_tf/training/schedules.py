"""Learning-rate schedule of the authors' mmcv config: linear warm-up, then poly decay to a floor.

    lr(step) = max_lr * (warmup_ratio + (1 - warmup_ratio) * step / warmup_steps)       step <  warmup_steps
             = (max_lr - min_lr) * (1 - step / total_steps) ** power + min_lr             step >= warmup_steps
    (clipped at step = total_steps, so lr stays at min_lr afterwards)

mmcv's `PolyLrUpdaterHook(warmup='linear', warmup_iters=1500, warmup_ratio=1e-4, power=0.9, min_lr=...)` computes
the poly value over the whole run (step counted from 0, not from the end of the warm-up) and during the warm-up
multiplies the *regular* lr by `1 - (1 - k / warmup_iters) * (1 - warmup_ratio)`. That is what `mmcv_warmup=True`
gives; the default is the plain linear ramp to `max_lr` above (the two differ by < 1% over a 1500-step warm-up).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf


@keras.saving.register_keras_serializable(package="litedepth")
class WarmupPolyDecay(keras.optimizers.schedules.LearningRateSchedule):
    def __init__(self, max_lr, total_steps, min_lr=0.0, warmup_steps=1500, warmup_ratio=1e-4, power=0.9,
                 mmcv_warmup=False):
        if max_lr <= 0:
            raise ValueError(f"max_lr must be > 0, got {max_lr}")
        if not 0 <= min_lr <= max_lr:
            raise ValueError(f"min_lr must be in [0, max_lr={max_lr}], got {min_lr}")
        if total_steps <= 0:
            raise ValueError(f"total_steps must be > 0, got {total_steps}")
        if warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
        self.max_lr, self.min_lr = float(max_lr), float(min_lr)
        self.total_steps, self.warmup_steps = int(total_steps), int(warmup_steps)
        self.warmup_ratio, self.power, self.mmcv_warmup = float(warmup_ratio), float(power), bool(mmcv_warmup)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        frac = tf.minimum(step, float(self.total_steps)) / float(self.total_steps)
        poly = (self.max_lr - self.min_lr) * tf.pow(1.0 - frac, self.power) + self.min_lr
        if self.warmup_steps == 0:
            return poly
        k = tf.minimum(step / float(self.warmup_steps), 1.0)
        ramp = self.warmup_ratio + (1.0 - self.warmup_ratio) * k
        warm = poly * ramp if self.mmcv_warmup else self.max_lr * ramp
        return tf.where(step < float(self.warmup_steps), warm, poly)

    def get_config(self):
        return dict(max_lr=self.max_lr, total_steps=self.total_steps, min_lr=self.min_lr,
                    warmup_steps=self.warmup_steps, warmup_ratio=self.warmup_ratio, power=self.power,
                    mmcv_warmup=self.mmcv_warmup)


def warmup_poly_numpy(step, max_lr, total_steps, min_lr=0.0, warmup_steps=1500, warmup_ratio=1e-4, power=0.9,
                      mmcv_warmup=False):
    """NumPy reference of `WarmupPolyDecay` (the formula in the module docstring)."""
    step = np.asarray(step, np.float64)
    frac = np.minimum(step, total_steps) / total_steps
    poly = (max_lr - min_lr) * (1.0 - frac) ** power + min_lr
    if warmup_steps == 0:
        return poly
    ramp = warmup_ratio + (1.0 - warmup_ratio) * np.minimum(step / warmup_steps, 1.0)
    warm = poly * ramp if mmcv_warmup else max_lr * ramp
    return np.where(step < warmup_steps, warm, poly)

"""Combining the four loss terms into one scalar: dynamic re-weighting (learnable sigmas) or fixed weights.

Each term first gets its **loss weight**, ``w = (1, 0.25, 2.5, 0.2)`` for ``(si, grad, vnl, robust)`` by default
(the ``loss_weight`` of each loss in the authors' auto config, which multiplies the loss inside its own module,
before the re-weighting sees it). Then LiteDepth (Sec. 3.3) balances them with the uncertainty weighting of Kendall
et al. ("Multi-task learning using uncertainty to weigh losses", CVPR 2018) in the regularised form of Liebel &
Koerner ("Auxiliary tasks in multi-task learning", 2018), the authors' ``AutoReweightLoss``::

    L = sum_i ( 0.5 / sigma_i^2 * w_i L_i + log(1 + sigma_i^2) ),   sigma_i initialised to 1

With Kendall's ``log(sigma^2)`` a constant weight would only shift the optimum sigma (``sigma^2 = w L``: the
gradient reaching the network would not change); with ``log(1 + sigma^2)`` it does, so the trained balance depends
on applying the weights first, as the authors do (22 % apart on the same terms at sigma = 1 without them).
``dL/dsigma_i = -w_i L_i / sigma_i^3 + 2 sigma_i / (1 + sigma_i^2)``. The sigmas are trainable variables created
in ``__init__`` (the trainer builds its optimizer over them right away) and named ``sigma_<term>`` (the trainer
logs them under that name; AdamW excludes names containing "sigma" from weight decay).

``FixedWeights`` is the plain sum ``L = sum_i w_i L_i`` (the authors' configs without the auto re-weighting: the
distillation config uses ``(1, 0.25, 2.5, 0.6)``), no variables.

``make_weighting(kind, terms, weights)`` builds either over a subset of the terms (the loss-term ablation, Table 5
of the paper); a term keeps its weight whatever the subset.

Both are Keras layers called with a dict ``{term: scalar}`` (any extra key is ignored) and expose ``.terms`` and
``.term_weights``.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import keras
import tensorflow as tf

TERMS = ("si", "grad", "vnl", "robust")
LOSS_WEIGHTS = (1.0, 0.25, 2.5, 0.2)  # the auto config's loss_weight of SigLoss, GradDepthLoss, VNLLoss, RobustLoss


def _weights_for(terms, weights):
    if weights is None:
        weights = [dict(zip(TERMS, LOSS_WEIGHTS))[t] for t in terms]
    weights = tuple(float(w) for w in weights)
    if len(weights) != len(terms):
        raise ValueError(f"{len(weights)} weights for {len(terms)} terms {tuple(terms)}")
    return weights


@keras.saving.register_keras_serializable(package="litedepth")
class DynamicReweight(keras.layers.Layer):
    """sum_i 0.5 / sigma_i^2 * w_i L_i + log(1 + sigma_i^2) with learnable ``sigma_<term>``."""

    def __init__(self, terms: Sequence[str] = TERMS, init_sigma: float = 1.0, weights: Sequence[float] | None = None,
                 **kwargs):
        super().__init__(**kwargs)
        self.terms = tuple(terms)
        self.term_weights = _weights_for(self.terms, weights)
        self.init_sigma = float(init_sigma)
        for t in self.terms:  # one attribute per variable: tf.train.Checkpoint does not follow Keras' lists
            setattr(self, f"sigma_{t}", self.add_weight(
                shape=(), initializer=keras.initializers.Constant(self.init_sigma), trainable=True, name=f"sigma_{t}"))
        self.built = True

    @property
    def sigmas(self) -> list:
        return [getattr(self, f"sigma_{t}") for t in self.terms]

    def call(self, losses: Mapping[str, tf.Tensor]) -> tf.Tensor:
        total = tf.constant(0.0, tf.float32)
        for term, w, sigma in zip(self.terms, self.term_weights, self.sigmas):
            s2 = tf.square(tf.cast(sigma, tf.float32))
            total += 0.5 / s2 * (w * tf.cast(losses[term], tf.float32)) + tf.math.log1p(s2)
        return total

    def get_config(self) -> dict:
        return {**super().get_config(), "terms": list(self.terms), "init_sigma": self.init_sigma,
                "weights": list(self.term_weights)}


@keras.saving.register_keras_serializable(package="litedepth")
class FixedWeights(keras.layers.Layer):
    """sum_i w_i L_i, default ``w = (1, 0.25, 2.5, 0.2)`` for ``(si, grad, vnl, robust)``."""

    def __init__(self, weights: Sequence[float] | None = None, terms: Sequence[str] = TERMS, **kwargs):
        super().__init__(**kwargs)
        self.terms = tuple(terms)
        self.term_weights = _weights_for(self.terms, weights)
        self.built = True

    def call(self, losses: Mapping[str, tf.Tensor]) -> tf.Tensor:
        total = tf.constant(0.0, tf.float32)
        for term, w in zip(self.terms, self.term_weights):
            total += w * tf.cast(losses[term], tf.float32)
        return total

    def get_config(self) -> dict:
        return {**super().get_config(), "weights": list(self.term_weights), "terms": list(self.terms)}


def make_weighting(kind: str = "dynamic", terms: Sequence[str] = TERMS, weights: Sequence[float] | None = None):
    """DynamicReweight or FixedWeights over `terms` (any non-empty subset of TERMS, in TERMS' order); `weights`:
    the loss weight of each of the four TERMS (default `LOSS_WEIGHTS`), of which the subset's are used."""
    unknown = [t for t in terms if t not in TERMS]
    if unknown or not terms:
        raise ValueError(f"loss terms must be a non-empty subset of {TERMS}, got {tuple(terms)}")
    weights = LOSS_WEIGHTS if weights is None else tuple(float(w) for w in weights)
    if len(weights) != len(TERMS):
        raise ValueError(f"loss weights: one for each of {TERMS}, got {len(weights)}")
    terms = tuple(t for t in TERMS if t in terms)
    chosen = [dict(zip(TERMS, weights))[t] for t in terms]
    if kind == "dynamic":
        return DynamicReweight(terms, weights=chosen)
    if kind == "fixed":
        return FixedWeights(chosen, terms)
    raise ValueError(f"loss weighting must be dynamic or fixed, got {kind!r}")

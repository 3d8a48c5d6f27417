"""Data sets: the offline synthetic MAI-layout generator (``python -m litedepth_tf.data.synthetic``).

``ensure_synthetic``, ``generate`` and ``render_frame`` are re-exported lazily (so ``python -m`` on the submodule
does not import it twice).
"""

__all__ = ["ensure_synthetic", "generate", "render_frame"]


def __getattr__(name):
    if name in __all__:
        from litedepth_tf.data import synthetic

        return getattr(synthetic, name)
    raise AttributeError(name)

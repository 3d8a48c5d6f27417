"""litedepth_tf: LiteDepth (Li et al., MAI@ECCV 2022) in pure TensorFlow/Keras."""

__version__ = "0.2.0"


def load(path, model=None, num_threads=None, input_size=None):
    """Loads a trained LiteDepth model (`.tflite` or `.weights.h5`); `.predict(image HxWx3) -> depth HxW metres`.
    ``model``: the preset of Keras weights (default: the run's, from its flags.txt, else "student");
    ``input_size`` (H, W): a model made for another frame size (e.g. KITTI's (352, 1216)); default 480x640.

    See `litedepth_tf.api` (imported here lazily: `import litedepth_tf` stays light)."""
    from litedepth_tf.api import load as _load

    return _load(path, model=model, num_threads=num_threads, input_size=input_size)

"""litedepth_tf: LiteDepth (Li et al., MAI@ECCV 2022) in pure TensorFlow/Keras."""

__version__ = "0.1.0"

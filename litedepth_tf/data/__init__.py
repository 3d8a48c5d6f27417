"""Data: listing and decoding RGB-D pairs, R-crop augmentation, bad-sample handling, checks, and the two offline
data sets (synthetic scenes, the Middlebury motorcycle). Knows nothing of models, training or evaluation."""

"""Training: the custom loop and its checkpoints, distribution, losses, loss re-weighting, distillation, the
learning-rate schedule and TensorBoard logging."""

"""Evaluation: MAI 2022 metrics (NumPy reference + streaming TF), the evaluation loop over a split, and the
fp32 / fp16 / int8 quantisation report."""

"""TFLite: `export` (Keras -> SavedModel -> .tflite, fp32 / fp16 / int8), `checked_export` (an export with its GPU
check, parity check and model card: what export/export_tflite.py runs), the LiteRT runtime wrapper (`runtime`),
int8 calibration, Keras-vs-TFLite parity, latency benchmarks, the GPU delegate compatibility check (`gpu_check`)
and the model card written next to every export (`model_card`)."""

"""TFLite: Keras -> SavedModel -> .tflite conversion (fp32 / fp16 / int8), the LiteRT runtime wrapper, int8
calibration, Keras-vs-TFLite parity and latency benchmarks."""

"""TFLite: Keras -> SavedModel -> .tflite conversion (fp32 / fp16 / int8), the LiteRT runtime wrapper, int8
calibration, Keras-vs-TFLite parity, latency benchmarks, the GPU delegate compatibility check (`gpu_check`) and the
model card written next to every export (`model_card`)."""

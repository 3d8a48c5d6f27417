"""Running a trained model on images and videos: `prepare` (any image -> the network input, and the depth back to
the image's size), `readers` (image files, video frames, a folder's inputs), `writers` (depth PNGs, colour maps,
point clouds, videos, all written atomically), `prefetch` (the threads around the network) and `predictor`
(`Predictor`, the library behind `python -m litedepth_tf.predict`).

Layer: above `models` and `tflite` (whose models it runs), below `api` (`litedepth_tf.load`, whose `DepthModel`
it is given) and the commands. No TensorFlow: a `.tflite` model runs on LiteRT alone.
"""

"""Models: the student (MobileNetV3-Small encoder + light decoder), the Swin teacher, a FastDepth reference, the
merged normalisation, the conv upsampler, complexity counts and the preset table. Knows nothing of data,
training, evaluation or TFLite."""

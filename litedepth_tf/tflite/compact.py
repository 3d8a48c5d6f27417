"""Shorter tensor names in a `.tflite` flatbuffer (keeps signatures, I/O names, weights and ops untouched).

The converter names every tensor after all the TF ops fused into it, joined by ';' (e.g. a conv's output carries
`.../Relu;.../batchnorm/add_1;.../batchnorm/mul_1;.../depthwise;...`). For the int8 student these strings are
~33 KB of a ~0.6 MB file. `compact_tensor_names` keeps only the first op name of each tensor (23 KB less, the
names stay readable); the model computes exactly the same (tested).
"""

from __future__ import annotations

from tensorflow.lite.tools import flatbuffer_utils


def compact_tensor_names(data: bytes) -> bytes:
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(data))
    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors:
            name = tensor.name
            if isinstance(name, (bytes, bytearray)) and b";" in name:
                tensor.name = bytes(name).split(b";", 1)[0]
            elif isinstance(name, str) and ";" in name:
                tensor.name = name.split(";", 1)[0]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))

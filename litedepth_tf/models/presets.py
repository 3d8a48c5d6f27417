"""Model presets as data: name -> "module:function" builder, imported only when the preset is used.

Every builder returns a Keras model with the student's interface (WORKSPACE.md): raw RGB 0..255 in, dict
`depth` / `feat_4` / `feat_8` / `feat_16` out, and accepts `weights=None` (a `.weights.h5` file) as a keyword.
Extra keyword arguments for a preset go in `MODEL_KWARGS`. Add an entry to make a model trainable with
`--model=<name>`; nothing else needs to change.
"""

from __future__ import annotations

import functools
import importlib

MODELS = {
    "student": "litedepth_tf.models.student:build_student",
    "student_80m": "litedepth_tf.models.student:build_student",
    "student_conv3x3": "litedepth_tf.models.student:build_student",
    "student_conv1x1": "litedepth_tf.models.student:build_student",
    "student_sigmoid": "litedepth_tf.models.student:build_student",
    "teacher_swin_micro": "litedepth_tf.models.teacher:build_teacher",
    "teacher_swin_tiny": "litedepth_tf.models.teacher:build_teacher",
    "teacher_swin_base": "litedepth_tf.models.teacher:build_teacher",
    "teacher_swin_large": "litedepth_tf.models.teacher:build_teacher",
}

MODEL_KWARGS = {
    "student_80m": {"max_depth": 80.0},  # KITTI / DIODE: the ReLU head clamped at 80 m (the same weights' shapes)
    "student_conv3x3": {"decoder": "conv3x3"},  # Table 3's decoder variants (models.decoder.DECODER_KINDS)
    "student_conv1x1": {"decoder": "conv1x1"},
    "student_sigmoid": {"head": "sigmoid"},  # the 40 * sigmoid head (train --head=sigmoid), same weights' shapes
    "teacher_swin_micro": {"preset": "micro"},
    "teacher_swin_tiny": {"preset": "tiny"},
    "teacher_swin_base": {"preset": "base"},
    "teacher_swin_large": {"preset": "large"},
}


def resolve(spec: str):
    """'package.module:function' -> the function."""
    module, _, attr = spec.partition(":")
    if not module or not attr:
        raise ValueError(f"builder spec {spec!r} is not 'module:function'")
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def get_builder(name: str):
    """The builder for preset `name` with its preset keyword arguments bound."""
    if name not in MODELS:
        raise ValueError(f"Unknown model {name!r}; choose one of {sorted(MODELS)}")
    return functools.partial(resolve(MODELS[name]), **MODEL_KWARGS.get(name, {}))


def student_preset(decoder: str = "mix") -> str:
    """The preset name of the student with decoder kind `decoder`: "student" for the paper's mix, else
    "student_<kind>" (what `--model` of evaluate / predict / export takes for a run trained with `--decoder`)."""
    name = "student" if decoder == "mix" else f"student_{decoder}"
    if name not in MODELS:
        raise ValueError(f"no student preset for decoder {decoder!r}; kinds: mix, conv3x3, conv1x1")
    return name


def build_model(name: str, **kwargs):
    return get_builder(name)(**kwargs)

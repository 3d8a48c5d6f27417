"""Model presets as typed records: name -> `Preset(builder, kwargs, description, max_depth, ...)`, the builder
imported only when the preset is built (``import litedepth_tf`` stays light), and the preset a run trained.

    preset = get_preset("student_conv3x3")       # Preset(name=..., builder="litedepth_tf.models.student:...")
    model = preset.build(weights="runs/x/best.weights.h5")
    name = preset_for_weights("runs/x/best.weights.h5")    # the run's preset (its flags.txt), else "student"

Every builder returns a Keras model with the student's interface (WORKSPACE.md): raw RGB 0..255 in, dict
`depth` / `feat_4` / `feat_8` / `feat_16` out, and accepts `weights=None` (a `.weights.h5` file) as a keyword.
Add a `Preset` to `PRESETS` to make a model trainable with `--model=<name>`; nothing else needs to change.

A run remembers its preset: `train` writes every resolved flag into ``RUN/flags.txt``, next to its
``best.weights.h5`` / ``last.weights.h5``; its ``--model`` (and for the student ``--decoder``, as `train` resolves
them: `student_preset`) is the preset of those weights. `preset_for_weights` reads it, so that evaluate,
export_tflite.py, predict and `litedepth_tf.load` need no ``--model`` for a run's weights; an explicit one that
contradicts the run is an input error naming both; weights outside a run keep their ``--model`` (default student).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import os
import re
import types

from litedepth_tf.common.cli import InputError
from litedepth_tf.common.constants import MAX_DEPTH

DEFAULT = "student"
RUN_FLAGS = "flags.txt"  # what train writes into the run folder, next to the weights


@dataclasses.dataclass(frozen=True)
class Preset:
    """One `--model` name: its builder ("package.module:function", imported when built), the keyword arguments
    bound to it, what it is, and the top of its depth head's range (metres)."""

    name: str
    builder: str
    kwargs: types.MappingProxyType = dataclasses.field(default_factory=lambda: types.MappingProxyType({}))
    description: str = ""
    max_depth: float = MAX_DEPTH
    family: str = "student"  # student | teacher

    def __post_init__(self):
        object.__setattr__(self, "kwargs", types.MappingProxyType(dict(self.kwargs)))

    def builder_fn(self):
        """The builder with this preset's keyword arguments bound."""
        return functools.partial(resolve(self.builder), **self.kwargs)

    def build(self, **kwargs):
        return self.builder_fn()(**kwargs)


_STUDENT, _TEACHER = "litedepth_tf.models.student:build_student", "litedepth_tf.models.teacher:build_teacher"
PRESETS = {p.name: p for p in (
    Preset("student", _STUDENT, {}, "LiteDepth student: MobileNetV3-Small + the paper's mix decoder, ReLU head "
           "clamped at 40 m"),
    Preset("student_80m", _STUDENT, {"max_depth": 80.0}, "the student with its ReLU head clamped at 80 m (KITTI, "
           "DIODE; the weights are the same shape)", max_depth=80.0),
    Preset("student_conv3x3", _STUDENT, {"decoder": "conv3x3"}, "Table 3: every decoder conv 3x3"),
    Preset("student_conv1x1", _STUDENT, {"decoder": "conv1x1"}, "Table 3: every decoder conv 1x1"),
    Preset("student_sigmoid", _STUDENT, {"head": "sigmoid"}, "the student with a 40 * sigmoid head (train "
           "--head=sigmoid; the weights are the same shape)"),
    *(Preset(f"teacher_swin_{size}", _TEACHER, {"preset": size}, f"Swin-{size} teacher + the widened light decoder",
             family="teacher") for size in ("micro", "tiny", "base", "large")),
)}
MODELS = PRESETS  # name -> Preset (`name in MODELS`: the names --model accepts)


def resolve(spec):
    """'package.module:function' (or a `Preset`) -> the function."""
    if isinstance(spec, Preset):
        spec = spec.builder
    module, _, attr = spec.partition(":")
    if not module or not attr:
        raise ValueError(f"builder spec {spec!r} is not 'module:function'")
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def get_preset(name: str) -> Preset:
    """The preset `name`; an InputError (a ValueError) naming the known ones otherwise."""
    if name not in PRESETS:
        raise InputError(f"Unknown model {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name]


def get_builder(name: str):
    """The builder for preset `name` with its preset keyword arguments bound."""
    return get_preset(name).builder_fn()


def build_model(name: str, **kwargs):
    return get_preset(name).build(**kwargs)


def student_preset(decoder: str = "mix") -> str:
    """The preset name of the student with decoder kind `decoder`: "student" for the paper's mix, else
    "student_<kind>" (what a run trained with `--decoder` is)."""
    name = DEFAULT if decoder == "mix" else f"student_{decoder}"
    if name not in PRESETS:
        raise ValueError(f"no student preset for decoder {decoder!r}; kinds: mix, conv3x3, conv1x1")
    return name


def trained_preset(model: str = DEFAULT, decoder: str = "mix", head: str = "relu") -> str:
    """The preset a run trains with train's ``--model``, ``--decoder`` and ``--head`` (what evaluate, export and
    predict must build for its weights): `model`, or student_<kind> for a decoder other than mix, student_sigmoid
    for the sigmoid head."""
    if head == "sigmoid":
        if model != DEFAULT or decoder != "mix":
            raise ValueError("the sigmoid head has a preset for the student with the mix decoder only "
                             "(student_sigmoid)")
        return "student_sigmoid"
    if model != DEFAULT:
        return get_preset(model).name
    return student_preset(decoder)


def run_flags_file(weights) -> str:
    """The run's ``flags.txt`` next to `weights` (whether or not it exists)."""
    return os.path.join(os.path.dirname(os.path.abspath(os.fspath(weights))), RUN_FLAGS)


def run_preset(weights) -> str | None:
    """The preset the run that wrote `weights` trained, from its flags.txt (``--model``, and ``--decoder`` and
    ``--head`` for the student: `trained_preset`); None without a flags.txt or one that names no ``--model`` (not a
    run).
    InputError naming the file for a --model or --decoder that no preset has."""
    path = run_flags_file(weights)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (FileNotFoundError, NotADirectoryError):
        return None
    found = {k: v.strip() for k, v in re.findall(r"^--(model|decoder|head)=(.*)$", text, flags=re.MULTILINE)}
    if "model" not in found:
        return None
    try:
        return trained_preset(found["model"], found.get("decoder", "mix"), found.get("head", "relu"))
    except ValueError as err:
        raise InputError(f"{path}: {err}") from None


def preset_for_weights(weights, model: str | None = None, what: str = "--model") -> str:
    """The preset of Keras `weights`: `model` if given, else the run's (`run_preset`), else "student". A `model`
    that contradicts the run is an InputError (``what``: the flag or argument named in it)."""
    if model is not None:
        get_preset(model)
    run = run_preset(weights) if weights else None
    if model is None:
        return run or DEFAULT
    if run is not None and model != run:
        raise InputError(f"{what}={model} contradicts the run of {os.fspath(weights)}: {run_flags_file(weights)} "
                         f"trained {run} (leave {what} out to use it)")
    return model

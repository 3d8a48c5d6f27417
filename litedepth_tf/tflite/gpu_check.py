"""Can the LiteRT GPU delegate run a `.tflite` model whole? An op-by-op report, before the model meets a phone.

Two sources, merged per op into rows ``{"subgraph", "index", "op", "gpu_ok", "reason", "source"}``:

1. TensorFlow's model analyzer, ``tf.lite.experimental.Analyzer.analyze(model_content=..., gpu_compatibility=True)``
   (it prints its report; captured here). It lists the ops and, in TensorFlow builds that carry the check, a line
   ``GPU COMPATIBILITY WARNING: <reason>`` under each op the delegate would leave to the CPU. Those warnings are
   parsed (``source: "analyzer"``). The tensorflow-cpu 2.21 wheel does NOT carry the check: its analyzer prints
   "Your model looks compatible with GPU delegate" for every model, a TensorFlow (Flex) op or TOPK_V2 included
   (the warning strings are absent from its libraries). So:
2. the delegate's own rules, ported from TensorFlow's ``lite/tools/versioning/gpu_compatibility.cc`` (the function
   the analyzer and the delegate's partitioner call; ``source: "rules"``): the set of builtin ops it parses (others:
   "Not supported op X"), the custom ops it knows (others, Flex ops too: "Not supported custom op X"), and each op's
   constraints on runtime / constant inputs, fused activations, strides, axes, paddings, masks, broadcasting and
   cast types. As the delegate's fp16 partition helper does, the output of a DEQUANTIZE of a constant counts as a
   constant (fp16 exports keep their weights in float16 behind DEQUANTIZE ops, which the delegate folds).

`gpu_ok` is False when either source objects; `reason` names the op and why. A model passes when every op passes.
This is an offline check: a device may still fail at run time (driver, memory), which only `benchmark_model
--use_gpu=true` on the device shows (docs/deployment.md).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import re

import numpy as np
import tensorflow as tf
from tensorflow.lite.python import schema_py_generated as schema
from tensorflow.lite.tools import flatbuffer_utils

OP_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
TYPE_NAMES = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
T = schema.TensorType
FLOATS = (T.FLOAT32, T.FLOAT16)

# Ops accepted on their name alone: in gpu_compatibility.cc they have no condition (CONCATENATION ... LEAKY_RELU) or
# conditions on layouts this project never exports (EMBEDDING_LOOKUP ... STABLEHLO_CLAMP), not ported here.
ALWAYS_OK = {"CONCATENATION", "PACK", "RELU_N1_TO_1", "PRELU", "SPLIT", "SPLIT_V", "RELU", "RELU6", "LEAKY_RELU",
             "EMBEDDING_LOOKUP", "DYNAMIC_UPDATE_SLICE", "LSTM", "ONE_HOT", "STABLEHLO_CLAMP"}
UNARY = {"ABS", "CEIL", "COS", "ELU", "EXP", "FLOOR", "GELU", "LOG", "LOGISTIC", "NEG", "RSQRT", "SIGN", "SIN",
         "SQRT", "SQUARE", "TANH"}
BINARY = {"ATAN2", "DIV", "EQUAL", "FLOOR_DIV", "FLOOR_MOD", "GREATER", "GREATER_EQUAL", "LOGICAL_AND", "LESS",
          "LESS_EQUAL", "MAXIMUM", "MINIMUM", "NOT_EQUAL", "POW", "SQUARED_DIFFERENCE", "SUB"}
ONE_IN_ONE_OUT = {"HARD_SWISH", "QUANTIZE", "RESHAPE", "TILE", "TRANSPOSE", "RESIZE_NEAREST_NEIGHBOR"}
REDUCE = {"REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD", "SUM"}
CUSTOM_OK = {"Convolution2DTransposeBias", "MaxPoolingWithArgmax2D", "MaxUnpooling2D", "Resampler"}

_OP_LINE = re.compile(r"^\s*Op#(\d+)\s+([A-Za-z0-9_]+)\(")
_SUBGRAPH_LINE = re.compile(r"^Subgraph#(\d+)\s")
_WARNING = "GPU COMPATIBILITY WARNING:"
_SUMMARY = re.compile(r"Subgraph#\d+ has GPU delegate compatibility issues at nodes")


class GpuIncompatibleError(ValueError):
    """The model has ops the GPU delegate would leave to the CPU (the message names them)."""


@dataclasses.dataclass
class GpuReport:
    """Per-op verdicts of one model. `analyzer_says_compatible`: the analyzer's own summary line (None if absent)."""

    path: str
    ops: list
    analyzer_says_compatible: bool | None
    analyzer_warnings: int
    tensorflow: str

    @property
    def compatible(self) -> bool:
        return all(r["gpu_ok"] for r in self.ops)

    @property
    def incompatible(self) -> list:
        return [r for r in self.ops if not r["gpu_ok"]]

    def summary(self) -> dict:
        """The model card's entry: verdict, op counts per type and every incompatible row in full."""
        counts = {}
        for r in self.ops:
            counts[r["op"]] = counts.get(r["op"], 0) + 1
        return {"compatible": self.compatible, "ops": len(self.ops), "op_types": dict(sorted(counts.items())),
                "incompatible": self.incompatible, "analyzer_says_compatible": self.analyzer_says_compatible,
                "analyzer_warnings": self.analyzer_warnings,
                "checker": f"tf.lite.experimental.Analyzer (TensorFlow {self.tensorflow}) + the GPU delegate's "
                           "rules (litedepth_tf.tflite.gpu_check)"}

    def error_message(self) -> str:
        bad = self.incompatible
        names = ", ".join(f"op #{r['index']} {r['op']} ({r['reason']})" for r in bad[:5])
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        return (f"{self.path}: {len(bad)} of {len(self.ops)} ops would fall back from the GPU delegate to the CPU: "
                f"{names}{more}")


def analyzer_text(model_content: bytes) -> str:
    """The analyzer's printed report (Python `print` of the C++ analysis, captured from sys.stdout)."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        tf.lite.experimental.Analyzer.analyze(model_content=model_content, gpu_compatibility=True)
    return buf.getvalue()


def parse_analyzer(text: str) -> tuple[list, dict, bool | None]:
    """Analyzer report -> ([(subgraph, op index, op name)], {(subgraph, index): warning}, summary verdict).

    A ``GPU COMPATIBILITY WARNING: reason`` line belongs to the op line above it; the closing
    ``... has GPU delegate compatibility issues at nodes ...`` line gives the verdict False, ``looks compatible``
    True."""
    ops, warnings, verdict, subgraph, last = [], {}, None, 0, None
    for line in text.splitlines():
        m = _SUBGRAPH_LINE.match(line)
        if m:
            subgraph, last = int(m.group(1)), None
            continue
        m = _OP_LINE.match(line)
        if m:
            last = (subgraph, int(m.group(1)))
            ops.append((subgraph, int(m.group(1)), m.group(2)))
            continue
        if _WARNING in line:
            reason = line.split(_WARNING, 1)[1].strip()
            if _SUMMARY.search(line):
                verdict = False
            elif last is not None:
                warnings[last] = (warnings[last] + "; " if last in warnings else "") + reason
        elif "looks compatible with GPU delegate" in line and verdict is None:
            verdict = True
        elif line.startswith("Tensors of Subgraph"):
            last = None
    return ops, warnings, verdict


# ------------------------------------------------------------------------------------------ the delegate's rules


@dataclasses.dataclass
class _Spec:
    type: int | None  # None: an omitted optional input (index -1)
    dims: list
    is_const: bool


def _op_name(model, op) -> str:
    code = model.operatorCodes[op.opcodeIndex]
    builtin = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
    if OP_NAMES.get(builtin) == "CUSTOM":
        custom = code.customCode
        return custom.decode() if isinstance(custom, bytes) else str(custom)
    return OP_NAMES.get(builtin, f"BUILTIN_{builtin}")


def _runtime(specs) -> int:
    return sum(1 for s in specs if s.type is not None and not s.is_const)


def _consts(specs) -> int:
    return sum(1 for s in specs if s.is_const)


def _io(ins, outs, runtime, n_out):
    got = _runtime(ins)
    if got != runtime:
        return f"Expected {runtime} runtime input tensor(s), but node has {got} runtime input(s)."
    if len(outs) != n_out:
        return f"Expected {n_out} output tensor(s), but node has {len(outs)} output(s)."
    return None


def _io_consts(ins, outs, runtime, consts, n_out):
    if _consts(ins) != consts:
        return f"Expected {consts} const input tensor(s), but node has {_consts(ins)} const input(s)."
    return _io(ins, outs, runtime, n_out)


def _activation(opts) -> str | None:
    act = getattr(opts, "fusedActivationFunction", 0) if opts is not None else 0
    return "fused activation SIGN_BIT is not supported" if act == schema.ActivationFunctionType.SIGN_BIT else None


def _conv_io(ins, outs) -> str | None:
    runtime = _runtime(ins)
    if runtime > 2:
        return f"Expected 1 or 2 input tensor(s), but node has {runtime} runtime inputs."
    if len(outs) != 1:
        return f"Expected 1 output tensor(s), but node has {len(outs)} runtime outputs."
    if runtime == 1 and len(ins) < 2:
        return "the filter input is missing"
    return None


def _strides(opts, dilation=True) -> str | None:
    if opts.strideH <= 0 or opts.strideW <= 0:
        return f"Incorrect stride values: stride_height = {opts.strideH}, stride_width = {opts.strideW}"
    if dilation and (opts.dilationHFactor <= 0 or opts.dilationWFactor <= 0):
        return (f"Incorrect dilation values: dilation_height = {opts.dilationHFactor}, "
                f"dilation_width = {opts.dilationWFactor}")
    return None


def _axes(name, ins, idx) -> str | None:
    if idx >= len(ins):
        return f"{name} needs an axes input"
    if not ins[idx].is_const:
        return f"{name} is only supported with constant axes."
    if ins[idx].type != T.INT32:
        return f"{name} supports int32 tensor for axes. But node has {TYPE_NAMES.get(ins[idx].type)}"
    return None


def _broadcastable(a, b) -> str | None:
    """Enhanced broadcasting (what the offline check assumes): NumPy rules when both inputs have rank > 1."""
    if len(a.dims) > 1 and len(b.dims) > 1 and len(a.dims) != len(b.dims):
        longer, shorter = (a.dims, b.dims) if len(a.dims) >= len(b.dims) else (b.dims, a.dims)
        for x, y in zip(reversed(longer), reversed(shorter)):
            if x != y and x != 1 and y != 1:
                return f"Doesn't support broadcasting - input0: {list(a.dims)}, input1: {list(b.dims)}"
    return None


def _check(name, ins, outs, opts) -> str | None:
    """The delegate's verdict for one op: None = supported, else the reason (gpu_compatibility.cc, in order)."""
    if name in ALWAYS_OK:
        return None
    if name in UNARY:
        return _io_consts(ins, outs, 1, 0, 1)
    if name in BINARY:
        if _io_consts(ins, outs, 2, 0, 1) and _io_consts(ins, outs, 1, 1, 1):
            return "Op can only handle 1 or 2 operand(s)."
        return _activation(opts) if name in ("DIV", "SUB") else None
    if name in ONE_IN_ONE_OUT:
        return _io(ins, outs, 1, 1)
    if name in REDUCE:
        return _io(ins, outs, 1, 1) or _axes(name, ins, 1)
    if name == "ADD":
        return "ADD requires two input tensors." if len(ins) != 2 else _broadcastable(ins[0], ins[1])
    if name == "ADD_N":
        return None if len(ins) == 2 else "ADD_N only supports 2 inputs."
    if name == "MUL":
        if len(ins) != 2:
            return "MUL requires two input tensors."
        a, b = ins
        if len(a.dims) == len(b.dims):
            if any(x < y for x, y in zip(a.dims, b.dims)) and any(y < x for x, y in zip(a.dims, b.dims)):
                return "MUL requires one tensor that not less than second in all dimensions."
        elif _broadcastable(a, b):
            return _broadcastable(a, b)
        return _activation(opts)
    if name in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        if _io(ins, outs, 1, 1):
            return _io(ins, outs, 1, 1)
        if opts.filterHeight <= 0 or opts.filterWidth <= 0:
            return f"Incorrect kernel values: kernel_height = {opts.filterHeight}, kernel_width = {opts.filterWidth}"
        return _strides(opts, dilation=False) or _activation(opts)
    if name == "BATCH_MATMUL":
        return None if len(ins) == 2 and len(outs) == 1 else "Expected 2 inputs and 1 output"
    if name == "CAST":
        if _io(ins, outs, 1, 1):
            return _io(ins, outs, 1, 1)
        src, dst = ins[0].type, outs[0].type
        if (src == T.BOOL and dst in FLOATS) or (src in FLOATS and dst == T.BOOL) or \
                (src in (T.FLOAT32, T.INT32) and dst in (T.FLOAT32, T.INT32)):
            return None
        return f"Not supported Cast case. Input type: {TYPE_NAMES.get(src)} and output type: {TYPE_NAMES.get(dst)}"
    if name == "CONV_2D":
        return _conv_io(ins, outs) or _strides(opts) or _activation(opts)
    if name == "TRANSPOSE_CONV":
        return _conv_io(ins, outs) or _strides(opts, dilation=False)
    if name == "DEPTHWISE_CONV_2D":
        bad = _conv_io(ins, outs) or _strides(opts) or _activation(opts)
        if bad:
            return bad
        x, w, y = ins[0], ins[1], outs[0]
        if len(x.dims) != 4 or len(w.dims) != 4 or len(y.dims) != 4:
            return "input, filter and output must be 4-D"
        if x.dims[0] != y.dims[0]:
            return "input.b != output.b"
        if w.dims[3] != y.dims[3]:
            return "filter.i != output.c"
        if y.dims[3] != x.dims[3] * opts.depthMultiplier:
            return "output.c != input.c * depth_multiplier"
        if len(ins) > 2 and ins[2].type is not None and int(np.prod(ins[2].dims)) != y.dims[3]:
            return "bias.size != output.c"
        if opts.depthMultiplier != 1 and x.dims[3] != 1:
            return "depth_multiplier != 1 && input.c != 1"
        return None
    if name == "CUMSUM":
        if len(ins) != 2:
            return "Expects 2 inputs and 1 output"
        if ins[0].type not in FLOATS or outs[0].type != ins[0].type or ins[1].type != T.INT32 or not ins[1].is_const:
            return "Input/output must be float type and indices must be constant int32 type"
        return None
    if name == "DENSIFY":
        return _io(ins, outs, 0, 1)
    if name in ("DEPTH_TO_SPACE", "SPACE_TO_DEPTH"):
        if _io(ins, outs, 1, 1):
            return _io(ins, outs, 1, 1)
        return None if opts.blockSize > 1 else f"{name} block_size must be > 1 (got {opts.blockSize})"
    if name == "DEQUANTIZE":
        if len(ins) != 1 or len(outs) != 1:
            return f"Expected 1 input & output each from Dequantize, got: {len(ins)}, {len(outs)}"
        return "Unsupported dequantization type." if ins[0].type == T.INT16 else None
    if name == "FULLY_CONNECTED":
        if opts.weightsFormat != 0:
            return f"Unsupported FullyConnected weights format: {opts.weightsFormat}"
        if _runtime(ins) > 2:
            return "FullyConnected doesn't support more than 2 runtime inputs."
        if ins[0].is_const:
            return "FullyConnected doesn't support constant input."
        if opts.keepNumDims and len(ins[0].dims) != len(outs[0].dims):
            return "Input and output dimensions different and FullyConnected doesn't support keep_num_dims."
        return None
    if name == "GATHER":
        if _io_consts(ins, outs, 2, 0, 1) and _io_consts(ins, outs, 1, 1, 1):
            return "Op can only handle 1 or 2 operand(s)."
        if ins[0].type == T.INT32:
            return "Does not accept INT32 input."
        if len(ins[1].dims) != 1:
            return "Only support 1D indices"
        return None if ins[1].type == T.INT32 else "Only accept INT32 indices"
    if name == "MEAN":
        return _io_consts(ins, outs, 1, 1, 1) or _axes(name, ins, 1)
    if name in ("SELECT", "SELECT_V2"):
        if len(ins) != 3 or len(outs) != 1:
            return "Expected 3 inputs and 1 output"
        if ins[0].type not in FLOATS + (T.BOOL,) or ins[1].type not in FLOATS or ins[2].type not in FLOATS:
            return "Cond must be float or bool type, if, else tensors must be float"
        for k in (1, 2):
            d = ins[k].dims
            if len(d) and list(d) != list(outs[0].dims) and (len(d) > 1 or d[0] > 1):
                return "if / else tensors must have the output's shape or be scalars"
        return None
    if name == "SLICE":
        if len(ins) < 3:
            return f"SLICE requires 3 inputs, but node has {len(ins)} inputs."
        rank = len(ins[0].dims)
        return None if rank in (3, 4) else \
            f"SLICE supports for 3 or 4 dimensional tensors only, but node has {rank} dimensional tensors."
    if name == "SOFTMAX":
        return None if opts.beta == 1 else "Softmax.beta != 1 is not supported."
    if name == "STRIDED_SLICE":
        for mask in ("ellipsisMask", "newAxisMask", "shrinkAxisMask"):
            if getattr(opts, mask):
                return f"Slice does not support {mask}."
        if len(ins) < 4:
            return "STRIDED_SLICE requires 4 inputs."
        return None if len(ins[0].dims) in (3, 4) else "STRIDED_SLICE supports for 3 or 4 dimensional tensors only."
    if name == "RESIZE_BILINEAR":
        if _io(ins, outs, 1, 1):
            return _io(ins, outs, 1, 1)
        return "If half_pixel_centers is True, align_corners must be False." \
            if opts.alignCorners and opts.halfPixelCenters else None
    if name in ("PAD", "PADV2", "MIRROR_PAD"):
        if name == "MIRROR_PAD" and opts.mode != schema.MirrorPadMode.REFLECT:
            return "Only Reflective padding is supported for Mirror Pad operation."
        if _io(ins, outs, 1, 1):
            return _io(ins, outs, 1, 1)
        pads = ins[1].dims if len(ins) > 1 else []
        if len(pads) != 2 or pads[0] not in (3, 4) or pads[1] != 2:
            return f"Invalid paddings tensor shape: expected 4x2 or 3x2, got {list(pads)}"
        return None
    if name in CUSTOM_OK:
        return None
    if name.startswith("BUILTIN_") or name in OP_NAMES.values():
        return f"Not supported op {name}"
    return f"Not supported custom op {name}"


def rule_check(model_content: bytes) -> list:
    """[(subgraph, op index, op name, reason or None)] for every op of every subgraph (the delegate's rules)."""
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(model_content))
    buffers = model.buffers or []
    rows = []
    for sg_index, sg in enumerate(model.subgraphs):
        folded = set()  # outputs of DEQUANTIZE(constant): constants for the delegate (fp16 weights)

        def spec(t, folded=folded, sg=sg):
            if t < 0:
                return _Spec(None, [], False)
            tensor = sg.tensors[t]
            data = buffers[tensor.buffer].data if 0 < tensor.buffer < len(buffers) else None
            const = (data is not None and len(data) > 0) or t in folded
            dims = [] if tensor.shape is None else [int(d) for d in tensor.shape]
            return _Spec(int(tensor.type), dims, const)

        for i, op in enumerate(sg.operators or []):
            name = _op_name(model, op)
            ins = [spec(int(t)) for t in (op.inputs if op.inputs is not None else [])]
            outs = [spec(int(t)) for t in (op.outputs if op.outputs is not None else [])]
            if name == "DEQUANTIZE" and ins and ins[0].is_const:
                folded.update(int(t) for t in op.outputs)
            try:
                reason = _check(name, ins, outs, op.builtinOptions)
            except (AttributeError, IndexError, TypeError) as err:  # options or tensors missing: say so
                reason = f"cannot check {name}: {type(err).__name__}: {err}"
            rows.append((sg_index, i, name, reason))
    return rows


def check_gpu_compatibility(model) -> GpuReport:
    """`model`: a `.tflite` path or its bytes -> GpuReport (see the module docstring)."""
    if isinstance(model, (bytes, bytearray)):
        path, data = "<model bytes>", bytes(model)
    else:
        path = os.fspath(model)
        with open(path, "rb") as fh:
            data = fh.read()
    text = analyzer_text(data)
    listed, warnings, verdict = parse_analyzer(text)
    rules = rule_check(data)
    names = {(sg, i): name for sg, i, name in listed}
    ops = []
    for sg, i, name, reason in rules:
        analyzer_name = names.get((sg, i))
        reasons, sources = [], []
        if (sg, i) in warnings:
            reasons.append(warnings[(sg, i)])
            sources.append("analyzer")
        if reason is not None:
            reasons.append(reason)
            sources.append("rules")
        if analyzer_name is not None and analyzer_name != name:
            reasons.append(f"the analyzer lists this op as {analyzer_name}")
            sources.append("analyzer")
        ops.append({"subgraph": sg, "index": i, "op": name, "gpu_ok": not reasons, "reason": "; ".join(reasons),
                    "source": "+".join(dict.fromkeys(sources))})
    return GpuReport(path, ops, verdict, len(warnings), tf.__version__)


def format_report(report: GpuReport) -> str:
    """A compact report: the verdict, the op types with counts, then one line per op that would fall back."""
    s = report.summary()
    types = ", ".join(f"{k} x{v}" for k, v in s["op_types"].items())
    head = (f"GPU delegate: {'compatible' if report.compatible else 'NOT compatible'}, "
            f"{len(report.ops) - len(report.incompatible)}/{len(report.ops)} ops supported ({types})")
    lines = [head]
    for r in report.incompatible:
        lines.append(f"  op #{r['index']} {r['op']}: {r['reason']} [{r['source']}]")
    if report.analyzer_says_compatible and report.incompatible and not report.analyzer_warnings:
        lines.append(f"  (TensorFlow {report.tensorflow}'s analyzer said 'compatible': its GPU check is not built "
                     "into this wheel; the verdicts above come from the delegate's rules)")
    return "\n".join(lines)

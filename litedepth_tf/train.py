"""Train a LiteDepth model (student by default) from an absl flagfile.

    python -m litedepth_tf.train --flagfile=flags/demo.cfg            # synthetic demo, minutes on a laptop CPU
    python -m litedepth_tf.train --flagfile=flags/student.cfg --data_root=/data/mai2022
    python -m litedepth_tf.train --flagfile=flags/demo.cfg --resume   # continue from run_dir/ckpt
    tensorboard --logdir runs/

Writes into `--run_dir`: `flags.txt` (every resolved flag, reusable as `--flagfile`), TensorBoard events,
`ckpt/` (tf.train.CheckpointManager), `best.weights.h5` (lowest validation si-RMSE), `last.weights.h5`,
`best_metrics.json`, `summary.json`, and `train.lock` while it runs (a second training into the same
`--run_dir` refuses to start, naming the first; `litedepth_tf.common.runlock`).

Faults (docs/reliability.md): `--resume` falls back to the newest intact checkpoint when newer ones are damaged
(none intact: one line, exit 2); a write that fails (full disk) ends the run with one line naming the file and the
last complete checkpoint, exit 2; SIGTERM / SIGINT write a checkpoint at the current step and exit 128 + the signal
(143 / 130) with a line saying so, and `--resume` continues from it.

Other data sets: ``--dataset nyu|kitti|diode|folder`` (`data.datasets`; default mai2022) with ``--split_file`` /
``--val_split_file`` (the toolboxes' ``rgb depth [focal]`` lists) or the preset's split folders; the preset gives
the depth scale, frame size, intrinsics, valid range and R-crop sizes unless a flag overrides them
(``flags/nyu.cfg``, ``flags/kitti.cfg``).

Flags are grouped by the module they configure: data (`data.pipeline`), model (`models.presets`), loss
(`training.losses` / `training.reweight`), optimizer (`training.schedules` + Keras optimizer) and run
(`training.loop`). Every flag is validated before any
work starts; a bad value is an error naming the flag.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys

import keras
import tensorflow as tf
from absl import flags

from litedepth_tf.common import cli
from litedepth_tf.common import files as fsutil
from litedepth_tf.common.runlock import RunLock
from litedepth_tf.data import datasets
from litedepth_tf.data import pipeline as input_pipeline
from litedepth_tf.data.bad_samples import BadSampleCounter, bad_sample_error
from litedepth_tf.models import presets as registry
from litedepth_tf.evaluation.metrics import median_train_depth
from litedepth_tf.models.decoder import DECODER_KINDS, HEADS, set_head_bias
from litedepth_tf.models.presets import MODELS
from litedepth_tf.models.student import load_weights
from litedepth_tf.models.teacher import TEACHER_NO_WEIGHT_DECAY
from litedepth_tf.training import losses, reweight
from litedepth_tf.training.distill import DISTILLERS, load_teacher_for_distillation, make_distill_fn
from litedepth_tf.training.distribute import is_chief, strategy_from_name, worker_id
from litedepth_tf.training.loop import LoopConfig, Trainer, make_optimizer
from litedepth_tf.training.losses import compute_losses
from litedepth_tf.training.preemption import Preempted
from litedepth_tf.training.schedules import WarmupPolyDecay

MAI_LAYOUT_HELP = ("Put the MAI 2022 depth data set there as ROOT/train/rgb/*.png + ROOT/train/depth/*.png and "
                   "ROOT/local_val/rgb/*.png + ROOT/local_val/depth/*.png (uint16 depth PNGs in millimetres), or "
                   "generate synthetic data: python -m litedepth_tf.synthetic --out data/synthetic")


def define_flags(fv: flags.FlagValues = flags.FLAGS) -> flags.FlagValues:
    """Defines the training flags into `fv` (the global FLAGS by default; tests pass a fresh FlagValues)."""
    d = dict(flag_values=fv)
    # ---- data (litedepth_tf.data.pipeline) -----------------------------------------------------------------
    flags.DEFINE_string("data_root", None, "Data set root: ROOT/<split>/{rgb,depth}/*.png (MAI layout), or the "
                        "--dataset's layout / the root of --split_file paths.", **d)
    flags.DEFINE_string("train_split", None, "Training split folder under --data_root (default: the dataset's; "
                        "mai2022: train).", **d)
    flags.DEFINE_string("val_split", None, "Validation split folder ('' = no validation; default: the dataset's; "
                        "mai2022: local_val).", **d)
    flags.DEFINE_integer("batch_size", 16, "Global batch size (split over replicas).", **d)
    flags.DEFINE_list("crop_sizes", None, "R-crop sizes HxW at the frame resolution (one drawn per batch; default: "
                      "the dataset's, mai2022 240x384,360x512,480x640).", **d)
    flags.DEFINE_list("intrinsics", None, "Camera fx,fy,cx,cy of the stored frames in pixels (the VNL loss gets them "
                      "scaled per crop; KITTI: of the raw frames, shifted by its crop; a split-file focal replaces "
                      "fx, fy for its sample; default: the dataset's).", **d)
    datasets.define_dataset_flags(fv, "Training samples: a split list (rgb depth [focal] per line, paths relative "
                                  "to --data_root, 'None' lines skipped) instead of --train_split.", intrinsics=False)
    flags.DEFINE_string("val_split_file", None, "Validation samples as a split list (instead of --val_split).", **d)
    flags.DEFINE_integer("depth_stride", 1, "Loss targets on every n-th pixel of the R-crop's depth (1 = native crop "
                         "resolution, the paper; s = s^2 fewer loss pixels; the CPU demo uses 4).", lower_bound=1, **d)
    flags.DEFINE_bool("cache_in_memory", False, "Decode every training frame once into host memory (small sets).", **d)
    flags.DEFINE_bool("deterministic", False, "Fixed data order + deterministic ops: the same run gives the same "
                      "weights on the same machine. With --cache_in_memory the input pipeline still prefetches; "
                      "without it, its decode guard holds stateful ops, so under op determinism tf.data decodes "
                      "each batch on demand (slower).", **d)
    flags.DEFINE_enum("on_bad_sample", "skip", ["skip", "fail"], "A corrupt, truncated, missing or all-invalid "
                      "sample: skip it (named in a warning, counted in TensorBoard data/skipped_samples) or stop "
                      "with an error naming the file.", **d)
    flags.DEFINE_integer("val_max_images", 0, "Validate on at most this many images (0 = all).", **d)
    # ---- model (litedepth_tf.models.presets) -----------------------------------------------------------------------
    flags.DEFINE_string("model", "student", "Model preset name in litedepth_tf.models.presets.MODELS.", **d)
    flags.DEFINE_string("encoder_weights", None, "Encoder initialisation: 'imagenet' or a local file (student: "
                        "Keras MobileNetV3 weights; teacher: converted Swin .npz).", **d)
    flags.DEFINE_string("init_weights", None, "Start from these full-model weights (.weights.h5), e.g. stage 1.", **d)
    flags.DEFINE_string("head_bias_init", "median", "Initial bias of the depth head (not with --init_weights): "
                        "median (the training split's median depth: every pixel starts in the ReLU's linear part), "
                        "zero (the authors' init) or a depth in metres.", **d)
    flags.DEFINE_enum("head", "relu", list(HEADS), "Depth head: relu (the paper; clamped at inference) or sigmoid "
                      "(max_depth * sigmoid).", **d)
    flags.DEFINE_string("teacher_weights", None, "Distillation: frozen teacher weights (.weights.h5); enables the "
                        "structure-aware distillation loss.", **d)
    flags.DEFINE_string("teacher_preset", "tiny", "Distillation: teacher preset (litedepth_tf.models.teacher).", **d)
    flags.DEFINE_float("distill_weight", 10.0, "Distillation: weight of each level's affinity loss.", **d)
    # ---- ablation switches (paper Tables 3, 5, 6; defaults = the paper's choices) -----------------------------
    flags.DEFINE_enum("decoder", "mix", list(DECODER_KINDS), "Student decoder: mix (3x3 at stride 4, 1x1 "
                      "elsewhere: the paper), conv3x3 or conv1x1 (evaluate/export it as --model=student_<kind>).", **d)
    flags.DEFINE_list("loss_terms", list(losses.TERMS), "Loss terms combined by --loss_weighting: any non-empty "
                      "subset of si,grad,vnl,robust.", **d)
    flags.DEFINE_enum("grad_nan_mask", "paper", list(losses.GRAD_MASKS), "Gradient loss: paper (each direction "
                      "averaged over the pairs of two valid pixels), authors_code (what the authors' code computes: "
                      "a pair touching a hole has target 0, every pair counts) or none (holes at 0 m).", **d)
    flags.DEFINE_enum("distiller", "structure", list(DISTILLERS), "Distillation loss at feat_4/8/16: structure "
                      "(affinities, the paper), l2 or channel (Shu et al. 2021).", **d)
    flags.DEFINE_bool("distill_ramp", False, "Distillation weight x min(0.999, 1 - 101/(step + 101)) (authors' "
                      "code).", **d)
    # ---- loss (litedepth_tf.training.losses, litedepth_tf.training.reweight) ---------------------------------------------------
    flags.DEFINE_enum("loss_weighting", "dynamic", ["dynamic", "fixed"], "dynamic: learnable sigmas (L = sum "
                      "0.5/s^2 w L_i + log(1+s^2), the authors' auto config); fixed: sum w L_i.", **d)
    flags.DEFINE_list("loss_weights", [str(w) for w in reweight.LOSS_WEIGHTS], "Weights w of si,grad,vnl,robust, "
                      "applied before the re-weighting (the auto config's loss_weight; the distillation config "
                      "without re-weighting: 1,0.25,2.5,0.6).", **d)
    flags.DEFINE_float("si_lambda", 0.15, "Scale-invariant loss: sqrt(Var(g) + lambda * mean(g)^2).", **d)
    flags.DEFINE_bool("si_per_image", False, "Scale-invariant loss per image, then the mean over the batch "
                      "(default: one Var/mean over all valid pixels of the batch, as the authors' SigLoss).", **d)
    flags.DEFINE_float("robust_alpha", 1.0, "Barron robust loss alpha.", **d)
    flags.DEFINE_float("robust_c", 2.0, "Barron robust loss scale c.", **d)
    flags.DEFINE_float("vnl_ratio", 0.15, "VNL: triplets per batch = ratio x the prediction's pixels (authors: "
                       "sample_ratio 0.15).", **d)
    flags.DEFINE_enum("vnl_intrinsics", "authors", list(losses.VNL_INTRINSICS), "VNL back-projection: authors (the "
                      "frame's focal scaled to the prediction, principal point at its centre, for every crop) or "
                      "crop (each crop's own intrinsics).", **d)
    # ---- optimizer (litedepth_tf.training.schedules) ------------------------------------------------------------------
    flags.DEFINE_enum("optimizer", "adam", ["adam", "adamw"], "adam (student) or adamw (teacher).", **d)
    flags.DEFINE_float("lr", 4e-3, "Peak learning rate (after warm-up).", **d)
    flags.DEFINE_float("min_lr", 1e-3, "Poly-decay floor (authors: lr / 4).", **d)
    flags.DEFINE_integer("warmup_steps", 1500, "Linear warm-up iterations.", **d)
    flags.DEFINE_float("warmup_ratio", 1e-4, "Warm-up starts at lr * warmup_ratio.", **d)
    flags.DEFINE_float("lr_power", 0.9, "Poly decay power.", **d)
    flags.DEFINE_float("adam_epsilon", 1e-3, "Adam epsilon (paper: 1e-3; the random-init CPU demo uses 1e-6).", **d)
    flags.DEFINE_float("weight_decay", 0.01, "AdamW weight decay (only with --optimizer=adamw).", **d)
    flags.DEFINE_float("clip_norm", 35.0, "Global gradient-norm clip.", **d)
    # ---- run (litedepth_tf.training.loop) --------------------------------------------------------------------------
    flags.DEFINE_string("run_dir", None, "Output folder (checkpoints, TensorBoard, weights, flags.txt).", **d)
    flags.DEFINE_integer("steps", 0, "Training steps; 0 = derive from --epochs.", **d)
    flags.DEFINE_float("epochs", 0.0, "Epochs over the training split (used when --steps=0).", **d)
    flags.DEFINE_integer("seed", 0, "Seed for weights, data order/augmentation and loss sampling.", **d)
    flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "multiworker"],
                      "tf.distribute strategy (multiworker reads TF_CONFIG).", **d)
    flags.DEFINE_bool("resume", False, "Continue from the latest checkpoint in --run_dir/ckpt.", **d)
    flags.DEFINE_integer("log_every", 50, "Steps between TensorBoard scalars / progress updates.", **d)
    flags.DEFINE_integer("image_every", 500, "Steps between TensorBoard images (0 = never).", **d)
    flags.DEFINE_integer("eval_every", 1000, "Steps between validations (0 = only at the end).", **d)
    flags.DEFINE_integer("ckpt_every", 500, "Steps between checkpoints (0 = only at the end).", **d)
    flags.DEFINE_integer("keep_checkpoints", 3, "Checkpoints kept by the CheckpointManager.", **d)
    flags.DEFINE_bool("checkpoint_iterator", True, "Save the data iterator position in checkpoints.", **d)
    flags.DEFINE_integer("precise_bn_batches", 20, "Before each validation and at the end, set BatchNorm statistics "
                         "to the mean over this many training batches (0 = keep the moving averages).", **d)
    flags.DEFINE_integer("min_free_mb", 200, "Refuse to start unless --run_dir can be written and has this much "
                         "free space (MiB).", **d)
    flags.DEFINE_integer("max_bad_steps", 5, "Abort after this many non-finite steps in a row (0 = never).", **d)

    positive = ("batch_size", "log_every", "keep_checkpoints")
    non_negative = ("steps", "epochs", "warmup_steps", "image_every", "eval_every", "ckpt_every", "max_bad_steps",
                    "val_max_images", "weight_decay", "precise_bn_batches", "min_free_mb")
    for name in positive:
        flags.register_validator(name, lambda v: v is not None and v > 0, message=f"--{name} must be > 0", **d)
    for name in non_negative:
        flags.register_validator(name, lambda v: v is not None and v >= 0, message=f"--{name} must be >= 0", **d)
    for name in ("lr", "clip_norm", "adam_epsilon", "robust_c", "lr_power", "distill_weight"):
        flags.register_validator(name, lambda v: v is not None and v > 0, message=f"--{name} must be > 0", **d)
    flags.register_validator("warmup_ratio", lambda v: 0 < v <= 1, message="--warmup_ratio must be in (0, 1]", **d)
    flags.register_validator("si_lambda", lambda v: 0 <= v <= 1, message="--si_lambda must be in [0, 1]", **d)
    flags.register_validator("head_bias_init", lambda v: v in ("median", "zero") or (_is_float(v) and float(v) > 0),
                             message="--head_bias_init must be median, zero or a depth > 0 in metres", **d)
    flags.register_validator("vnl_ratio", lambda v: 0 < v <= 1, message="--vnl_ratio must be in (0, 1]", **d)
    flags.register_validator("loss_weights", lambda v: len(v) == len(losses.TERMS) and all(
        _is_float(x) and float(x) >= 0 for x in v), message="--loss_weights must be 4 numbers >= 0 (si,grad,vnl,"
                             "robust)", **d)
    flags.register_validator("crop_sizes", lambda v: v is None or _valid_crops(v), message="--crop_sizes must be "
                             "HxW pairs, e.g. 240x384, each at most the frame size (480x640 for mai2022); see "
                             "litedepth_tf.data.datasets", **d)
    flags.register_validator("intrinsics", lambda v: v is None or (len(v) == 4 and all(_is_float(x) and float(x) > 0
                                                                                   for x in v)),
                             message="--intrinsics must be 4 positive numbers fx,fy,cx,cy", **d)
    flags.register_validator("loss_terms", lambda v: bool(v) and set(v) <= set(losses.TERMS),
                             message="--loss_terms must be a non-empty subset of si,grad,vnl,robust", **d)
    flags.register_multi_flags_validator(["model", "decoder"], lambda f: f["decoder"] == "mix" or f["model"] ==
                                         "student", message="--decoder other than mix needs --model=student", **d)
    flags.register_multi_flags_validator(["head", "decoder", "model"], _head_has_preset, message="--head=sigmoid "
                                         "has a preset for the student with the mix decoder only (student_sigmoid)",
                                         **d)
    flags.register_validator("model", _known_model, message="--model must be a name in litedepth_tf.models.presets.MODELS",
                             **d)
    flags.register_multi_flags_validator(["lr", "min_lr"], lambda f: 0 <= f["min_lr"] <= f["lr"],
                                         message="--min_lr must be in [0, --lr]", **d)
    flags.register_multi_flags_validator(["steps", "epochs"], lambda f: f["steps"] > 0 or f["epochs"] > 0,
                                         message="set --steps or --epochs (> 0)", **d)
    flags.mark_flags_as_required(["data_root", "run_dir"], flag_values=fv)
    return fv


def _is_float(x):
    try:
        float(x)
        return True
    except ValueError:
        return False


def _parse_crop(text):
    h, w = (int(v) for v in text.lower().split("x"))
    return h, w


def _valid_crops(values, frame=None):
    """HxW pairs, each at most ``frame`` (any positive size when the frame is not known yet)."""
    try:
        crops = [_parse_crop(v) for v in values]
    except ValueError:
        return False
    fh, fw = frame or (1 << 30, 1 << 30)
    return bool(crops) and all(0 < h <= fh and 0 < w <= fw for h, w in crops)


def _known_model(name):
    return name in MODELS


def _head_has_preset(f) -> bool:
    """--head with --model / --decoder names a preset (`presets.trained_preset` holds the rule)."""
    if f["head"] == "relu":
        return True
    try:
        registry.trained_preset(f["model"], f["decoder"], f["head"])
    except ValueError:
        return False
    return True


def check_data_root(root, splits, preset=None) -> None:
    """A clear error when the data set is not where the flags say (the split folders: for the pairs layout)."""
    if preset is not None and preset.name != datasets.MAI2022.name:
        if not root or not os.path.isdir(root):
            raise FileNotFoundError(f"--data_root={root!r} does not exist (--dataset={preset.name}: {preset.summary})")
        return
    if not root or not os.path.isdir(root):
        raise FileNotFoundError(f"--data_root={root!r} does not exist. {MAI_LAYOUT_HELP}")
    for split in splits:
        for sub in ("rgb", "depth"):
            if split and not os.path.isdir(os.path.join(root, split, sub)):
                raise FileNotFoundError(f"--data_root={root!r}: missing folder {os.path.join(root, split, sub)}. "
                                        f"{MAI_LAYOUT_HELP}")


def loss_config(f, preset=None):
    """LossConfig from the loss flags; the VNL camera from --intrinsics or the data set (its frame's focal
    lengths, which the authors' VNL scales to the prediction's size)."""
    kw = dict(si_lambda=f.si_lambda, si_per_image=f.si_per_image, robust_alpha=f.robust_alpha, robust_c=f.robust_c,
              grad_mask=f.grad_nan_mask, vnl_ratio=f.vnl_ratio, vnl_intrinsics=f.vnl_intrinsics)
    if preset is not None and preset.frame_size is not None and preset.intrinsics is not None:
        fx, fy = preset.frame_intrinsics()[:2]
        kw.update(vnl_focal=(fx, fy), vnl_frame=tuple(preset.frame_size))
    return losses.LossConfig(**kw)


def initial_head_depth(value: str, preset, pairs) -> float:
    """--head_bias_init's depth in metres: a number as given, or "median": the median valid depth of (up to 64
    evenly spaced) training depth maps, the depth a constant predictor would choose."""
    if value != "median":
        return float(value)
    return median_train_depth(None, "train", max_files=64, max_depth=preset.max_depth, progress=False,
                              pairs=pairs, depth_scale=preset.depth_scale)


def make_weighting(kind: str, terms=losses.TERMS, weights=None):
    return reweight.make_weighting(kind, terms, weights)


def model_name(f) -> str:
    """The preset the run trains (and evaluate / export must use): `presets.trained_preset` of the flags."""
    return registry.trained_preset(f.model, f.decoder, f.head)


def run(f) -> dict:
    """Trains with the parsed flags `f`; returns the trainer's summary."""

    preset = datasets.preset_from_flags(f)
    train_split = preset.splits[0] if f.train_split is None else f.train_split
    val_split = preset.splits[1] if f.val_split is None else f.val_split
    check_data_root(f.data_root, ([] if f.split_file else [train_split])
                    + ([val_split] if val_split and not f.val_split_file else []), preset)
    fsutil.check_writable(f.run_dir, f.min_free_mb * 2**20, space_hint=" (--min_free_mb)")  # before any work
    bad_samples = BadSampleCounter()  # this run's dropped samples (TensorBoard data/skipped_samples)
    strategy = strategy_from_name(f.strategy)
    if f.batch_size % strategy.num_replicas_in_sync:
        raise ValueError(f"--batch_size={f.batch_size} must be divisible by the {strategy.num_replicas_in_sync} "
                         f"replicas of --strategy={f.strategy}")
    chief = is_chief(strategy)
    # one run per folder (each worker of a multi-worker run locks its own: the chief run_dir, worker k .workerK)
    with RunLock(f.run_dir if chief else os.path.join(f.run_dir, f".worker{worker_id(strategy)}")):
        return _train(f, strategy, chief, bad_samples, preset, train_split, val_split)


def _train(f, strategy, chief, bad_samples, preset, train_split, val_split) -> dict:
    os.makedirs(f.run_dir, exist_ok=True)
    if chief:  # also proves the run directory is writable before any work starts
        fsutil.atomic_write_text(os.path.join(f.run_dir, "flags.txt"), f.flags_into_string())

    keras.utils.set_random_seed(f.seed)
    if f.deterministic:
        tf.config.experimental.enable_op_determinism()
    listing = datasets.list_samples(preset, f.data_root, None if f.split_file else train_split, f.split_file)
    preset = datasets.resolve_frame_size(preset, listing.pairs)
    n_train = len(listing.pairs)
    steps_per_epoch = max(n_train // f.batch_size, 1)
    total_steps = f.steps or max(int(round(f.epochs * steps_per_epoch)), 1)
    logging.info("%d training pairs (%s, frame %dx%d, network %dx%d), %d steps/epoch, %d steps", n_train,
                 preset.name, *preset.frame_size, *preset.net_size, steps_per_epoch, total_steps)

    if f.crop_sizes and not _valid_crops(f.crop_sizes, preset.frame_size):
        raise cli.InputError(f"--crop_sizes={','.join(f.crop_sizes)}: each crop must fit the {preset.name} frame "
                             f"{preset.frame_size[0]}x{preset.frame_size[1]}")
    crops = tuple(_parse_crop(c) for c in f.crop_sizes) if f.crop_sizes else preset.crop_sizes
    intrinsics = None  # --intrinsics is in the preset: per sample, shifted by a frame crop (KITTI), split-file focal
    data_kw = dict(dataset=preset)
    if f.split_file:
        train_split = None

    built = {}

    def train_data(ctx: tf.distribute.InputContext):
        # built once per input pipeline: the precise-BatchNorm stream iterates the same dataset (the same batches
        # as a rebuilt one) instead of listing, checking and decoding the --cache_in_memory frames a second time
        key = (ctx.input_pipeline_id, ctx.num_input_pipelines, ctx.get_per_replica_batch_size(f.batch_size))
        if key not in built:
            built[key] = input_pipeline.make_dataset(
                f.data_root, train_split, ctx.get_per_replica_batch_size(f.batch_size), training=True,
                seed=f.seed + 1000 * ctx.input_pipeline_id, deterministic=f.deterministic, crop_sizes=crops,
                intrinsics=intrinsics, cache_in_memory=f.cache_in_memory, on_bad_sample=f.on_bad_sample,
                depth_stride=f.depth_stride, bad_sample_counter=bad_samples, split_file=f.split_file, **data_kw)
        return built[key]

    val_ds = None
    if val_split or f.val_split_file:
        val_ds = input_pipeline.make_dataset(f.data_root, None if f.val_split_file else val_split, 1,
                                             training=False, intrinsics=intrinsics, on_bad_sample=f.on_bad_sample,
                                             bad_sample_counter=bad_samples, split_file=f.val_split_file, **data_kw)

    cfg = loss_config(f, preset)
    with strategy.scope():
        builder = registry.get_builder(model_name(f))
        kw = dict(encoder_weights=f.encoder_weights) if f.encoder_weights else {}
        model = builder(**kw)
        if f.init_weights:
            load_weights(model, f.init_weights)
        elif f.head_bias_init != "zero":
            depth0 = initial_head_depth(f.head_bias_init, preset, listing.pairs)
            set_head_bias(model, depth0)
            logging.info("depth head bias: %.3f m (--head_bias_init=%s)", depth0, f.head_bias_init)
        head = getattr(model, "depth_range", None)
        if head is not None and preset.max_depth > head:
            logging.warning("--model=%s predicts at most %g m but --dataset=%s has ground truth up to %g m; "
                            "--model=%s has an %g m head", f.model, head, preset.name, preset.max_depth,
                            "student_80m", 80.0)
        weighting = make_weighting(f.loss_weighting, f.loss_terms, [float(w) for w in f.loss_weights])
        schedule = WarmupPolyDecay(f.lr, total_steps, min_lr=f.min_lr, warmup_steps=f.warmup_steps,
                                   warmup_ratio=f.warmup_ratio, power=f.lr_power)
        no_decay = ["sigma"]
        if f.model.startswith("teacher"):
            no_decay += list(TEACHER_NO_WEIGHT_DECAY)
        optimizer = make_optimizer(f.optimizer, schedule, epsilon=f.adam_epsilon, weight_decay=f.weight_decay,
                                   no_decay_names=no_decay)
        extra_loss_fn, step_ref = None, []
        if f.teacher_weights:
            extra_loss_fn = make_distill_fn(load_teacher_for_distillation(f.teacher_weights, f.teacher_preset),
                                            weight=f.distill_weight, distiller=f.distiller, student=model,
                                            ramp=f.distill_ramp, step=lambda: step_ref[0])
        terms = set(f.loss_terms)

        def loss_fn(outputs, batch, seed):
            out = compute_losses(outputs["depth"], batch, seed, cfg)
            return {k: v for k, v in out.items() if k in terms or k not in losses.TERMS}  # an off term: no gradient

        trainer = Trainer(model, optimizer, loss_fn, weighting, strategy=strategy, extra_loss_fn=extra_loss_fn,
                          clip_norm=f.clip_norm, seed=f.seed, frame_size=preset.frame_size)
        step_ref.append(trainer.step)  # the distillation ramp reads the trainer's step
    if model_name(f) != f.model:
        logging.info("--decoder=%s --head=%s: evaluate / export this run with --model=%s", f.decoder, f.head,
                     model_name(f))
    loop = LoopConfig(clip_norm=f.clip_norm, max_bad_steps=f.max_bad_steps, log_every=f.log_every,
                      image_every=f.image_every, eval_every=f.eval_every, ckpt_every=f.ckpt_every,
                      keep_checkpoints=f.keep_checkpoints, checkpoint_iterator=f.checkpoint_iterator, seed=f.seed,
                      val_max_images=f.val_max_images, precise_bn_batches=f.precise_bn_batches)
    try:
        return trainer.fit(train_data, total_steps, f.run_dir, val_ds=val_ds, cfg=loop, batch_size=f.batch_size,
                           resume=f.resume, bad_samples=bad_samples)
    except tf.errors.OpError as err:  # --on_bad_sample=fail inside tf.data: one line naming the file
        clean = bad_sample_error(err)
        if clean is None:
            raise
        raise clean from None


def main(argv, fv=None):
    fv = flags.FLAGS if fv is None else fv
    logging.getLogger().setLevel(logging.INFO)
    try:
        summary = run(fv)
    except Preempted as stop:  # a checkpoint of the current step is written: not an error, not done either
        print(f"{stop}", file=sys.stderr, flush=True)
        return stop.exit_status
    best = summary.get("best_si_rmse")
    print(f"done: {summary['step']} steps, {summary['skipped_steps']} skipped"
          + (f", best validation si-RMSE {best:.4f}" if best is not None else "")
          + f"; outputs in {fv.run_dir}")
    return cli.EXIT_OK


entry_point = cli.command(main, define_flags)

if __name__ == "__main__":
    entry_point()

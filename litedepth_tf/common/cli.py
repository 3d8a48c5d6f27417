"""The command-line convention of every litedepth_tf command.

* One flag library (absl) and one spelling (underscores): ``--data_root``, ``--model`` (a preset name of
  `litedepth_tf.models.presets`; for a run's weights the run's by default), ``--weights`` (a Keras
  ``.weights.h5``), ``--tflite`` (a ``.tflite``).
* Exit status: 0 the work succeeded, 1 the work ran and failed (e.g. a metric outside its tolerance, every input
  failed), 2 a usage or input error (a bad flag, a missing or unreadable file, a bad data set, a file that cannot
  be written: full disk, I/O error), 128 + N a run stopped by signal N after saving what it needs to continue
  (`train`: 143 for SIGTERM, 130 for SIGINT; ``--resume`` continues it). 128 + N is what a shell reports for a
  process killed by signal N, so a job script or scheduler that already treats a signal death as "interrupted,
  not finished" keeps doing so, while "done" (0) is never printed for unfinished work.
* A usage or input error is one line on stderr, ``error: <what, naming the file or flag>``, no traceback. Any
  OSError that reaches the command (a write that failed, naming its file) is reported the same way.

A command module defines ``define_flags(fv)`` (flags on any `FlagValues`, so tests can parse into a fresh one)
and ``main(argv, fv)``, then ``entry_point = cli.command(main, define_flags)`` (its console script, and the
``python -m`` / ``python export/x.py`` route: ``if __name__ == "__main__": entry_point()``). The command holds the
flags, the call into its library and the printing. Shared flag groups: the model (`define_model_flags`), the
interpreter threads (`define_threads_flag`), and in `litedepth_tf.data.datasets` (they need the presets) the data
set (`define_dataset_flags`) and the frame size (`define_size_flags`).
"""

from __future__ import annotations

import logging
import sys

from absl import app, flags

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_SIGNAL_BASE = 128  # + the signal number: stopped by a signal after saving its state (resumable)


class InputError(ValueError):
    """A usage or input problem the user can fix (exit status 2); the message names the flag or file."""


def error(message) -> int:
    """Prints the one-line error and returns `EXIT_USAGE`."""
    print(f"error: {message}", file=sys.stderr)
    return EXIT_USAGE


def define_model_flags(fv, tflite: bool = True) -> None:
    """The model a command runs: ``--weights`` (Keras, of preset ``--model``) or ``--tflite``, exactly one
    (`model_path`); ``tflite=False``: Keras weights only (none: a freshly initialised model)."""
    d = dict(flag_values=fv)
    if tflite:
        flags.DEFINE_string("weights", None, "Keras weights (.weights.h5) of --model. Exactly one of "
                            "--weights/--tflite.", **d)
        flags.DEFINE_string("tflite", None, "A .tflite model. Exactly one of --weights/--tflite.", **d)
    else:
        flags.DEFINE_string("weights", None, "Keras weights (.weights.h5) of --model; none = a freshly initialised "
                            "model.", **d)
    flags.DEFINE_string("model", None, "Model preset of --weights (litedepth_tf.models.presets.PRESETS; default: the "
                        "run's, from the flags.txt next to --weights, else student).", **d)


def define_threads_flag(fv, default=None) -> None:
    """``--threads``: the LiteRT interpreter's threads for a ``.tflite`` model."""
    flags.DEFINE_integer("threads", default, "TFLite interpreter threads" + (" (default: the interpreter's)."
                         if default is None else "."), flag_values=fv)


def model_path(fv) -> str:
    """The one model file of `define_model_flags`; `InputError` unless exactly one was given."""
    if bool(fv.weights) == bool(fv.tflite):
        raise InputError("exactly one of --weights or --tflite is required"
                         + (" (got both)" if fv.weights else " (got neither)"))
    return fv.weights or fv.tflite


def no_extra_args(argv) -> None:
    if len(argv) > 1:
        raise InputError(f"unexpected arguments: {' '.join(argv[1:])}")


INPUT_ERRORS = (InputError, FileNotFoundError, NotADirectoryError, PermissionError, OSError)


def call(main, define_flags, argv, input_errors=INPUT_ERRORS) -> int:
    """What running the command does, in this process: `argv` (``argv[0]`` the program name) parsed into fresh
    flags, ``main(argv, fv)``, and the same exit status and error line as `run`."""
    try:
        fv = define_flags(flags.FlagValues())
        try:
            rest = fv(list(argv))
        except flags.Error as err:
            raise InputError(str(err)) from None
        no_extra_args(rest)
        return main(rest, fv)
    except input_errors as err:
        return error(err)


def run(main, define_flags, input_errors=INPUT_ERRORS):
    """Runs ``main(argv, flags.FLAGS)`` under absl (flags defined by ``define_flags(flags.FLAGS)``): flag errors and
    `input_errors` become one line and exit 2."""
    define_flags(flags.FLAGS)

    def parse_flags(argv):
        try:
            return flags.FLAGS(argv)
        except flags.Error as err:
            sys.exit(error(err))

    def wrapped(argv):
        # TensorFlow gives its logger a stderr handler of its own when it is imported before absl's root handler
        # exists (as it is here, at module import); with both, every TF log line would be printed twice.
        logging.getLogger("tensorflow").handlers.clear()
        try:
            no_extra_args(argv)
            return main(argv, flags.FLAGS)
        except input_errors as err:
            return error(err)

    app.run(wrapped, flags_parser=parse_flags)


def command(main, define_flags):
    """The command's zero-argument entry point (``python -m`` and console scripts)."""
    return lambda: run(main, define_flags)

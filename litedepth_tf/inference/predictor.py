"""`Predictor`: a depth model run over image and video files, every output written atomically (the library behind
`python -m litedepth_tf.predict`; what it writes: `litedepth_tf.inference.writers`).

A run of images is a pipeline: reader threads decode and prepare the next images, the network runs in the calling
thread, encoder threads colour-map, encode and write the outputs to fsync'ed hidden temp files, and one thread
renames them onto their names in input order (so a kill leaves the outputs of a prefix of the inputs whole, and
never a part of a file). A video is read one frame ahead in a thread and its frames are encoded in another, in
frame order. ``workers=0`` does everything in the calling thread, one file after another: the same bytes.

An unreadable input, or one whose outputs cannot be written (a folder in the way, a video writer that failed), is
reported and skipped; a write error that every later output would hit too (full disk, read-only file system, I/O
error) stops the run with one `WriteError` saying that the files written before it are complete.
"""

from __future__ import annotations

import collections
import errno
import os
import sys

from litedepth_tf.common.colormap import side_by_side
from litedepth_tf.common.files import WriteError
from litedepth_tf.common.progress import progress_bar
from litedepth_tf.inference.prefetch import Prefetch, thread_pools
from litedepth_tf.inference.prepare import NET_HW, prepare_image, restore_size
from litedepth_tf.inference.readers import is_video, open_video, output_stems, read_image
from litedepth_tf.inference.writers import Outputs, VideoWriters, color_range, commit_files, rename_staged, \
    stage_files

# Write errors that every later output would hit too: the run stops at the first (one line, exit 2).
STOP_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO}


def default_workers() -> int:
    """Reader threads and encoder threads (each) when `workers` is not given: the CPU count, 1..4."""
    return max(1, min(4, os.cpu_count() or 1))


class _FrameFailed(ValueError):
    """A video frame could not be written (already names the video and the frame)."""


def _print(msg, file=None):
    print(msg, file=file or sys.stdout, flush=True)


class Predictor:
    """Runs a `litedepth_tf.api.DepthModel` (anything with ``predict_network``, ``last_latency_ms`` and
    ``input_size``) on files and writes `Outputs` into `out_dir` (see the module docstring); the keyword arguments
    other than `fps`, `save_frames` (videos), `log` and `workers` are those of `Outputs`."""

    def __init__(self, model, out_dir, *, fps=None, save_frames=False, log=_print, workers=None, **outputs):
        self.model, self.outputs = model, Outputs(out_dir, **outputs)
        self.out = self.outputs.out_dir
        self.fps, self.save_frames, self.log = fps, save_frames, log
        self.workers = default_workers() if workers is None else max(0, int(workers))
        self.latencies_ms: list[float] = []

    # -------------------------------------------------------------------- the stages

    def _read(self, path):
        """Reader: the file decoded and prepared at the model's input size -> (PreparedImage, notes)."""
        arr, notes = read_image(path)
        prep = self._prepare(arr)
        return prep, notes + prep.notes

    def _prepare(self, image):
        return prepare_image(image, getattr(self.model, "input_size", NET_HW))

    def _depth(self, prep):
        """The network (calling thread only): depth at the image's own size."""
        depth = restore_size(self.model.predict_network(prep.network_input), prep.size)
        self.latencies_ms.append(self.model.last_latency_ms)
        return depth

    def _encode_and_stage(self, stem, depth, rgb) -> list:
        """Encoder: one image's outputs encoded and staged -> [(output path, temp path)]."""
        return stage_files(self.outputs.image_files(stem, depth, rgb))

    def _note(self, path, notes):
        for note in notes:
            self.log(f"note: {path}: {note}")

    # -------------------------------------------------------------------- images

    def image(self, path, stem) -> list[str]:
        """One image, start to end in the calling thread -> the files written."""
        prep, notes = self._read(path)
        depth = self._depth(prep)
        self._note(path, notes)
        return commit_files(self.outputs.image_files(stem, depth, prep.rgb))

    def _images(self, paths, stems, written, failed, bar):
        if self.workers == 0:
            for path in paths:
                try:
                    written += self.image(path, stems[path])
                except (ValueError, OSError) as err:
                    self._failed(path, err, failed)
                bar.update(1)
            return
        need_rgb = self.outputs.need_rgb
        ahead = 2 * self.workers
        with thread_pools(self.workers, self.workers, 1) as (readers, encoders, renamer):
            todo, reads, pending = iter(paths), collections.deque(), collections.deque()

            def refill():
                while len(reads) < ahead:
                    path = next(todo, None)
                    if path is None:
                        return
                    reads.append((path, readers.submit(self._read, path)))

            def collect():
                path, fut = pending.popleft()
                try:
                    written.extend(fut.result())
                except (ValueError, OSError) as err:
                    self._failed(path, err, failed)
                bar.update(1)

            refill()
            while reads:
                path, fut = reads.popleft()
                refill()
                try:
                    prep, notes = fut.result()
                except (ValueError, OSError) as err:
                    self._failed(path, err, failed)
                    bar.update(1)
                    continue
                depth = self._depth(prep)
                self._note(path, notes)
                job = encoders.submit(self._encode_and_stage, stems[path], depth, prep.rgb if need_rgb else None)
                del prep  # the reader's arrays are not kept while the outputs wait
                pending.append((path, renamer.submit(lambda job=job: rename_staged(job.result()))))
                while pending and (len(pending) > ahead or pending[0][1].done()):
                    collect()
            while pending:
                collect()

    def _failed(self, path, err, failed):
        if isinstance(err, WriteError) and err.errno in STOP_ERRNOS:  # disk full, read-only, I/O error: the next
            raise WriteError(f"{err}; the files written before it in {self.out} are complete", err.errno,
                             err.filename) from None
        # an error of this input's outputs only (a folder where a file must go, a video writer that failed, ...):
        # named, the run goes on
        msg = f"cannot write the outputs of {path!r}: {err}" if isinstance(err, OSError) else str(err)
        failed.append((path, msg))
        self.log(f"error: {msg} (skipped)", file=sys.stderr)

    # -------------------------------------------------------------------- videos

    def _video_frame(self, writers, path, stem, k, prep, depth, rng) -> list:
        """Colour map, video frames and per-frame files of frame `k` (one thread: the writers keep frame order)."""
        try:
            color = self.outputs.colorize(depth, rng)
            writers.append(0, color)
            if self.outputs.with_side_by_side:
                writers.append(1, side_by_side(prep.rgb, color))
            return commit_files(self.outputs.frame_files(f"{stem}_{k:06d}", depth, color, prep.rgb,
                                                         self.save_frames))
        except Exception as err:  # noqa: BLE001 - name the file and the frame
            raise _FrameFailed(f"video {path!r} failed at frame {k}: {type(err).__name__}: {err}") from err

    def video(self, path, stem) -> list[str]:
        frames, fps, total = open_video(path, self.fps)
        names = [os.path.join(self.out, f"{stem}_depth.mp4")]
        if self.outputs.with_side_by_side:
            names.append(os.path.join(self.out, f"{stem}_side_by_side.mp4"))
        written, count, rng = [], 0, None
        source = Prefetch(frames, self._prepare) if self.workers else map(self._prepare, frames)
        with VideoWriters(names, fps) as writers, thread_pools(1) as (sink,):
            bar = progress_bar(total=total, desc=os.path.basename(path), unit="frame")
            pending = collections.deque()
            try:
                for prep in source:
                    depth = self._depth(prep)
                    if count == 0:
                        self._note(path, prep.notes)
                    if rng is None:
                        o = self.outputs
                        rng = color_range(depth, o.range_mode, o.vmin, o.vmax)
                    job = (writers, path, stem, count, prep, depth, rng)
                    if self.workers:
                        pending.append(sink.submit(self._video_frame, *job))
                        while pending and (len(pending) > 4 or pending[0].done()):
                            written += pending.popleft().result()
                    else:
                        written += self._video_frame(*job)
                    count += 1
                    bar.update(1)
                while pending:
                    written += pending.popleft().result()
            except _FrameFailed:
                raise
            except Exception as err:  # noqa: BLE001 - name the file
                raise ValueError(f"video {path!r} failed at frame {count}: {type(err).__name__}: {err}") from err
            finally:
                bar.close()
                if isinstance(source, Prefetch):
                    source.close()
            if count == 0:
                raise ValueError(f"video {path!r} has no frames")
        self.log(f"{path}: {count} frames at {fps:g} fps")
        return names + written

    # -------------------------------------------------------------------- a list of inputs

    def run(self, paths) -> tuple[list, list]:
        """-> (written files, [(path, error message)]). Runs of consecutive images go through the pipeline;
        each video is read, run and written frame by frame (its frames overlap in the same way)."""

        written, failed = [], []
        stems = output_stems(paths)
        bar = progress_bar(total=len(paths), desc="predict", unit="file", disable=True if len(paths) < 2 else None)
        try:
            i = 0
            while i < len(paths):
                if is_video(paths[i]):
                    try:
                        written += self.video(paths[i], stems[paths[i]])
                    except (ValueError, OSError) as err:
                        self._failed(paths[i], err, failed)
                    bar.update(1)
                    i += 1
                    continue
                j = i
                while j < len(paths) and not is_video(paths[j]):
                    j += 1
                self._images(paths[i:j], stems, written, failed, bar)
                i = j
        finally:
            bar.close()
        return written, failed

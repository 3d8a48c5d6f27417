"""The network input size for any frame size: the paper's fast downsampling 480x640 -> 128x160 (x 128/480 in
height, x 160/640 in width), each side rounded to the nearest multiple of 32 (the encoder's total stride).

    network_size((480, 640)) == (128, 160)     # MAI 2022, NYU
    network_size((352, 1216)) == (96, 320)     # KITTI benchmark crop
    network_size((768, 1024)) == (192, 256)    # DIODE
"""

from __future__ import annotations

import math

from litedepth_tf.common.constants import INPUT_HEIGHT, INPUT_WIDTH, NET_HEIGHT, NET_WIDTH

STRIDE = 32


def round32(x: float) -> int:
    """Nearest multiple of 32 (halves up), at least 32."""
    return max(STRIDE, STRIDE * int(math.floor(x / STRIDE + 0.5)))


def network_size(frame) -> tuple[int, int]:
    """Network input (H, W) for a frame (H, W): the paper's ratio, each side rounded to /32."""
    h, w = int(frame[0]), int(frame[1])
    return round32(h * NET_HEIGHT / INPUT_HEIGHT), round32(w * NET_WIDTH / INPUT_WIDTH)


def parse_hw(text, what: str = "--input_size") -> tuple[int, int]:
    """'HxW' -> (H, W) with positive integers; ValueError naming ``what`` otherwise."""
    try:
        h, w = (int(v) for v in str(text).lower().split("x"))
        if h > 0 and w > 0:
            return h, w
    except ValueError:
        pass
    raise ValueError(f"{what} must be HxW with positive integers (e.g. 352x1216), got {text!r}")

"""Numbers shared by every module (MAI 2022 data conventions and the LiteDepth deploy shape)."""

MAX_DEPTH = 40.0  # metres; MAI depth maps are uint16 millimetres in [0, 40000]
MIN_DEPTH = 1e-3  # metres; predictions are clamped to [MIN_DEPTH, MAX_DEPTH]
DEPTH_SCALE = 1000.0  # uint16 PNG value per metre
INPUT_HEIGHT, INPUT_WIDTH = 480, 640  # MAI input / output resolution
NET_HEIGHT, NET_WIDTH = 128, 160  # fast downsampling target inside the deploy model
NORM_MEAN = 127.5
NORM_STD = 127.5
# Camera intrinsics of the MAI 2022 data at 480x640 (as used by the authors' VNL config).
MAI_INTRINSICS = (518.8579, 519.4696, 320.0, 240.0)  # fx, fy, cx, cy

"""Input and output: photos, depth maps, colour transfer functions."""

from refocus.io.color import linear_to_srgb, luminance, srgb_to_linear
from refocus.io.depthfile import read_depth_file
from refocus.io.gif import save_gif
from refocus.io.image import ImageInfo, as_float_rgb, atomic_write_bytes, read_image, write_image

__all__ = [
    "ImageInfo",
    "as_float_rgb",
    "atomic_write_bytes",
    "linear_to_srgb",
    "luminance",
    "read_depth_file",
    "read_image",
    "save_gif",
    "srgb_to_linear",
    "write_image",
]

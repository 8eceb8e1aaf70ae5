"""The camera model: thin-lens optics and the photo's EXIF.

``strength_from_camera`` turns f-number, focal length, sensor width and focus
distance into the renderer's gain K for metric disparity (1/m); ``read_camera_info``
reads those settings from a photo.
"""

from refocus.camera.exif import CameraInfo, camera_from_exif, read_camera_info
from refocus.camera.lens import (
    FULL_FRAME_WIDTH_MM,
    coc_diameter_mm,
    coc_px_from_depth,
    crop_factor,
    sensor_width_from_35mm,
    strength_for_normalised_disparity,
    strength_from_camera,
    strength_from_lens_blur,
)

__all__ = [
    "FULL_FRAME_WIDTH_MM",
    "CameraInfo",
    "camera_from_exif",
    "coc_diameter_mm",
    "coc_px_from_depth",
    "read_camera_info",
    "crop_factor",
    "sensor_width_from_35mm",
    "strength_for_normalised_disparity",
    "strength_from_camera",
    "strength_from_lens_blur",
]

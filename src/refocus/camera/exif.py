"""What the photo's metadata says about the camera that took it.

Reads EXIF (JPEG, HEIC, PNG, TIFF, WebP through Pillow/pillow-heif) and, for the
focus distance, the XMP ``aux:ApproximateFocusDistance`` that Adobe tools and some
cameras write. Everything is optional: a missing tag is ``None``, never an error;
only an unreadable file raises :class:`RefocusError`.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from refocus.camera.lens import crop_factor, sensor_width_from_35mm, strength_from_camera
from refocus.errors import RefocusError, unreadable_image

# EXIF tag numbers (CIPA DC-008).
_MAKE, _MODEL, _ORIENTATION = 0x010F, 0x0110, 0x0112
_EXIF_IFD = 0x8769
_F_NUMBER, _SUBJECT_DISTANCE, _FOCAL_LENGTH = 0x829D, 0x9206, 0x920A
_FOCAL_35, _SUBJECT_DISTANCE_RANGE = 0xA405, 0xA40C
_LENS_MAKE, _LENS_MODEL = 0xA433, 0xA434
_PIXEL_X, _PIXEL_Y = 0xA002, 0xA003
_FP_XRES, _FP_YRES, _FP_UNIT = 0xA20E, 0xA20F, 0xA210
_DIGITAL_ZOOM = 0xA404
_USER_COMMENT = 0x9286
_FP_UNIT_MM = {2: 25.4, 3: 10.0, 4: 1.0, 5: 0.001}  # inch, cm, mm, um
#: Sensor widths taken as real, in mm (exclusive): from a phone's smallest to beyond large format.
_SENSOR_WIDTH_MM = (1.0, 200.0)


@dataclass
class CameraInfo:
    """Camera settings of one photo; fields are ``None`` when the file does not say.

    Attributes
    ----------
    width_px, height_px : int
        Image size in pixels, upright (EXIF orientation applied).
    f_number : float or None
        Aperture f-number N.
    focal_length_mm : float or None
        Real focal length in mm.
    focal_length_35mm : float or None
        35 mm equivalent focal length in mm.
    sensor_width_mm : float or None
        Sensor width along the image's long side, in mm; ``sensor_width_source`` says
        how it was derived.
    focus_distance_m : float or None
        Focus (subject) distance in m; ``focus_distance_source`` names the tag.
    """

    width_px: int = 0
    height_px: int = 0
    make: str | None = None
    model: str | None = None
    lens: str | None = None
    f_number: float | None = None
    focal_length_mm: float | None = None
    focal_length_35mm: float | None = None
    sensor_width_mm: float | None = None
    sensor_width_source: str | None = None
    focus_distance_m: float | None = None
    focus_distance_source: str | None = None
    #: EXIF DigitalZoomRatio when above 1: the image is a crop of the sensor, and
    #: ``sensor_width_mm`` is the width of the part of the sensor the image covers.
    digital_zoom: float | None = None
    #: EXIF Orientation as stored (1-8; None when absent or not one of them): how the
    #: stored pixels are turned to be upright (``width_px``/``height_px`` are upright).
    orientation: int | None = None
    #: What refocus rendered, when this file is a refocus result (its EXIF UserComment:
    #: "depth of field rendered for f/1.4; taken at f/2.8"), else None.
    rendered: str | None = None
    #: The file's pixel mode as Pillow names it ("RGB", "L", "CMYK", "I;16"...) and the
    #: description of its ICC profile, when :func:`read_camera_info` could tell.
    mode: str | None = None
    icc_name: str | None = None
    notes: list[str] = field(default_factory=list)
    #: Fields whose EXIF value was present but not plausible (so left ``None``): field
    #: name -> "FocalLength 4294967295 mm is not plausible; ignored".
    ignored: dict[str, str] = field(default_factory=dict)
    #: The file the settings were read from (its name), for messages.
    source: str | None = None

    @property
    def camera(self) -> str | None:
        """Make and model in one string (the make is dropped when the model repeats it)."""
        make, model = (self.make or "").strip(), (self.model or "").strip()
        if model and make and model.lower().startswith(make.split()[0].lower()):
            return model
        return " ".join(p for p in (make, model) if p) or None

    def require(self, *fields: str, purpose: str, hint: str = "") -> None:
        """Raise :class:`RefocusError` when one of ``fields`` (attribute names) is
        missing, naming the file and, when its EXIF value was refused, the tag and value
        (``photo.jpg: --f-number needs the focal length, but its EXIF FocalLength
        4294967295 mm is not plausible; ignored``), then ``hint`` after a semicolon."""
        words = {
            "f_number": "f-number", "focal_length_mm": "focal length", "focal_length_35mm": "35 mm equivalent focal length",
            "sensor_width_mm": "sensor width", "focus_distance_m": "focus distance",
        }
        where = f"{self.source}: " if self.source else ""
        for name in fields:
            if getattr(self, name) is not None:
                continue
            what = words.get(name, name)
            tail = f"; {hint}" if hint else ""
            refused = self.refused(name)
            if refused:
                raise RefocusError(f"{where}{purpose} needs the {what}, but its EXIF {refused}{tail}")
            raise RefocusError(f"{where}{purpose} needs the {what} from EXIF, which this photo lacks{tail}")

    def refused(self, name: str) -> str | None:
        """Why field ``name`` is missing when an EXIF value for it was refused as
        implausible (:attr:`ignored`), else None. The sensor width comes from the focal
        length and its 35 mm equivalent, so their refusal is its reason."""
        if name == "sensor_width_mm":
            return self.ignored.get(name) or self.ignored.get("focal_length_mm") or self.ignored.get("focal_length_35mm")
        return self.ignored.get(name)

    def missing_for_strength(self) -> list[str]:
        """Names of the settings that :meth:`strength` still needs."""
        need = {
            "f-number": self.f_number,
            "focal length": self.focal_length_mm,
            "sensor width (or 35 mm equivalent focal length)": self.sensor_width_mm,
            "focus distance": self.focus_distance_m,
            "image width": self.width_px or None,
        }
        return [k for k, v in need.items() if v is None]

    def strength(self, width_px: int | None = None, f_number: float | None = None) -> float | None:
        """Thin-lens gain K (px·m, for disparity in 1/m), or ``None`` when settings are missing.

        ``width_px`` rescales to another image width (e.g. a downscaled working copy);
        ``f_number`` overrides the photo's (to simulate another aperture).
        """
        n = f_number if f_number is not None else self.f_number
        if self.missing_for_strength() and not (f_number is not None and self.missing_for_strength() == ["f-number"]):
            return None
        return strength_from_camera(
            n, self.focal_length_mm, self.sensor_width_mm, self.focus_distance_m, width_px or max(self.width_px, self.height_px)
        )


def _raw(v) -> float | None:
    """An EXIF number as written (IFDRational, tuple or number); None when absent,
    undefined (0/0) or not a number."""
    try:
        if isinstance(v, tuple) and len(v) == 2:
            v = v[0] / v[1] if v[1] else float("nan")
        x = float(v)
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        return None
    return x if not math.isnan(x) else None


def _num(v) -> float | None:
    """EXIF rationals come as IFDRational, tuples or numbers; undefined ones as 0/0."""
    x = _raw(v)
    return x if x is not None and math.isfinite(x) and x > 0 else None


# What a camera can write: values outside are a broken or placeholder tag (0xFFFFFFFF,
# 0 from a manual lens), and taking them would give a nonsense or impossible lens
# (strength_from_camera refuses a focal length beyond the focus distance). The ranges
# are wide: f/0.33 (the fastest lens made is f/0.33) to f/1024 (pinholes), a 0.5 mm
# (endoscope) to 6 m focal length (the longest lens made is 5.2 m).
_PLAUSIBLE = {
    "f_number": ("FNumber", "", 0.3, 1024.0),
    "focal_length_mm": ("FocalLength", " mm", 0.5, 6000.0),
    "focal_length_35mm": ("FocalLengthIn35mmFilm", " mm", 1.0, 60000.0),
}


def _fmt_value(x: float) -> str:
    return f"{x:.10g}"


def _plausible(info: CameraInfo, name: str, value, zero_is_unknown: bool = False) -> float | None:
    """The EXIF value of ``name`` when plausible; else None, with the reason kept in
    ``info.ignored`` (a zero that the standard defines as "unknown" is just absent)."""
    tag, unit, lo, hi = _PLAUSIBLE[name]
    x = _raw(value)
    if x is None or (zero_is_unknown and x == 0):
        return None
    if math.isfinite(x) and lo <= x <= hi:
        return x
    info.ignored[name] = f"{tag} {_fmt_value(x)}{unit} is not plausible; ignored"
    return None


def _text(v) -> str | None:
    if isinstance(v, bytes):
        v = v.decode("utf-8", "replace")
    if v is None:
        return None
    s = str(v).replace("\x00", "").strip()
    return s or None


_RENDERED_PREFIX = "refocus: "


def _rendered_note(comment) -> str | None:
    """The note :func:`exif_with_f_number` leaves in UserComment (after its 8-byte
    character-code header), without its "refocus: " prefix; None for any other comment."""
    if not isinstance(comment, (bytes, bytearray)):
        return None
    text = bytes(comment[8:]).decode("ascii", "replace").replace("\x00", "").strip()
    return text[len(_RENDERED_PREFIX):] if text.startswith(_RENDERED_PREFIX) else None


_XMP_FOCUS = re.compile(rb"ApproximateFocusDistance\s*(?:=\s*[\"']|>)\s*([0-9./]+)")


def _xmp_focus_distance(xmp: bytes) -> float | None:
    m = _XMP_FOCUS.search(xmp)
    if not m:
        return None
    s = m.group(1).decode("ascii", "replace")
    try:
        if "/" in s:
            a, b = s.split("/", 1)
            v = float(a) / float(b)
        else:
            v = float(s)
    except (ValueError, ZeroDivisionError):
        return None
    # 4294967295/1 (0xFFFFFFFF) means infinity in Adobe's convention.
    return v if math.isfinite(v) and 0 < v < 1e6 else None


def camera_from_exif(exif, size: tuple[int, int], xmp: bytes | None = None, source: str | None = None) -> CameraInfo:
    """Build a :class:`CameraInfo` from EXIF (a ``PIL.Image.Exif`` or raw EXIF bytes,
    e.g. ``ImageInfo.exif``) and the stored (W, H) in pixels.

    Values no camera writes (a focal length of 0 or 4294967295 mm...) are left out, with
    the reason in ``CameraInfo.ignored``; ``source`` (the file's name) is kept for
    messages. What is returned is consistent: :meth:`CameraInfo.strength` does not
    refuse it."""
    if exif is None or isinstance(exif, (bytes, bytearray)):
        from PIL import Image

        raw = bytes(exif or b"")
        exif = Image.Exif()
        try:
            if raw:
                exif.load(raw)
        except Exception:
            exif = Image.Exif()  # unreadable EXIF: every field stays None
    w, h = size
    info = CameraInfo(source=source)
    sub = {}
    try:
        sub = dict(exif.get_ifd(_EXIF_IFD))
    except Exception:
        sub = {}
    orientation = exif.get(_ORIENTATION, 1)
    if orientation in (5, 6, 7, 8):
        w, h = h, w
    info.orientation = orientation if orientation in range(1, 9) and _ORIENTATION in exif else None
    info.rendered = _rendered_note(sub.get(_USER_COMMENT))
    info.width_px, info.height_px = int(w), int(h)
    info.make = _text(exif.get(_MAKE))
    info.model = _text(exif.get(_MODEL))
    lens_make, lens_model = _text(sub.get(_LENS_MAKE)), _text(sub.get(_LENS_MODEL))
    info.lens = lens_model if (lens_model and (not lens_make or lens_make in lens_model)) else (
        " ".join(p for p in (lens_make, lens_model) if p) or None
    )
    info.f_number = _plausible(info, "f_number", sub.get(_F_NUMBER))
    info.focal_length_mm = _plausible(info, "focal_length_mm", sub.get(_FOCAL_LENGTH))
    info.focal_length_35mm = _plausible(info, "focal_length_35mm", sub.get(_FOCAL_35), zero_is_unknown=True)
    # The image's pixels as the camera counted them (for the focal-plane resolution).
    pix_x, pix_y = _num(sub.get(_PIXEL_X)), _num(sub.get(_PIXEL_Y))
    if not (pix_x and pix_y):
        pix_x, pix_y = float(size[0]), float(size[1])
    aspect = pix_x / pix_y  # either way round: the lens functions take the long side
    zoom = _num(sub.get(_DIGITAL_ZOOM))
    # From 1.01: a ratio written as 65537/65536 (a Motorola XT912's "1x") is no zoom.
    if zoom is not None and 1.01 <= zoom < 100.0:
        info.digital_zoom = zoom
    width_35 = None
    if info.focal_length_mm and info.focal_length_35mm:
        width_35 = sensor_width_from_35mm(info.focal_length_mm, info.focal_length_35mm, aspect)
        if not _SENSOR_WIDTH_MM[0] < width_35 < _SENSOR_WIDTH_MM[1]:
            info.ignored["focal_length_35mm"] = (
                f"FocalLengthIn35mmFilm {_fmt_value(info.focal_length_35mm)} mm with FocalLength "
                f"{_fmt_value(info.focal_length_mm)} mm gives a sensor {width_35:.3g} mm wide, which is not plausible; ignored"
            )
            info.focal_length_35mm = width_35 = None
    if width_35 is not None:
        info.sensor_width_mm = width_35
        info.sensor_width_source = "35 mm equivalent focal length"
    else:
        # Focal-plane resolution is pixels per unit on the sensor for the image's pixels
        # (PixelX/YDimension): X and Y each with its own, and the width wanted is along
        # the long side, which is Y in a portrait file (Canon writes a rotated
        # PowerShot SD100 photo as X 1536 px over 0.156 in, Y 2048 px over 0.208 in).
        xres, unit = _num(sub.get(_FP_XRES)), sub.get(_FP_UNIT, 2)
        yres = _num(sub.get(_FP_YRES)) or xres
        if xres and unit in _FP_UNIT_MM:
            width_mm = (pix_x / xres if pix_x >= pix_y else pix_y / yres) * _FP_UNIT_MM[unit]
            if _SENSOR_WIDTH_MM[0] < width_mm < _SENSOR_WIDTH_MM[1]:
                info.sensor_width_mm = width_mm
                info.sensor_width_source = "focal plane resolution"
        if info.sensor_width_mm and info.focal_length_mm and not info.focal_length_35mm:
            # On the diagonal, as cameras state it (36 / width made a Canon S400's 36 mm 37.5).
            info.focal_length_35mm = info.focal_length_mm * crop_factor(info.sensor_width_mm, aspect)
    dist = _num(sub.get(_SUBJECT_DISTANCE))
    # 0xFFFFFFFF/1 means infinity; 0 means unknown (dropped by _num).
    if dist is not None and dist < 1e6:
        info.focus_distance_m = dist
        info.focus_distance_source = "EXIF SubjectDistance"
    elif xmp:
        d = _xmp_focus_distance(xmp)
        if d is not None:
            info.focus_distance_m = d
            info.focus_distance_source = "XMP ApproximateFocusDistance"
    if info.focus_distance_m is not None and info.focal_length_mm is not None and info.focus_distance_m * 1000.0 <= info.focal_length_mm:
        # A lens cannot focus nearer than its focal length (strength_from_camera refuses it).
        tag = info.focus_distance_source or "focus distance"
        info.ignored["focus_distance_m"] = (
            f"{tag.removeprefix('EXIF ').removeprefix('XMP ')} {_fmt_value(info.focus_distance_m)} m is not beyond the "
            f"focal length {_fmt_value(info.focal_length_mm)} mm; ignored"
        )
        info.focus_distance_m = info.focus_distance_source = None
    if info.sensor_width_mm is not None and info.sensor_width_mm > 0 and h > w:
        info.notes.append("portrait orientation: the sensor width is taken along the long side")
    return info


def read_camera_info(path: str | os.PathLike) -> CameraInfo:
    """Read the camera settings of a photo file.

    Raises
    ------
    RefocusError
        When the file does not exist or is not an image Pillow can open.
    """
    from PIL import Image

    import refocus.io.image  # noqa: F401  (registers the HEIF opener)

    path = Path(path)
    if not path.exists():
        raise RefocusError(f"image not found: {path}")
    if path.is_dir():
        raise RefocusError(f"expected an image file, got a folder: {path}")
    from refocus.io.limits import check_file, pillow_open

    # Nothing is decoded here, but a file over the pixel budget is refused by every
    # command, so say so now, with its declared size (Pillow alone says only
    # "DecompressionBombError").
    check_file(path)
    try:
        with pillow_open(path, path.name) as img:
            exif = img.getexif()
            try:
                # In a TIFF the EXIF IFD (FNumber, FocalLength...) is read from the open
                # file on first use; read it now, while the file is open (it is kept).
                exif.get_ifd(_EXIF_IFD)
            except Exception:
                pass  # an unreadable EXIF IFD: those fields stay None
            xmp = img.info.get("xmp")
            if isinstance(xmp, str):
                xmp = xmp.encode("utf-8", "replace")
            size = img.size
            from refocus.io.image import photo_icc

            mode, icc_name = img.mode, _icc_name(photo_icc(img))
    except RefocusError:
        raise
    except Exception as exc:  # the same words as every command's full read (refocus.errors)
        size = _tiff_size(path) if path.suffix.lower() in (".tif", ".tiff") else None
        if size is None:
            raise unreadable_image(path, exc) from None
        # A TIFF Pillow cannot open but the commands read (tifffile: float colour, 16-bit
        # grey + alpha, planar): its size, and the camera its own tags state.
        from refocus.io.image import tiff_exif

        exif, xmp = tiff_exif(path) or Image.Exif(), None
        mode, icc_name = _tiff_mode(path)
    if xmp is None and path.suffix.lower() in (".jpg", ".jpeg"):
        try:
            from refocus.io.jpeg import read_xmp

            xmp = read_xmp(path.read_bytes())[0] or None
        except Exception:
            xmp = None
    info = camera_from_exif(exif, size, xmp, source=path.name)
    bits, png_colour = _bits_per_sample(path)
    if mode in ("RGB", "RGBA", "LA") and bits == 16:
        # Pillow opens a 16-bit colour PNG as 8-bit "RGB" (and a 16-bit grey + alpha one
        # as "RGBA"); the commands keep its 16 bits.
        mode = ("LA" if png_colour == 4 else mode) + ";16"
    info.mode, info.icc_name = mode, icc_name
    return info


def _bits_per_sample(path: Path) -> tuple[int | None, int | None]:
    """A PNG's or TIFF's bits per sample from its header, and a PNG's colour type (0 grey,
    2 RGB, 3 palette, 4 grey + alpha, 6 RGBA); None for what it cannot tell."""
    try:
        suffix = path.suffix.lower()
        if suffix == ".png":
            with open(path, "rb") as f:
                head = f.read(26)
            return (head[24], head[25]) if len(head) == 26 and head[12:16] == b"IHDR" else (None, None)
        if suffix in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(path) as tf:
                return int(tf.pages[0].bitspersample), None
    except Exception:
        pass
    return None, None


def _tiff_mode(path: Path) -> tuple[str | None, str | None]:
    """The Pillow-style mode ("LA", "RGB"...) and ICC profile name of a TIFF's first
    page, from tifffile (for the TIFFs Pillow cannot open); Nones when it cannot tell."""
    try:
        import tifffile

        with tifffile.TiffFile(path) as tf:
            page = tf.pages[0]
            mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}.get(int(page.samplesperpixel))
            icc = bytes(page.tags[34675].value) if 34675 in page.tags else None
    except Exception:
        return None, None
    return mode, _icc_name(icc)


def _icc_name(icc: bytes | None) -> str | None:
    """An ICC profile's description ("Display P3", "sRGB IEC61966-2.1"); None without one."""
    if not icc:
        return None
    try:
        import io

        from PIL import ImageCms

        return (ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc))) or "").strip() or "unnamed"
    except Exception:
        return "unreadable"


def _tiff_size(path: Path) -> tuple[int, int] | None:
    """(W, H) of a TIFF's first page, from tifffile; None when it cannot tell."""
    try:
        import tifffile

        with tifffile.TiffFile(path) as tf:
            page = tf.pages[0]
            return int(page.imagewidth), int(page.imagelength)
    except Exception:
        return None


def exif_with_f_number(exif: bytes | None, f_number: float, full_frame: bool = False) -> bytes:
    """EXIF for a result rendered at ``f_number``: FNumber says the simulated aperture,
    and UserComment keeps the one the photo was taken at (a later ``refocus info``
    or photo library then shows the depth of field the image has).

    With ``full_frame`` the f-number is a full-frame equivalent, which FNumber (the
    lens's own) cannot hold: FNumber is left as taken, as phones do for their portrait
    modes, and UserComment says what was rendered."""
    from fractions import Fraction

    from PIL import Image
    from PIL.TiffImagePlugin import IFDRational

    e = Image.Exif()
    if exif:
        try:
            e.load(exif)
        except Exception:  # unreadable EXIF: start a fresh one rather than fail the render
            e = Image.Exif()
    sub = e.get_ifd(_EXIF_IFD)
    taken = _num(sub.get(_F_NUMBER))
    if not full_frame:
        frac = Fraction(float(f_number)).limit_denominator(100)
        sub[_F_NUMBER] = IFDRational(frac.numerator, frac.denominator)
    was = f"f/{taken:.3g}" if taken is not None else "an unknown f-number"
    earlier = _rendered_note(sub.get(_USER_COMMENT))
    if earlier and "; taken at " in earlier:
        # A refocus result rendered again: its FNumber is the earlier render's, the
        # f-number it was taken at is in the earlier note.
        was = earlier.split("; taken at ", 1)[1]
    what = f"f/{float(f_number):.3g} full-frame equivalent" if full_frame else f"f/{float(f_number):.3g}"
    note = f"{_RENDERED_PREFIX}depth of field rendered for {what}; taken at {was}"
    sub[_USER_COMMENT] = b"ASCII\x00\x00\x00" + note.encode("ascii")
    return e.tobytes()


#: XMP's copies of the aperture (exif: namespace), as attributes or as elements.
_XMP_APERTURE = re.compile(
    rb"(exif:(FNumber|ApertureValue)\s*=\s*[\"'])[^\"']*([\"'])|(<exif:(FNumber|ApertureValue)>)[^<]*(</exif:\5>)"
)


def xmp_with_f_number(xmp: bytes | None, f_number: float) -> bytes | None:
    """A photo's XMP for a result rendered at ``f_number`` (not a full-frame
    equivalent): its ``exif:FNumber`` and ``exif:ApertureValue`` (APEX, 2 log2 N) say
    the simulated aperture, as EXIF FNumber does (:func:`exif_with_f_number`); a photo
    library that prefers XMP then shows the same aperture as one that reads EXIF."""
    if not xmp:
        return xmp
    from fractions import Fraction

    frac = Fraction(float(f_number)).limit_denominator(100)
    apex = Fraction(2.0 * math.log2(float(f_number))).limit_denominator(1000)
    value = {b"FNumber": f"{frac.numerator}/{frac.denominator}".encode(), b"ApertureValue": f"{apex.numerator}/{apex.denominator}".encode()}

    def sub(m: re.Match) -> bytes:
        if m.group(1):
            return m.group(1) + value[m.group(2)] + m.group(3)
        return m.group(4) + value[m.group(5)] + m.group(6)

    return _XMP_APERTURE.sub(sub, xmp)

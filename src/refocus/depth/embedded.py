"""Depth maps stored inside photos.

Supported, tried in this order for a JPEG:

* **Google GDepth** (``http://ns.google.com/photos/1.0/depthmap/``, Lens Blur and
  older Pixel portraits): ``GDepth:Format`` RangeLinear or RangeInverse with
  ``Near``/``Far`` and a base64 PNG/JPEG in ``GDepth:Data``, usually in Extended XMP.
* **Android Dynamic Depth 1.0**: ``Device:Container`` lists items appended after the
  primary JPEG (lengths from ``Item:Length``, ``Item:Padding``); the depth item is
  the one whose ``Item:DataURI`` is the camera's ``DepthMap:DepthURI``.
* **iPhone "most compatible" JPEG**: the disparity map is a secondary image of the
  Multi-Picture Format index, labelled by Apple's ``depthData`` XMP (HDR gain maps
  and portrait mattes, also stored there, are skipped).

and for HEIC/HEIF the auxiliary depth image libheif exposes (pillow-heif's
``info["depth_images"]``). Maps are returned in the photo's upright orientation.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from refocus.io import jpeg as jp
from refocus.depth import xmp as xm
from refocus.depth.refine import align_orientation
from refocus.io.image import exif_orientation
from refocus.errors import RefocusError

#: Near/Far and min/max values beyond this (metres or 1/m) are not a real scene's
#: (same bound as a depth file, :data:`refocus.io.depthfile.MAX_DEPTH_MAGNITUDE`).
MAX_RANGE = 1e6
#: A PNG map may have up to this many times its photo's pixels (then it is averaged
#: down): a photo downscaled 2x per side by an editor that kept its metadata.
MAX_MAP_EXCESS = 4


@dataclass
class EmbeddedDepth:
    """A depth map found in a photo file.

    Attributes
    ----------
    values : (h, w) float32
        Distances (``kind="depth"``) or disparities, upright; in metres / 1/m when
        ``metric``, else in arbitrary relative units.
    kind : str
        ``"depth"`` or ``"disparity"``.
    metric : bool
        Whether the values are in metres (depth) or 1/m (disparity).
    source : str
        Short description, e.g. ``"GDepth XMP (RangeInverse)"``.
    """

    values: np.ndarray
    kind: str
    metric: bool
    source: str
    notes: list[str] = field(default_factory=list)


def _map_budget(data: bytes | None, max_pixels: int | None) -> int:
    """Pixels an embedded map may have: the pixel budget, and no more than its photo's
    (a map larger than the photo it belongs to is suspect: phones store smaller ones)."""
    from refocus.io.limits import max_pixels as budget

    limit = budget() if max_pixels is None else int(max_pixels)
    if data is not None:
        from PIL import Image

        try:
            with Image.open(io.BytesIO(data)) as img:  # lazy: reads the header only
                limit = min(limit, max(1, img.size[0] * img.size[1]))
        except Exception:
            pass  # the photo's own reader reports an unreadable photo
    return limit


def _decode_map(blob: bytes, what: str, max_pixels: int | None = None, notes: list | None = None) -> np.ndarray:
    """Decode an embedded PNG/JPEG depth image to values normalised to [0, 1].

    ``max_pixels`` is the map's budget (:func:`_map_budget`), checked on the declared
    size before decoding. A JPEG map over it is reduced while decoding (libjpeg's DCT
    scaling, up to 1/8) with a note appended to ``notes``; any other (PNG) is decoded
    and block-averaged when it has at most :data:`MAX_MAP_EXCESS` times the budget (a
    photo downscaled after capture keeps its full-size map), else refused.
    """
    from refocus.io.image import png_bad_chunk
    from refocus.io.limits import max_pixels as budget, pillow_open

    limit = budget() if max_pixels is None else int(max_pixels)
    # A Lens Blur JPEG whose XMP was damaged (its checksum noted as not matching, "used
    # anyway") decoded to stripes and noise far outside the intact map's range (found
    # 2026-12-07): a PNG chunk failing its CRC-32 shows it.
    bad = png_bad_chunk(blob) if blob.startswith(b"\x89PNG\r\n\x1a\n") else None
    if bad is not None:
        raise RefocusError(f"{what} is damaged (its PNG '{bad.decode('latin-1', 'replace')}' chunk fails its checksum): refused")
    try:
        with pillow_open(io.BytesIO(blob), what, budget()) as img:
            w, h = img.size
            # A complete baseline JPEG spends at least ~2 bits per 8x8 block even on a
            # flat image (a DC difference and an end-of-block code): fewer bytes than
            # pixels/2048 (8x margin) is a header claiming data that is not there.
            if img.format == "JPEG" and len(blob) < w * h / 2048:
                raise RefocusError(
                    f"{what} declares {w}x{h} but holds only {len(blob)} bytes: truncated or forged, refused"
                )
            factor = 1
            if w * h > limit and img.format != "JPEG":
                if w * h > MAX_MAP_EXCESS * limit:
                    raise RefocusError(
                        f"{what} declares {w}x{h}, more pixels than its photo ({limit / 1e6:.2g} MP): suspect, refused"
                    )
                factor = math.ceil(math.sqrt(w * h / limit))
                if notes is not None:
                    notes.append(f"{what} is {w}x{h}, more than its photo: averaged down by {factor}")
            elif w * h > limit:
                s = math.sqrt(limit / (w * h))
                img.draft("L", (max(1, math.ceil(w * s)), max(1, math.ceil(h * s))))
                # draft picks a power-of-two reduction no smaller than asked: at most 2x per side over.
                if img.size[0] * img.size[1] > 4 * limit:
                    raise RefocusError(
                        f"{what} declares {w}x{h}, over 64 times its photo's pixels: suspect, refused"
                    )
                if notes is not None:
                    notes.append(f"{what} declares {w}x{h}, more than its photo: decoded at {img.size[0]}x{img.size[1]}")
            img.load()
            if img.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
                arr, scale = np.asarray(img, dtype=np.float32), 65535.0
            elif img.mode == "I":
                arr = np.asarray(img, dtype=np.float32)
                scale = 65535.0 if arr.max() > 255 else 255.0
            elif img.mode == "F":
                arr, scale = np.asarray(img, dtype=np.float32), 1.0
            else:
                arr, scale = np.asarray(img.convert("L"), dtype=np.float32), 255.0
    except RefocusError:
        raise
    except Exception as exc:
        raise RefocusError(f"{what} cannot be decoded ({exc.__class__.__name__})") from None
    if factor > 1:
        hh, ww = arr.shape[0] // factor, arr.shape[1] // factor
        arr = arr[: hh * factor, : ww * factor].reshape(hh, factor, ww, factor).mean(axis=(1, 3))
    from refocus.io.depthfile import check_depth_values

    check_depth_values(arr, what)
    return np.ascontiguousarray(arr / scale, dtype=np.float32)


def _float(props: dict, key: str, what: str) -> float:
    if key not in props:
        raise RefocusError(f"{what} lacks {key}")
    try:
        v = float(props[key])
    except ValueError:
        raise RefocusError(f"{what} has a non-numeric {key}: {props[key][:20]!r}") from None
    if not math.isfinite(v) or v <= 0 or v > MAX_RANGE:
        raise RefocusError(f"{what} has an invalid {key} = {props[key][:20]} (must be > 0 and <= {MAX_RANGE:g})")
    return v


def decode_range(dn: np.ndarray, fmt: str, near: float, far: float) -> np.ndarray:
    """Distances from a normalised range image (GDepth / Dynamic Depth encodings).

    RangeLinear: ``d = dn (far - near) + near``;
    RangeInverse: ``d = far near / (far - dn (far - near))`` (dn = 0 is ``near``).
    """
    if not far > near:
        raise RefocusError(f"depth range is invalid: Far ({far:g}) must exceed Near ({near:g})")
    dn = np.clip(dn.astype(np.float64), 0.0, 1.0)
    if fmt == "RangeLinear":
        d = dn * (far - near) + near
    elif fmt == "RangeInverse":
        d = far * near / (far - dn * (far - near))
    else:
        raise RefocusError(f"unknown depth format {fmt!r} (expected RangeLinear or RangeInverse)")
    return d.astype(np.float32)


_METRIC_UNITS = {"m": 1.0, "meters": 1.0, "metres": 1.0, "mm": 0.001, "millimeters": 0.001, "millimetres": 0.001}


def read_gdepth(data: bytes, max_pixels: int | None = None) -> EmbeddedDepth | None:
    """GDepth depth map of a JPEG, ``None`` when it has none.

    Raises
    ------
    RefocusError
        When GDepth metadata is present but unusable (missing data, bad base64,
        missing Near/Far, undecodable image, broken Extended XMP).
    """
    main, ext, notes = jp.read_xmp(data)
    if main is None or xm.GDEPTH_NS.encode() not in main + (ext or b""):
        return None
    props: dict[str, str] = {}
    for packet in (main, ext):
        if packet:
            for k, v in xm.properties(xm.parse_xmp(packet), xm.GDEPTH_NS).items():
                props.setdefault(k, v)
    if "Data" not in props:
        raise RefocusError("GDepth metadata without depth data (GDepth:Data missing; Extended XMP lost?)")
    fmt = props.get("Format", "RangeInverse")
    near = _float(props, "Near", "GDepth")
    far = _float(props, "Far", "GDepth")
    try:
        blob = base64.b64decode("".join(props["Data"].split()), validate=True)
    except (binascii.Error, ValueError):
        raise RefocusError("GDepth:Data is not valid base64") from None
    notes = list(notes)
    dn = _decode_map(blob, "GDepth image", _map_budget(data, max_pixels), notes)
    d = decode_range(dn, fmt, near, far)
    return _range_map_result(d, props, data, f"GDepth XMP ({fmt})", notes)


@dataclass
class LensBlurLens:
    """The lens a Google Camera "Lens Blur" photo was rendered with, and its original.

    Lens Blur stores the photo it rendered as the primary image and, in XMP, the depth
    map (GDepth), the lens (GFocus) and the all-in-focus original (GImage).

    Attributes
    ----------
    focal_distance : float
        Distance of the focal plane, in the depth map's units (``GFocus:FocalDistance``).
    blur_at_infinity : float
        CoC radius at infinity as a fraction of the image's long side
        (``GFocus:BlurAtInfinity``; see :func:`refocus.camera.strength_from_lens_blur`).
    focal_point : (x, y) or None
        The point focused on, as fractions of the stored image's width and height.
    original : bytes or None
        The original photo (``GImage:Data``, usually a JPEG), before the blur.
    """

    focal_distance: float
    blur_at_infinity: float
    focal_point: tuple[float, float] | None
    original: bytes | None


def _states_lens_blur(main: bytes | None, ext: bytes | None) -> bool:
    return main is not None and xm.GFOCUS_NS.encode() in main + (ext or b"")


def states_lens_blur(data: bytes) -> bool:
    """Whether a JPEG states a Lens Blur lens (GFocus in its XMP): a cheap check, nothing
    parsed or decoded beyond finding the XMP packets."""
    try:
        return _states_lens_blur(*jp.read_xmp(data)[:2])
    except RefocusError:
        return False


def read_lens_blur(data: bytes) -> LensBlurLens | None:
    """The lens and original of a Lens Blur JPEG, ``None`` when it states no lens.

    Raises
    ------
    RefocusError
        When GFocus is present but its values are unusable.
    """
    main, ext, _ = jp.read_xmp(data)
    if not _states_lens_blur(main, ext):
        return None
    focus: dict[str, str] = {}
    image: dict[str, str] = {}
    for packet in (main, ext):
        if packet:
            root = xm.parse_xmp(packet)
            for k, v in xm.properties(root, xm.GFOCUS_NS).items():
                focus.setdefault(k, v)
            for k, v in xm.properties(root, xm.GIMAGE_NS).items():
                image.setdefault(k, v)
    z_f = _float(focus, "FocalDistance", "GFocus")
    b = _float(focus, "BlurAtInfinity", "GFocus")
    if not (0 < z_f < MAX_RANGE) or not (0 <= b < 1):
        raise RefocusError(f"GFocus values out of range (FocalDistance {z_f:g}, BlurAtInfinity {b:g})")
    point = None
    if "FocalPointX" in focus and "FocalPointY" in focus:
        try:
            x, y = float(focus["FocalPointX"]), float(focus["FocalPointY"])
            point = (x, y) if 0 <= x <= 1 and 0 <= y <= 1 else None
        except ValueError:
            point = None
    original = None
    if "Data" in image:
        try:
            original = base64.b64decode("".join(image["Data"].split()), validate=True)
        except (binascii.Error, ValueError):
            original = None
    return LensBlurLens(z_f, b, point, original)


def _range_map_result(d: np.ndarray, props: dict, data: bytes, source: str, notes: list) -> EmbeddedDepth:
    """A decoded range map (GDepth or Dynamic Depth) in metres when its ``Units`` say so,
    turned like the primary image."""
    units = props.get("Units", "").strip().lower()
    metric = units in _METRIC_UNITS
    if metric:
        d = d * np.float32(_METRIC_UNITS[units])
    return EmbeddedDepth(align_orientation(d, exif_orientation(data)), "depth", metric, source, notes)


def read_dynamic_depth(data: bytes, max_pixels: int | None = None) -> EmbeddedDepth | None:
    """Android Dynamic Depth map of a JPEG, ``None`` when the file has none."""
    main, ext, notes = jp.read_xmp(data)
    if main is None:
        return None
    packets = [p for p in (main, ext) if p]
    if not any(xm.DD_DEPTHMAP_NS.encode() in p for p in packets):
        return None
    items: list[dict] = []
    depth_props: dict[str, str] = {}
    for p in packets:
        root = xm.parse_xmp(p)
        for ns in (xm.DD_ITEM_NS, xm.GCONTAINER_ITEM_NS):
            items.extend(r for r in xm.records(root, ns) if "Mime" in r)
        for rec in xm.records(root, xm.DD_DEPTHMAP_NS):
            if "DepthURI" in rec and not depth_props:
                depth_props = rec
    if not depth_props:
        raise RefocusError("Dynamic Depth metadata has no DepthMap with a DepthURI")
    if not items:
        raise RefocusError("Dynamic Depth metadata has no Container items")
    pos = jp.jpeg_end(data)
    uri = depth_props["DepthURI"]
    blob = None
    for i, it in enumerate(items):
        try:
            length = int(it.get("Length", "0"))
            padding = int(it.get("Padding", "0"))
        except ValueError:
            raise RefocusError("Dynamic Depth item has a non-integer Length/Padding") from None
        if length < 0 or padding < 0:
            raise RefocusError("Dynamic Depth item has a negative Length/Padding")
        if i == 0:
            # The primary image is the JPEG itself; its Length may be 0 (unknown).
            pos += padding
            continue
        if pos + length > len(data):
            raise RefocusError(f"Dynamic Depth item {it.get('DataURI', i)!r} runs past the end of the file (truncated?)")
        if it.get("DataURI") == uri:
            blob = data[pos : pos + length]
            break
        pos += length + padding
    if blob is None:
        raise RefocusError(f"Dynamic Depth: no container item has DataURI {uri!r}")
    fmt = depth_props.get("Format", "RangeLinear")
    near = _float(depth_props, "Near", "Dynamic Depth map")
    far = _float(depth_props, "Far", "Dynamic Depth map")
    notes = list(notes)
    d = decode_range(_decode_map(blob, "Dynamic Depth image", _map_budget(data, max_pixels), notes), fmt, near, far)
    return _range_map_result(d, depth_props, data, f"Android Dynamic Depth ({fmt})", notes)


_SKIP_AUX = (b"hdrgainmap", b"portraiteffectsmatte", b"semanticsegmentation", b"ns.adobe.com/hdr-gain-map", b"hdrgm")
# Apple CoreVideo pixel formats (four-character codes as integers) of depth data.
_APPLE_DEPTH_FORMATS = {1751410032, 1717855600}  # 'hdep', 'fdep' (distance in m)


def read_mpf_depth(data: bytes, max_pixels: int | None = None) -> EmbeddedDepth | None:
    """iPhone disparity stored as a secondary MPF image, ``None`` when there is none."""
    limit = _map_budget(data, max_pixels)
    entries = jp.read_mpf(data)
    for e in entries[1:]:
        blob = data[e.offset : e.offset + e.size]
        if not jp.is_jpeg(blob):
            continue
        try:
            main, _, _ = jp.read_xmp(blob)
        except RefocusError:
            main = None
        meta = main or b""
        if any(s in meta for s in _SKIP_AUX):
            continue
        apple = xm.APPLE_DEPTH_NS.encode() in meta or b"depthData" in meta
        if not apple:
            continue
        props: dict[str, str] = {}
        try:
            # Apple writes the map's range and format in the pixel-data-info namespace
            # (apdi:FloatMinValue, apdi:NativeFormat, as the pug HEIC's XMP shows) and
            # only Accuracy and the calibration in depthData; the depthData names are
            # kept as a fallback (what refocus read before 2026-12-07).
            root = xm.parse_xmp(meta)
            props = {**xm.properties(root, xm.APPLE_DEPTH_NS), **xm.properties(root, xm.APPLE_AUX_NS)}
        except RefocusError:
            props = {}
        notes: list[str] = []
        dn = _decode_map(blob, "MPF depth image", limit, notes)
        kind = "disparity"
        try:
            if int(props.get("NativeFormat", props.get("PixelFormat", "0"))) in _APPLE_DEPTH_FORMATS:
                kind = "depth"
        except ValueError:
            pass
        metric = False
        try:
            lo, hi = float(props["FloatMinValue"]), float(props["FloatMaxValue"])
            if math.isfinite(lo) and math.isfinite(hi) and hi > lo and max(abs(lo), abs(hi)) <= MAX_RANGE:
                dn = lo + dn * (hi - lo)
                # One rule with the HEIC's (read_heic_depth): Apple's range is in 1/m
                # (m for a depth format) whatever its Accuracy; "relative" only marks
                # the metres approximate.
                metric = True
                if props.get("Accuracy", "").lower() == "relative":
                    notes.append(APPROXIMATE_METRES)
        except (KeyError, ValueError):
            pass
        d = align_orientation(dn.astype(np.float32), exif_orientation(data))
        return EmbeddedDepth(d, kind, metric, f"iPhone JPEG {kind} (MPF image {e.index + 1})", notes)
    return None


def read_heic_depth(path: str | os.PathLike) -> EmbeddedDepth | None:
    """The auxiliary depth image of a HEIC/HEIF photo, ``None`` when there is none."""
    try:
        import pillow_heif
    except Exception:  # pragma: no cover - pillow-heif is a core dependency
        return None
    try:
        heif = pillow_heif.open_heif(path, convert_hdr_to_8bit=False)
        primary = heif[heif.primary_index] if hasattr(heif, "primary_index") else heif[0]
        depths = primary.info.get("depth_images") or []
        if not depths:
            return None
        dimg = depths[0]
        meta = dict(dimg.info.get("metadata") or {})
        from refocus.io.limits import check_pixels, max_pixels as budget

        pw, ph = primary.size
        # Checked before to_pillow(), which decodes: no more pixels than the photo.
        check_pixels(*dimg.size, "HEIC depth image", min(budget(), max(1, pw * ph)))
        pil = dimg.to_pillow()
        exif = primary.info.get("exif")
    except RefocusError:
        raise
    except Exception as exc:
        raise RefocusError(f"HEIC auxiliary depth image cannot be decoded ({exc.__class__.__name__})") from None
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    dn = _decode_map(buf.getvalue(), "HEIC depth image")
    rep = meta.get("representation_type")
    kind, metric = "disparity", False
    z_near, z_far = meta.get("z_near"), meta.get("z_far")
    if not all(isinstance(z, (int, float)) and math.isfinite(z) and abs(z) <= MAX_RANGE for z in (z_near, z_far)):
        z_near = z_far = None  # absent or absurd: the map stays relative
    if rep == 2:  # uniform Z: distance linear in the value
        kind = "depth"
        if z_near and z_far and z_far > z_near > 0:
            dn = z_near + dn * (z_far - z_near)
            metric = True
    elif rep == 0 and z_near and z_far and z_far > z_near > 0:  # uniform 1/Z
        dn = 1.0 / z_far + dn * (1.0 / z_near - 1.0 / z_far)
        metric = True
    elif rep in (None, 1) and z_near is None:
        # Uniform disparity between d_min and d_max (its lowest and highest disparity),
        # which an iPhone writes in 1/m: they are the apdi:FloatMinValue/FloatMaxValue
        # of the XMP beside the map (apdi:AuxiliaryImageType disparity), which
        # read_mpf_depth takes as 1/m too. Read as distances (1.50-4.38 m on the
        # pug HEIC, whose head at 2.4 m would then be 60 cm wide: the intrinsic
        # matrix's 3033 px focal length), every metre and --f-number was ~6x off.
        d_min, d_max = meta.get("d_min"), meta.get("d_max")
        if all(isinstance(d, (int, float)) and math.isfinite(d) and 0 < d <= MAX_RANGE for d in (d_min, d_max)) and d_max > d_min:
            dn = d_min + dn * (d_max - d_min)
            metric = True
    src = "iPhone HEIC auxiliary depth" if rep in (None, 1, 3) else "HEIC auxiliary depth"
    values = dn.astype(np.float32)
    notes = []
    if exif:
        from PIL import Image

        try:
            e = Image.Exif()
            e.load(exif)
            o = int(e.get(0x0112, 1) or 1)
        except Exception:
            o = 1
        if o != 1 and (values.shape[0] > values.shape[1]) != (primary.size[1] > primary.size[0]):
            values = align_orientation(values, o)
            notes.append(f"depth rotated by the EXIF orientation {o}")
    if metric and _apple_accuracy(path) == "relative":
        notes.append(APPROXIMATE_METRES)
    return EmbeddedDepth(values, kind, metric, src, notes)


#: The note for Apple depth whose ``depthData:Accuracy`` is "relative".
APPROXIMATE_METRES = "Apple marks this depth's accuracy 'relative': its distances in metres are approximate"


def _apple_accuracy(path: str | os.PathLike) -> str:
    """Apple's ``depthData:Accuracy`` (``absolute``/``relative``) from the XMP a HEIC
    keeps beside its depth image (pillow-heif does not expose it), or ``""``."""
    import re

    try:
        data = Path(path).read_bytes()
    except OSError:
        return ""
    m = re.search(rb"depthData:Accuracy(?:>|=\")\s*([A-Za-z]+)", data)
    return m.group(1).decode("ascii").lower() if m else ""


def find_embedded_depth(path: str | os.PathLike) -> tuple[EmbeddedDepth | None, list[str]]:
    """Look for a depth map inside a photo.

    Returns
    -------
    depth, messages
        The first usable map (or ``None``) and one line per format that was present
        but unusable (``"GDepth XMP: lacks Near"``), for the user.
    """
    path = Path(path)
    messages: list[str] = []
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError as exc:
        raise RefocusError(f"cannot read {path.name}: {exc.strerror}") from None
    if head[:3] == b"\xff\xd8\xff":
        data = path.read_bytes()
        limit = _map_budget(data, None)
        for name, fn in (("GDepth XMP", read_gdepth), ("Dynamic Depth", read_dynamic_depth), ("MPF depth image", read_mpf_depth)):
            try:
                got = fn(data, limit)
            except RefocusError as exc:
                messages.append(f"{name}: {exc}")
                continue
            if got is not None:
                return got, messages
        return None, messages
    if head[4:8] == b"ftyp":
        try:
            return read_heic_depth(path), messages
        except RefocusError as exc:
            messages.append(f"HEIC depth: {exc}")
    return None, messages

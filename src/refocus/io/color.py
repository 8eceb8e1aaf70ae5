"""sRGB transfer functions.

Convention: images enter and leave the project as sRGB-encoded float32 in [0, 1];
all optical maths (blur, averaging of views, highlight boosting) happens on the
linear values these functions return.
"""

from __future__ import annotations

import functools

import numpy as np


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    """Decode sRGB values in [0, 1] to linear light (IEC 61966-2-1)."""
    x = np.asarray(x, dtype=np.float32)
    # In place on one output array: np.where over two full-size branches took ~7x
    # the time of the power itself at 12 MP.
    out = np.maximum(x, np.float32(0.04045), out=np.empty_like(x))
    out += np.float32(0.055)
    out *= np.float32(1 / 1.055)
    np.power(out, np.float32(2.4), out=out)
    low = x <= 0.04045
    np.divide(x, np.float32(12.92), out=out, where=low)
    return out


def linear_to_srgb(x: np.ndarray, run_ranges=None) -> np.ndarray:
    """Encode linear light to sRGB; the input is clipped to [0, 1] first.

    ``run_ranges``: optional ``run_ranges(fn, [(a, b), ...])`` that runs ``fn(a, b)``
    for each range, e.g. on two threads (:meth:`refocus.render.threads.RenderThreads.run_ranges`);
    arrays of :data:`_SPLIT_SIZE` elements and more are then encoded in two row halves.
    None: on the calling thread. numpy releases the GIL in its loops, and the encode
    sits on the UI's re-render path and at the end of every pipeline run.
    """
    x = np.asarray(x, dtype=np.float32)
    out = np.empty_like(x)
    if run_ranges is not None and x.ndim >= 2 and x.size >= _SPLIT_SIZE:
        m = x.shape[0] // 2
        run_ranges(lambda a, b: _encode(x[a:b], out[a:b]), [(0, m), (m, x.shape[0])])
    else:
        _encode(x, out)
    return out


def _encode(x: np.ndarray, out: np.ndarray) -> None:
    xc = np.clip(x, 0.0, 1.0)
    np.maximum(xc, np.float32(0.0031308), out=out)
    np.power(out, np.float32(1 / 2.4), out=out)
    out *= np.float32(1.055)
    out -= np.float32(0.055)
    low = xc <= 0.0031308
    np.multiply(xc, np.float32(12.92), out=out, where=low)


#: Arrays at least this large (elements) are encoded in two halves when a
#: ``run_ranges`` is given.
_SPLIT_SIZE = 1 << 20


def luminance(x_linear: np.ndarray) -> np.ndarray:
    """Rec. 709 relative luminance of linear RGB (..., 3) -> (...)."""
    return (x_linear[..., 0] * 0.2126 + x_linear[..., 1] * 0.7152 + x_linear[..., 2] * 0.0722).astype(np.float32)


def display_srgb(image: np.ndarray, icc_profile: bytes | None) -> np.ndarray:
    """An sRGB-encoded float image whose values are in the colour space of ``icc_profile``
    (e.g. an iPhone's Display P3), converted to sRGB for a format that carries no
    profile (video, GIF): written as they are, P3 values are shown as sRGB ones, a
    duller picture. No profile, or an sRGB or non-RGB one: ``image`` unchanged.

    The conversion (relative colorimetric, through LittleCMS) works on 8-bit values,
    the precision of the formats it is for.
    """
    # Cached: a focus pull converts every frame with the same profile.
    transform = _srgb_transform(bytes(icc_profile) if icc_profile else None)
    if transform is None:
        return image
    from PIL import Image, ImageCms

    x = np.asarray(image, dtype=np.float32)
    arr8 = np.rint(np.clip(np.nan_to_num(x, nan=0.0), 0, 1) * 255).astype(np.uint8)
    out = ImageCms.applyTransform(Image.fromarray(arr8, "RGB"), transform)
    return np.asarray(out, dtype=np.float32) * np.float32(1 / 255)


def icc_space(icc_profile: bytes | None) -> bytes | None:
    """An ICC profile's colour space signature (header bytes 16-20: ``b"RGB "``,
    ``b"GRAY"``, ``b"CMYK"``...), or None without a readable header."""
    if not icc_profile or len(icc_profile) < 20:
        return None
    return bytes(icc_profile[16:20])


@functools.lru_cache(maxsize=8)
def _srgb_transform(icc_profile: bytes | None):
    """A LittleCMS transform from ``icc_profile`` (an RGB one, not sRGB) to sRGB, or None."""
    if icc_space(icc_profile) != b"RGB ":
        return None
    try:
        import io

        from PIL import ImageCms

        src = ImageCms.ImageCmsProfile(io.BytesIO(bytes(icc_profile)))
        if "srgb" in (ImageCms.getProfileDescription(src) or "").lower():
            return None
        return ImageCms.buildTransform(src, ImageCms.createProfile("sRGB"), "RGB", "RGB",
                                       renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC)
    except Exception:  # an unreadable profile: the values are shown as they are
        return None


#: ICC's profile connection space white (D50), XYZ.
_D50 = np.array([0.9642, 1.0, 0.8249])


def _xy_to_xyz(x: float, y: float) -> np.ndarray:
    return np.array([x / y, 1.0, (1 - x - y) / y])


def icc_from_nclx(nclx: dict | None) -> bytes | None:
    """An ICC profile (v4, matrix/TRC) for a HEIC's CICP "nclx" colour description, so
    that a photo described that way (no ICC profile: many Android phones) keeps its
    colour space in every output; None where none is needed (sRGB, BT.709 primaries
    with the sRGB curve) or it cannot be said (unspecified, HDR curves).

    ``nclx``: pillow-heif's ``info["nclx_profile"]``: ``color_primaries`` and
    ``transfer_characteristics`` codes (ITU-T H.273) and the primaries' xy.
    """
    if not nclx:
        return None
    try:
        prim = int(nclx.get("color_primaries", 2))
        trc = int(nclx.get("transfer_characteristics", 2))
        xy = [(float(nclx[f"color_primary_{c}_x"]), float(nclx[f"color_primary_{c}_y"]))
              for c in ("red", "green", "blue", "white")]
    except (KeyError, TypeError, ValueError):
        return None
    if prim in (0, 2) or not all(0 < y < 1 and 0 <= x < 1 for x, y in xy):
        return None
    # sRGB (13), and the BT.709 / BT.601 / BT.2020 camera curves (1, 6, 14, 15), which
    # viewers show as sRGB: only the primaries change, the tones are kept as they were
    # shown. Other curves (PQ, HLG, linear...) are not said by this profile.
    if trc not in (13, 1, 6, 14, 15):
        return None
    if prim == 1:
        return None  # sRGB's primaries: what an image without a profile is taken to be
    curve = (2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045)  # ICC parametric type 3: (aX + b)^g, or cX below d
    return _matrix_trc_icc(xy[:3], xy[3], curve, f"refocus: CICP primaries {prim}, sRGB curve")


def _matrix_trc_icc(primaries, white, curve, description: str) -> bytes:
    import struct

    # RGB -> XYZ for the given primaries and white, adapted to D50 (Bradford).
    m = np.stack([_xy_to_xyz(*p) for p in primaries], axis=1)
    w = _xy_to_xyz(*white)
    m = m * np.linalg.solve(m, w)[None, :]
    bradford = np.array([[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]])
    cone = np.diag((bradford @ _D50) / (bradford @ w))
    chad = np.linalg.inv(bradford) @ cone @ bradford
    m50 = chad @ m

    def s15(v: float) -> bytes:
        return struct.pack(">i", int(round(v * 65536)))

    def xyz(v) -> bytes:
        return b"XYZ \0\0\0\0" + b"".join(s15(c) for c in v)

    def mluc(text: str) -> bytes:
        t = text.encode("utf-16-be")
        return b"mluc\0\0\0\0" + struct.pack(">II", 1, 12) + b"enUS" + struct.pack(">II", len(t), 28) + t

    para = b"para\0\0\0\0" + struct.pack(">HH", 3, 0) + b"".join(s15(c) for c in curve)
    tags = [
        (b"desc", mluc(description)),
        (b"cprt", mluc("No copyright, use freely")),
        (b"wtpt", xyz(_D50)),
        (b"chad", b"sf32\0\0\0\0" + b"".join(s15(c) for c in chad.ravel())),
        (b"rXYZ", xyz(m50[:, 0])),
        (b"gXYZ", xyz(m50[:, 1])),
        (b"bXYZ", xyz(m50[:, 2])),
        (b"rTRC", para),
        (b"gTRC", para),
        (b"bTRC", para),
    ]
    table, data = b"", b""
    offset = 128 + 4 + 12 * len(tags)
    for sig, body in tags:
        body += b"\0" * (-len(body) % 4)
        if body in data:  # the three curves share one copy
            at = offset - len(data) + data.index(body)
        else:
            at = offset
            data += body
            offset += len(body)
        table += sig + struct.pack(">II", at, len(body))
    size = 128 + 4 + len(table) + len(data)
    header = (struct.pack(">I", size) + b"\0\0\0\0" + bytes([4, 0x30, 0, 0]) + b"mntrRGB XYZ "
              + b"\0" * 12 + b"acsp" + b"\0" * 24 + struct.pack(">I", 0)  # date; platform..attributes; intent
              + b"".join(s15(c) for c in _D50) + b"\0" * 4 + b"\0" * 16 + b"\0" * 28)  # illuminant; creator; ID
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + data

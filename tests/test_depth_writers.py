"""Writers for depth-carrying photo formats, following each specification.

Independent of the readers in ``refocus.depth`` on purpose (they must not share
bugs); used by ``test_depth_formats.py``. No tests here.
"""

from __future__ import annotations

import base64
import hashlib
import io
import struct

import numpy as np
from PIL import Image

XMP_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"
EXT_HEADER = b"http://ns.adobe.com/xmp/extension/\x00"


def jpeg_bytes(rgb: np.ndarray, orientation: int | None = None, mode: str = "RGB") -> bytes:
    img = Image.fromarray(rgb)
    assert img.mode == mode
    buf = io.BytesIO()
    kwargs = {}
    if orientation is not None:
        ex = Image.Exif()
        ex[0x0112] = orientation
        kwargs["exif"] = ex.tobytes()
    img.save(buf, format="JPEG", quality=90, **kwargs)
    return buf.getvalue()


def png_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")  # uint16 -> I;16, uint8 -> L
    return buf.getvalue()


def segment(marker: int, payload: bytes) -> bytes:
    assert len(payload) + 2 <= 0xFFFF
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def insert_segments(jpeg: bytes, segs: list[bytes]) -> bytes:
    """Insert segments right after SOI (and after an APP0/APP1 EXIF block if any)."""
    assert jpeg[:2] == b"\xff\xd8"
    pos = 2
    while jpeg[pos] == 0xFF and jpeg[pos + 1] in (0xE0, 0xE1):
        (n,) = struct.unpack(">H", jpeg[pos + 2 : pos + 4])
        pos += 2 + n
    return jpeg[:pos] + b"".join(segs) + jpeg[pos:]


def xmp_packet(description_attrs: str, namespaces: dict[str, str], body: str = "") -> bytes:
    ns = " ".join(f'xmlns:{k}="{v}"' for k, v in namespaces.items())
    return (
        '<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        f'<rdf:Description rdf:about="" {ns} {description_attrs}>{body}</rdf:Description>'
        "</rdf:RDF></x:xmpmeta><?xpacket end=\"w\"?>"
    ).encode()


def encode_range(depth: np.ndarray, fmt: str, near: float, far: float, bits: int = 16) -> np.ndarray:
    if fmt == "RangeLinear":
        dn = (depth - near) / (far - near)
    else:
        dn = far * (depth - near) / (depth * (far - near))
    top = 65535 if bits == 16 else 255
    return np.round(np.clip(dn, 0, 1) * top).astype(np.uint16 if bits == 16 else np.uint8)


GDEPTH = "http://ns.google.com/photos/1.0/depthmap/"
XMPNOTE = "http://ns.adobe.com/xmp/note/"
GFOCUS = "http://ns.google.com/photos/1.0/focus/"
GIMAGE = "http://ns.google.com/photos/1.0/image/"


def gdepth_jpeg(
    rgb: np.ndarray,
    depth_png: bytes,
    fmt: str,
    near: float | None,
    far: float | None,
    extended: bool = True,
    chunk: int = 1500,
    units: str | None = None,
    guid_override: str | None = None,
    b64: str | None = None,
    orientation: int | None = None,
    gfocus: dict[str, float] | None = None,
    original_jpeg: bytes | None = None,
) -> bytes:
    """A GDepth JPEG; with ``gfocus`` (FocalDistance, BlurAtInfinity, ...) and
    ``original_jpeg``, a Google Lens Blur file (the original in Extended XMP)."""
    data = b64 if b64 is not None else base64.b64encode(depth_png).decode()
    attrs = f'GDepth:Format="{fmt}" GDepth:Mime="image/png"'
    ns_main = {"GDepth": GDEPTH, "xmpNote": XMPNOTE}
    ext_attrs, ns_ext = f'GDepth:Data="{data}"', {"GDepth": GDEPTH}
    if gfocus:
        attrs += "".join(f' GFocus:{k}="{v}"' for k, v in gfocus.items())
        ns_main["GFocus"] = GFOCUS
    if original_jpeg is not None:
        attrs += ' GImage:Mime="image/jpeg"'
        ns_main["GImage"] = GIMAGE
        ext_attrs += f' GImage:Data="{base64.b64encode(original_jpeg).decode()}"'
        ns_ext["GImage"] = GIMAGE
    if near is not None:
        attrs += f' GDepth:Near="{near}"'
    if far is not None:
        attrs += f' GDepth:Far="{far}"'
    if units:
        attrs += f' GDepth:Units="{units}"'
    segs = []
    if extended:
        ext = xmp_packet(ext_attrs, ns_ext)
        guid = hashlib.md5(ext).hexdigest().upper()
        attrs += f' xmpNote:HasExtendedXMP="{guid_override or guid}"'
        main = xmp_packet(attrs, ns_main)
        segs.append(segment(0xE1, XMP_HEADER + main))
        for off in range(0, len(ext), chunk):
            piece = ext[off : off + chunk]
            segs.append(segment(0xE1, EXT_HEADER + guid.encode() + struct.pack(">II", len(ext), off) + piece))
    else:
        attrs += f' GDepth:Data="{data}"'
        segs.append(segment(0xE1, XMP_HEADER + xmp_packet(attrs, {"GDepth": GDEPTH})))
    return insert_segments(jpeg_bytes(rgb, orientation), segs)


def mpf_jpeg(primary: bytes, secondaries: list[bytes]) -> bytes:
    """A JPEG with an MPF index (CIPA DC-007) and the secondaries appended, little endian."""
    n = 1 + len(secondaries)
    # TIFF header (8) + IFD: count (2) + 3 entries (36) + next IFD (4) = 50, then entries.
    entries_off = 8 + 2 + 3 * 12 + 4

    def build(offsets: list[int], sizes: list[int]) -> bytes:
        t = b"II*\x00" + struct.pack("<I", 8)
        t += struct.pack("<H", 3)
        t += struct.pack("<HHI", 0xB000, 7, 4) + b"0100"
        t += struct.pack("<HHII", 0xB001, 4, 1, n)
        t += struct.pack("<HHII", 0xB002, 7, 16 * n, entries_off)
        t += struct.pack("<I", 0)
        for i in range(n):
            attr = 0x20030000 if i == 0 else 0x00000000
            t += struct.pack("<IIIHH", attr, sizes[i], offsets[i], 0, 0)
        return segment(0xE2, b"MPF\x00" + t)

    seg = build([0] * n, [0] * n)
    head = insert_segments(primary, [seg])
    base = head.index(b"MPF\x00") + 4
    sizes = [len(head)] + [len(s) for s in secondaries]
    offsets = [0]
    pos = len(head)
    for s in secondaries:
        offsets.append(pos - base)
        pos += len(s)
    final = insert_segments(primary, [build(offsets, sizes)])
    assert len(final) == len(head)
    return final + b"".join(secondaries)


APPLE_DEPTH = "http://ns.apple.com/depthData/1.0/"


def apple_depth_jpeg(disp8: np.ndarray, lo: float, hi: float, accuracy: str = "absolute") -> bytes:
    attrs = (
        f'depthData:PixelFormat="1751411059" depthData:FloatMinValue="{lo}" depthData:FloatMaxValue="{hi}" '
        f'depthData:Accuracy="{accuracy}"'
    )
    x = xmp_packet(attrs, {"depthData": APPLE_DEPTH})
    return insert_segments(jpeg_bytes(disp8, mode="L"), [segment(0xE1, XMP_HEADER + x)])


def gainmap_jpeg(gray: np.ndarray) -> bytes:
    x = xmp_packet('HDRGainMap:HDRGainMapVersion="65536"', {"HDRGainMap": "http://ns.apple.com/HDRGainMap/1.0/"},
                   body="<apdi:AuxiliaryImageType xmlns:apdi=\"http://ns.apple.com/pixeldatainfo/1.0/\">urn:com:apple:photo:2020:aux:hdrgainmap</apdi:AuxiliaryImageType>")
    return insert_segments(jpeg_bytes(gray, mode="L"), [segment(0xE1, XMP_HEADER + x)])


DD = {
    "Device": "http://ns.google.com/photos/dd/1.0/device/",
    "Container": "http://ns.google.com/photos/dd/1.0/container/",
    "Item": "http://ns.google.com/photos/dd/1.0/item/",
    "Camera": "http://ns.google.com/photos/dd/1.0/camera/",
    "DepthMap": "http://ns.google.com/photos/dd/1.0/depthmap/",
    "Image": "http://ns.google.com/photos/dd/1.0/image/",
}


def dynamic_depth_jpeg(
    rgb: np.ndarray, depth_png: bytes, fmt: str, near: float, far: float, padding: int = 0,
    extra_item: bytes | None = None, length_override: int | None = None,
) -> bytes:
    """Dynamic Depth 1.0: Container items appended after the primary, depth map referenced by URI."""
    items = ['<rdf:li rdf:parseType="Resource"><Container:Item Item:Mime="image/jpeg" Item:Semantic="Primary" Item:Length="0"/></rdf:li>']
    if extra_item is not None:
        items.append(
            f'<rdf:li rdf:parseType="Resource"><Container:Item Item:Mime="image/jpeg" Item:Semantic="Confidence" '
            f'Item:Length="{len(extra_item)}" Item:Padding="{padding}" Item:DataURI="android/confidencemap"/></rdf:li>'
        )
    length = length_override if length_override is not None else len(depth_png)
    items.append(
        f'<rdf:li rdf:parseType="Resource"><Container:Item Item:Mime="image/png" Item:Semantic="Depth" '
        f'Item:Length="{length}" Item:DataURI="android/depthmap"/></rdf:li>'
    )
    body = (
        '<Device:Container rdf:parseType="Resource"><Container:Directory><rdf:Seq>'
        + "".join(items)
        + "</rdf:Seq></Container:Directory></Device:Container>"
        '<Device:Cameras><rdf:Seq><rdf:li rdf:parseType="Resource"><Device:Camera rdf:parseType="Resource">'
        f'<Camera:DepthMap DepthMap:Format="{fmt}" DepthMap:Near="{near}" DepthMap:Far="{far}" DepthMap:Units="Meters" '
        'DepthMap:DepthURI="android/depthmap" DepthMap:MeasureType="OpticalAxis"/>'
        "</Device:Camera></rdf:li></rdf:Seq></Device:Cameras>"
    )
    x = xmp_packet("", DD, body=body)
    primary = insert_segments(jpeg_bytes(rgb), [segment(0xE1, XMP_HEADER + x)])
    tail = b""
    if extra_item is not None:
        tail += extra_item + b"\x00" * padding
    return primary + tail + depth_png

"""A result rendered with --f-number says the simulated aperture in XMP too: results
now carry the photo's XMP, whose exif:FNumber kept the taken aperture while EXIF
FNumber said the rendered one (a library preferring XMP showed f/2.8 on an f/1.4 look)."""

from __future__ import annotations

import math
import re

from refocus.io.image import ImageInfo
from refocus.pipeline import RefocusConfig
from refocus.pipeline.refocuser import output_info

XMP = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description exif:FNumber="28/10" '
       b'exif:ApertureValue="297/100" dc:rights="me"/><rdf:Description><exif:FNumber>28/10</exif:FNumber>'
       b"</rdf:Description></rdf:RDF></x:xmpmeta>")


def _values(xmp: bytes, name: str) -> list[float]:
    found = re.findall(rb"exif:" + name.encode() + rb"(?:=\"|>)(\d+)/(\d+)", xmp)
    return [int(a) / int(b) for a, b in found]


def test_xmp_aperture_follows_the_rendered_f_number():
    out = output_info(ImageInfo(xmp=XMP), RefocusConfig(f_number=1.4, strength=None))
    assert _values(out.xmp, "FNumber") == [1.4, 1.4]
    (apex,) = _values(out.xmp, "ApertureValue")
    assert abs(apex - 2 * math.log2(1.4)) < 1e-3
    assert b'dc:rights="me"' in out.xmp


def test_a_full_frame_equivalent_leaves_the_lens_aperture():
    out = output_info(ImageInfo(xmp=XMP), RefocusConfig(f_number=1.4, full_frame=True))
    assert out.xmp == XMP

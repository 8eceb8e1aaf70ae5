"""Reading XMP properties without trusting the XML.

XMP stores a property either as an attribute of an ``rdf:Description`` (or of any
struct element) or as a child element with text. :func:`records` returns, in document
order, one dict per element carrying properties of a namespace, in both spellings.
Documents with a DOCTYPE or entity declarations are refused (entity expansion is the
classic XML denial of service, and XMP never needs them).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from refocus.errors import RefocusError

_DECL = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)

GDEPTH_NS = "http://ns.google.com/photos/1.0/depthmap/"
GIMAGE_NS = "http://ns.google.com/photos/1.0/image/"
GFOCUS_NS = "http://ns.google.com/photos/1.0/focus/"
DD_DEVICE_NS = "http://ns.google.com/photos/dd/1.0/device/"
DD_CONTAINER_NS = "http://ns.google.com/photos/dd/1.0/container/"
DD_ITEM_NS = "http://ns.google.com/photos/dd/1.0/item/"
DD_DEPTHMAP_NS = "http://ns.google.com/photos/dd/1.0/depthmap/"
GCONTAINER_NS = "http://ns.google.com/photos/1.0/container/"
GCONTAINER_ITEM_NS = "http://ns.google.com/photos/1.0/container/item/"
APPLE_DEPTH_NS = "http://ns.apple.com/depthData/1.0/"
APPLE_AUX_NS = "http://ns.apple.com/pixeldatainfo/1.0/"


def parse_xmp(packet: bytes) -> ET.Element:
    """Parse an XMP packet (the ``<?xpacket?>`` wrapper is allowed).

    Raises
    ------
    RefocusError
        On malformed XML or a DOCTYPE/ENTITY declaration.
    """
    if _DECL.search(packet):
        raise RefocusError("XMP contains a DOCTYPE or entity declaration; refused")
    text = packet.strip(b"\x00 \r\n\t")
    start = text.find(b"<x:xmpmeta")
    if start < 0:
        start = text.find(b"<rdf:RDF")
    if start < 0:
        start = text.find(b"<")
    if start < 0:
        raise RefocusError("XMP packet holds no XML")
    end_tags = [text.rfind(t) + len(t) for t in (b"</x:xmpmeta>", b"</rdf:RDF>") if text.rfind(t) >= 0]
    body = text[start : max(end_tags)] if end_tags else text[start:]
    try:
        return ET.fromstring(body)
    except ET.ParseError as exc:
        raise RefocusError(f"malformed XMP: {exc}") from None


def _local(tag: str, ns: str) -> str | None:
    prefix = "{" + ns + "}"
    return tag[len(prefix) :] if tag.startswith(prefix) else None


def records(root: ET.Element, ns: str) -> list[dict[str, str]]:
    """Per element, the properties of namespace ``ns`` it carries (attributes or
    simple child elements), in document order; elements with none are skipped."""
    out = []
    for el in root.iter():
        rec = {}
        for k, v in el.attrib.items():
            name = _local(k, ns)
            if name is not None:
                rec[name] = v
        for child in el:
            name = _local(child.tag, ns)
            if name is not None and len(child) == 0 and child.text is not None and child.text.strip():
                rec[name] = child.text.strip()
        if rec:
            out.append(rec)
    return out


def properties(root: ET.Element, ns: str) -> dict[str, str]:
    """All properties of a namespace merged (the first occurrence of a name wins)."""
    merged: dict[str, str] = {}
    for rec in records(root, ns):
        for k, v in rec.items():
            merged.setdefault(k, v)
    return merged

"""A small, defensive JPEG container reader: segments, XMP (with Extended XMP), MPF.

Pillow exposes the first XMP packet but neither joins Extended XMP (the standard way
to store more than 64 KB of XMP, used by Google's GDepth for the depth image) nor
lets one find where the primary image ends (needed for Dynamic Depth, whose items
are appended after it). Every function here works on the file's bytes, never reads
past them, always advances, and raises :class:`RefocusError` for malformed input.
"""

from __future__ import annotations

import hashlib
import re
import struct
from dataclasses import dataclass

from refocus.errors import RefocusError

XMP_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"
XMP_EXT_HEADER = b"http://ns.adobe.com/xmp/extension/\x00"
MPF_HEADER = b"MPF\x00"

# Markers without a length field.
_STANDALONE = {0x01, 0xD0, 0xD1, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8, 0xD9}


@dataclass
class Segment:
    """One marker segment: ``marker`` (e.g. 0xE1 for APP1), payload bytes, and where
    the payload starts in the file."""

    marker: int
    payload: bytes
    offset: int


def is_jpeg(data: bytes) -> bool:
    """True when the bytes start with a JPEG SOI marker."""
    return data[:3] == b"\xff\xd8\xff"


#: How far from where a segment's length says the next marker is, a marker is
#: looked for when it is not there (writers get lengths wrong by a few bytes;
#: exiftool still reads such files).
RESYNC_BYTES = 16


def _resync(data: bytes, pos: int, floor: int) -> int | None:
    """The nearest plausible marker within :data:`RESYNC_BYTES` of ``pos`` (not before ``floor``)."""
    n = len(data)
    for d in range(1, RESYNC_BYTES + 1):
        for p in (pos + d, pos - d):
            if floor <= p and p + 4 <= n and data[p] == 0xFF and data[p + 1] not in (0x00, 0xFF):
                marker = data[p + 1]
                if marker in _STANDALONE or marker == 0xDA:
                    return p
                (length,) = struct.unpack(">H", data[p + 2 : p + 4])
                if length >= 2 and p + 2 + length <= n:
                    return p
    return None


def read_segments(data: bytes, start: int = 0, notes: list[str] | None = None) -> tuple[list[Segment], int]:
    """Header segments of the JPEG starting at ``start``, up to the first SOS.

    A segment whose length is off by a few bytes (no marker where it says the next
    one starts, but one within :data:`RESYNC_BYTES`) is tolerated, with a line in
    ``notes``.

    Returns
    -------
    segments, sos_offset
        ``sos_offset`` is the position of the first SOS marker (or the end of the
        data when there is none).
    """
    if data[start : start + 2] != b"\xff\xd8":
        raise RefocusError("not a JPEG (no SOI marker)")
    pos = start + 2
    segs: list[Segment] = []
    n = len(data)
    floor = pos
    while pos + 4 <= n:
        if data[pos] != 0xFF:
            found = _resync(data, pos, floor) if segs else None
            if found is None:
                raise RefocusError(f"malformed JPEG: expected a marker at byte {pos}")
            if notes is not None:
                notes.append(f"a JPEG segment length is off by {pos - found:+d} bytes (at byte {segs[-1].offset - 4}); read past it")
            pos = found
            continue
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _STANDALONE:
            pos += 2
            if marker == 0xD9:
                return segs, pos
            continue
        if marker == 0xDA:
            return segs, pos
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if length < 2 or pos + 2 + length > n:
            raise RefocusError(f"malformed JPEG: segment 0x{marker:02X} at byte {pos} runs past the end of the file")
        segs.append(Segment(marker, data[pos + 4 : pos + 2 + length], pos + 4))
        floor = pos + 4
        pos += 2 + length
    return segs, n


def jpeg_end(data: bytes, start: int = 0) -> int:
    """Offset just past the EOI marker of the JPEG that starts at ``start``.

    Walks segments (so an EXIF thumbnail's EOI is skipped), then entropy-coded data
    (where 0xFF is followed by 0x00 stuffing or an RST marker), through every scan of
    a progressive JPEG. A JPEG without EOI ends at the end of the data.
    """
    _, pos = read_segments(data, start)
    n = len(data)
    while pos + 1 < n:
        if data[pos] != 0xFF:
            pos += 1
            continue
        marker = data[pos + 1]
        if marker == 0xD9:
            return pos + 2
        if marker == 0x00 or marker == 0xFF or 0xD0 <= marker <= 0xD7:
            pos += 1 if marker == 0xFF else 2
            continue
        if marker == 0x01:
            pos += 2
            continue
        if pos + 4 > n:
            break
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if length < 2:
            raise RefocusError(f"malformed JPEG: bad segment length at byte {pos}")
        pos += 2 + length
        if marker == 0xDA:
            # Entropy-coded data follows the SOS header: scan to the next marker.
            nxt = data.find(b"\xff", pos)
            while nxt != -1 and nxt + 1 < n and (data[nxt + 1] == 0x00 or 0xD0 <= data[nxt + 1] <= 0xD7):
                nxt = data.find(b"\xff", nxt + 2)
            pos = n if nxt == -1 else nxt
    return n


_GUID = re.compile(rb"HasExtendedXMP\s*(?:=\s*[\"']|>)\s*([0-9A-Fa-f]{32})")


@dataclass
class XmpPackets:
    """The standard XMP packet and the joined Extended XMP (``None`` when absent)."""

    main: bytes | None
    extended: bytes | None
    notes: list[str]


def read_xmp(data: bytes, start: int = 0) -> tuple[bytes | None, bytes | None, list[str]]:
    """Standard and Extended XMP of the JPEG at ``start``.

    The Extended XMP is assembled from every APP1 ``http://ns.adobe.com/xmp/extension/``
    segment whose GUID equals the main packet's ``xmpNote:HasExtendedXMP``; segments
    with another GUID are ignored (as the XMP specification requires). Chunks must
    cover the announced total length exactly.

    Returns
    -------
    main, extended, notes
        ``notes`` lists anomalies that were tolerated (e.g. an MD5 mismatch).

    Raises
    ------
    RefocusError
        When the extended packet is announced but incomplete or inconsistent.
    """
    notes: list[str] = []
    segs, _ = read_segments(data, start, notes)
    main = None
    chunks: dict[bytes, list[tuple[int, int, bytes]]] = {}
    for s in segs:
        if s.marker != 0xE1:
            continue
        if s.payload.startswith(XMP_HEADER) and main is None:
            main = s.payload[len(XMP_HEADER) :]
        elif s.payload.startswith(XMP_EXT_HEADER):
            body = s.payload[len(XMP_EXT_HEADER) :]
            if len(body) < 40:
                notes.append("ignored a truncated Extended XMP segment")
                continue
            guid, total, off = body[:32], *struct.unpack(">II", body[32:40])
            chunks.setdefault(guid.upper(), []).append((total, off, body[40:]))
    if main is None:
        if chunks:
            notes.append("Extended XMP without a main XMP packet was ignored")
        return None, None, notes
    m = _GUID.search(main)
    if not m:
        if chunks:
            notes.append("Extended XMP segments present but not announced (no xmpNote:HasExtendedXMP)")
        return main, None, notes
    guid = m.group(1).upper()
    mine = chunks.get(guid)
    if not mine:
        other = ", ".join(g.decode("ascii", "replace") for g in chunks) or "none"
        raise RefocusError(
            f"Extended XMP {guid.decode()} is announced but missing (segments found for: {other})"
        )
    return main, _join_extended(mine, guid, notes), notes


def _join_extended(mine: list[tuple[int, int, bytes]], guid: bytes, notes: list[str]) -> bytes:
    """The Extended XMP packet from its chunks, as tolerant as exiftool: duplicated
    chunks, and chunks that disagree on the total length, are used when the data they
    give is whole (it covers the length without gaps and, where possible, its MD5 is
    the GUID); an error only when the data is not whole."""
    by_offset: dict[int, bytes] = {}
    duplicates = conflicts = 0
    for _, off, chunk in mine:
        if off in by_offset:
            if by_offset[off] == chunk:
                duplicates += 1
            else:
                conflicts += 1  # the first one is kept: writers append, they do not rewrite
            continue
        by_offset[off] = chunk
    # The longest run of data from offset 0 without a gap (overlaps are trimmed).
    buf = bytearray()
    for off in sorted(by_offset):
        chunk = by_offset[off]
        if off > len(buf):
            break
        buf += chunk[len(buf) - off :]
    totals = sorted({t for t, _, _ in mine})

    def md5_ok(b: bytes) -> bool:
        return hashlib.md5(b).hexdigest().upper().encode() == guid

    candidates = [t for t in totals if t <= len(buf)] + [len(buf)]
    chosen = next((t for t in candidates if md5_ok(bytes(buf[:t]))), None)
    if chosen is None:
        if len(totals) == 1 and len(buf) >= totals[0]:
            chosen = totals[0]
            notes.append("Extended XMP checksum does not match its GUID (used anyway)")
        elif len(totals) > 1 and len(buf) in totals:
            chosen = len(buf)
            notes.append("Extended XMP checksum does not match its GUID (used anyway)")
        else:
            want = max(totals)
            if len(totals) > 1:
                raise RefocusError(
                    f"Extended XMP chunks disagree on the total length ({', '.join(map(str, totals))}) and "
                    f"{len(buf)} bytes are present without a gap"
                )
            raise RefocusError(f"Extended XMP is truncated: {len(buf)} of {want} bytes present (a segment is missing or truncated)")
    if duplicates:
        notes.append(f"Extended XMP: {duplicates} duplicated segment(s) ignored")
    if conflicts:
        notes.append(f"Extended XMP: {conflicts} conflicting duplicate segment(s) ignored (the first kept)")
    if len(totals) > 1:
        notes.append(f"Extended XMP segments disagree on the total length ({', '.join(map(str, totals))}); {chosen} bytes are whole")
    return bytes(buf[:chosen])


@dataclass
class MpImage:
    """One entry of a Multi-Picture Format index: its type code and byte range."""

    index: int
    attribute: int
    offset: int
    size: int

    @property
    def type_code(self) -> int:
        return self.attribute & 0x00FFFFFF


def read_mpf(data: bytes) -> list[MpImage]:
    """The Multi-Picture Format (CIPA DC-007) index of a JPEG, or [] when there is none.

    Offsets are converted to absolute file offsets (MPF counts them from its own TIFF
    header; the first image's offset is 0 by definition). Entries that point outside
    the file are dropped.
    """
    segs, _ = read_segments(data)
    for s in segs:
        if s.marker == 0xE2 and s.payload.startswith(MPF_HEADER):
            base = s.offset + len(MPF_HEADER)
            tiff = s.payload[len(MPF_HEADER) :]
            break
    else:
        return []
    if len(tiff) < 8 or tiff[:4] not in (b"II*\x00", b"MM\x00*"):
        raise RefocusError("malformed MPF index (bad TIFF header)")
    e = "<" if tiff[:2] == b"II" else ">"
    (ifd,) = struct.unpack(e + "I", tiff[4:8])
    if ifd + 2 > len(tiff):
        raise RefocusError("malformed MPF index (IFD outside the segment)")
    (count,) = struct.unpack(e + "H", tiff[ifd : ifd + 2])
    entries_off = entries_len = None
    for i in range(count):
        p = ifd + 2 + 12 * i
        if p + 12 > len(tiff):
            raise RefocusError("malformed MPF index (truncated IFD)")
        tag, typ, n, val = struct.unpack(e + "HHII", tiff[p : p + 12])
        if tag == 0xB002:
            entries_off, entries_len = val, n
    if entries_off is None:
        return []
    if entries_off + entries_len > len(tiff) or entries_len % 16:
        raise RefocusError("malformed MPF index (MP entries outside the segment)")
    out = []
    for i in range(entries_len // 16):
        attr, size, off, _, _ = struct.unpack(e + "IIIHH", tiff[entries_off + 16 * i : entries_off + 16 * i + 16])
        absolute = 0 if (i == 0 or off == 0) else base + off
        if absolute + size > len(data) or (i > 0 and off == 0):
            continue
        out.append(MpImage(i, attr, absolute, size))
    return out

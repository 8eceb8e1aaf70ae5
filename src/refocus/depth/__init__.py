"""Depth for refocusing: where it comes from, how it is aligned, where to focus.

:func:`get_depth` finds a depth map for a photo, trying in order

1. an explicit file (``depth_path``: .npy, .pfm, 8/16-bit PNG, TIFF, EXR), or else
   the photo's neighbouring map ``PHOTO-disparity.png`` (:func:`find_neighbour_depth`,
   the rule ``batch`` follows too);
2. depth embedded in the photo (iPhone HEIC auxiliary depth, iPhone JPEG MPF
   disparity, Google GDepth XMP, Android Dynamic Depth);
3. a monocular network through ``transformers`` (Depth Anything V2 by default);
4. the photo's own defocus map from the deblurring stage (relative, assumes the
   nearest subject was in focus);

then brings a map of another size to the photo's size, aligning its edges with the
photo's (:func:`refocus.depth.refine.upsample_to_guide`); a map already at the
photo's size is left as it is unless asked (``refine=True``). The renderer's
normalised disparity uses the range of the map as found, so alignment never changes
what a focus value or a strength means. Each decision is recorded in
``DepthResult.notes`` for the user. Focus selection lives in
:mod:`refocus.depth.focus`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from refocus.errors import RefocusError

__all__ = ["DepthResult", "find_neighbour_depth", "get_depth", "to_disparity"]

#: Largest aspect-ratio mismatch (relative) accepted between depth map and photo.
ASPECT_TOLERANCE = 0.03
_FLOAT_SUFFIXES = {".npy", ".pfm", ".exr", ".tif", ".tiff"}
#: A photo's neighbouring depth map is PHOTO<suffix><ext>, the first of these that exists.
NEIGHBOUR_SUFFIX = "-disparity"
NEIGHBOUR_EXTENSIONS = (".png", ".npy", ".pfm", ".tif", ".tiff", ".exr")


#: The ``source`` of a disparity read from the photo's own blur (the last resort): the
#: pipeline then takes the input blur along that disparity (see refocus.pipeline).
DEFOCUS_ESTIMATE_SOURCE = "defocus estimate"
#: What is said of a depth read from the photo's own blur.
DEFOCUS_ESTIMATE_NOTE = "depth from the photo's own blur: assumes the nearest subject was in focus (relative only)"


def find_neighbour_depth(
    photo: str | os.PathLike, depth_dir: str | os.PathLike | None = None, suffix: str = NEIGHBOUR_SUFFIX
) -> Path | None:
    """The depth map that belongs to ``photo`` by its name, if there is one.

    ``PHOTO.jpg`` -> ``PHOTO-disparity.png`` (or ``.npy``, ``.pfm``, ``.tif``, ``.tiff``,
    ``.exr``) in ``depth_dir`` or, by default, next to the photo. ``refocus refocus``,
    ``animate``, ``depth`` and the UI (through :func:`get_depth`) and ``batch`` all
    use this one rule; ``render`` always takes an explicit ``--depth``.

    A photo that is a symbolic link with no map by its own name gets the map of the
    file it points to (``TARGET-disparity.png`` beside the target, or in ``depth_dir``).
    A name the disk cannot hold (over 255 bytes once the suffix is added) or cannot
    look up is no map, not an error: one such photo must not stop a whole batch.
    """
    photo = Path(photo)
    candidates = [(Path(depth_dir) if depth_dir is not None else photo.parent, photo)]
    try:
        if photo.is_symlink():
            target = photo.resolve()
            candidates.append((Path(depth_dir) if depth_dir is not None else target.parent, target))
    except (OSError, RuntimeError):  # a link loop, an unreadable folder
        pass
    for folder, named in candidates:
        for ext in NEIGHBOUR_EXTENSIONS:
            cand = folder / f"{named.stem}{suffix}{ext}"
            try:
                found = cand.is_file()
            except (OSError, ValueError):  # ENAMETOOLONG, EACCES..., a NUL in the suffix
                found = False
            if found and not (depth_dir is None and cand in (photo, named)):
                return cand
    return None


def _valid(values: np.ndarray, kind: str) -> np.ndarray:
    """Where ``values`` are usable: finite, and for depth also > 0, or +inf (infinitely
    far, as renderers write the background of a depth pass)."""
    v = np.asarray(values)
    ok = np.isfinite(v)
    if kind == "depth":
        with np.errstate(invalid="ignore"):
            ok = (ok & (v > 0)) | np.isposinf(v)
    return ok


def _invalid_count(values: np.ndarray, kind: str) -> int:
    return int(np.size(values) - np.count_nonzero(_valid(values, kind)))


def to_disparity(values: np.ndarray, kind: str) -> np.ndarray:
    """Disparity (larger = nearer) from depth (``1/z``) or disparity, invalid values filled.

    NaN and infinite values, and non-positive distances, are replaced by their nearest
    valid neighbour; a distance of +inf is infinitely far, disparity 0 (the sky of a
    rendered depth pass was filled with the depth of what bordered it).
    """
    from scipy.ndimage import distance_transform_edt

    if kind not in ("depth", "disparity"):
        raise RefocusError(f"unknown depth kind {kind!r}: use disparity or depth")
    v = np.asarray(values, dtype=np.float32)
    valid = _valid(v, kind)
    if not valid.any():
        raise RefocusError("depth map has no valid values")
    if not valid.all():
        idx = distance_transform_edt(~valid, return_distances=False, return_indices=True)
        v = v[tuple(idx)]
    return (1.0 / v).astype(np.float32) if kind == "depth" else v


@dataclass
class DepthResult:
    """A depth map for one photo and where it came from.

    Attributes
    ----------
    values : (H, W) float32
        At the photo's size (after edge-aware upsampling). Distances in m
        (``kind="depth"``, ``metric``), disparity in 1/m (``kind="disparity"``,
        ``metric``), or relative values.
    kind : str
        ``"disparity"`` (larger = nearer) or ``"depth"`` (distance).
    metric : bool
        True when the values are metric (m, or 1/m for disparity).
    source : str
        Where it came from, e.g. ``"file d.png"``, ``"GDepth XMP (RangeInverse)"``.
    notes : list of str
        Every decision taken on the way (sources tried and why they were skipped,
        resampling), one line each, for the user.
    raw_shape : (int, int)
        (H, W) of the map as found, before upsampling.
    raw_range : (float, float) or None
        (min, max) disparity of the map as found, before any resampling or edge
        alignment; None means the range of ``values``.
    """

    values: np.ndarray
    kind: str
    metric: bool
    source: str
    notes: list[str] = field(default_factory=list)
    raw_shape: tuple[int, int] = (0, 0)
    raw_range: tuple[float, float] | None = None

    def disparity(self) -> np.ndarray:
        """The renderer's disparity: larger = nearer, min-max normalised to [0, 1]
        by the range of the map as found (:meth:`disparity_range`).

        Normalising by the raw range keeps ``focus_value`` and ``strength`` meaning
        the same whether or not the map was resampled or aligned (alignment may
        remove isolated extremes). A constant map gives all zeros (one plane:
        nothing will blur).
        """
        d = to_disparity(self.values, self.kind)
        lo, hi = self.disparity_range()
        if hi - lo < 1e-12:
            return np.zeros_like(d)
        # float64: hi - lo may exceed float32
        return np.clip((d.astype(np.float64) - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)

    def disparity_range(self) -> tuple[float, float]:
        """(min, max) of the un-normalised disparity of the map as found (1/m when ``metric``)."""
        if self.raw_range is not None:
            return self.raw_range
        d = to_disparity(self.values, self.kind)
        return float(d.min()), float(d.max())

    def metric_disparity(self) -> np.ndarray:
        """Disparity in 1/m (only for metric maps), for :func:`refocus.camera.strength_from_camera`."""
        if not self.metric:
            raise RefocusError(f"the depth from {self.source} is relative, not metric")
        return to_disparity(self.values, self.kind)

    def focus_disparity_for_distance(self, distance_m: float) -> float:
        """Normalised disparity (as :meth:`disparity`) of a focus distance in metres.

        Raises
        ------
        RefocusError
            When the map is relative (a distance means nothing on it).
        """
        if not self.metric:
            raise RefocusError(
                f"cannot focus at a distance in metres: the depth from {self.source} is relative; focus on a point instead"
            )
        if not (np.isfinite(distance_m) and distance_m > 0):
            raise RefocusError(f"focus distance must be > 0 m, got {distance_m}")
        lo, hi = self.disparity_range()
        if hi - lo < 1e-12:
            return 0.0
        return float((1.0 / distance_m - lo) / (hi - lo))

    def strength_for(self, k_metric: float) -> float:
        """Gain for :meth:`disparity` (normalised) equal to a metric gain K (px·m)."""
        from refocus.camera.lens import strength_for_normalised_disparity

        lo, hi = self.disparity_range()
        return strength_for_normalised_disparity(k_metric, lo, hi)


def _check_aspect(shape: tuple[int, int], image_shape: tuple[int, int], what: str) -> None:
    (h, w), (H, W) = shape, image_shape
    a, A = w / h, W / H
    if abs(a / A - 1.0) <= ASPECT_TOLERANCE:
        return
    hint = " (rotated by 90 degrees?)" if abs((h / w) / A - 1.0) <= ASPECT_TOLERANCE else ""
    if what.startswith("depth map "):
        # The UI trial: a second photo loaded with the first one's map still in place.
        hint += "; a depth map must be of this photo: give its own with --depth FILE, or none"
    raise RefocusError(f"{what} is {w}x{h} but the photo is {W}x{H}: different aspect ratio{hint}")


def _align(values: np.ndarray, kind: str, image: np.ndarray, refine: bool) -> np.ndarray:
    """Bring a map to the photo's size; edge-aware in disparity space, then back to ``kind``."""
    from refocus.depth.refine import _resize, upsample_to_guide

    H, W = image.shape[:2]
    disp = to_disparity(values, kind)
    # Filter in [0, 1]: the guided filter sums squares of its input, which overflows
    # float32 for values near 1e19 and loses precision far below that.
    lo, hi = float(np.min(disp)), float(np.max(disp))
    span = hi - lo if hi > lo else 1.0
    unit = ((disp.astype(np.float64) - lo) / span).astype(np.float32)
    out = upsample_to_guide(unit, image) if refine else _resize(unit, (H, W))
    if not out.flags.writeable or np.shares_memory(out, unit):
        out = out.copy()
    # In place and in float32: each 12 MP float64 temporary costs ~50 ms.
    out *= np.float32(span)
    out += np.float32(lo)
    if kind == "depth":
        np.maximum(out, np.float32(0.0), out=out)
        with np.errstate(divide="ignore"):  # disparity 0: infinitely far, as given
            np.divide(np.float32(1.0), out, out=out)
    return out


#: Nearest distance (m) of a metric depth file from which refocus asks whether the
#: map is in millimetres: a scene whose nearest point is 100 m away is rare, and a
#: map in millimetres of anything 10 cm or farther starts there.
MILLIMETRE_HINT_M = 100.0

_MEANING = {"disparity": "disparity (larger = nearer)", "depth": "depth (larger = farther)"}


def _from_file(depth_path, depth_kind) -> tuple[np.ndarray, str, bool, str, list[str]]:
    """A depth file's values, kind, metric flag, source and notes.

    The kind is ``depth_kind`` when given, else what the file records (a map
    ``refocus depth`` wrote: :func:`refocus.io.depthfile.read_depth_meta`), else
    disparity; a given kind that contradicts the record is used, with a warning.
    A map with no valid value for its kind is refused naming the file; a constant
    one (one plane: nothing would be refocused) gives a warning naming it.
    """
    from refocus.io.depthfile import read_depth_file, read_depth_meta

    p = Path(depth_path)
    arr = read_depth_file(p)
    recorded = read_depth_meta(p)
    rec_kind = recorded.get("kind")
    kind = depth_kind or rec_kind or "disparity"
    notes = []
    if depth_kind is None and rec_kind is None:
        notes.append(f"{p.name}: read as disparity (larger = nearer); pass --depth-kind depth if it holds distances")
    elif depth_kind is None:
        notes.append(f"{p.name}: read as {_MEANING[kind]}, as the file records")
    elif rec_kind is not None and rec_kind != depth_kind:
        notes.append(f"warning: {p.name} records that it holds {_MEANING[rec_kind]}, but --depth-kind says {depth_kind}: "
                     f"read as {depth_kind}, as asked")
    if rec_kind is not None and kind == rec_kind:
        metric = recorded["metric"]
    else:
        metric = kind == "depth" and p.suffix.lower() in _FLOAT_SUFFIXES
    ok = _valid(arr, kind)
    n_bad = arr.size - int(np.count_nonzero(ok))
    if n_bad == arr.size:  # (read_depth_file refuses a map without finite values)
        hint = "; if it holds disparity, leave out --depth-kind depth" if depth_kind == "depth" else ""
        raise RefocusError(f"depth map {p.name} has no positive value, and distances (depth) must be > 0{hint}")
    n_far = int(np.count_nonzero(np.isposinf(arr))) if kind == "depth" else 0
    if n_far:
        notes.append(f"{p.name}: {n_far} distances are infinite: read as infinitely far (disparity 0)")
    if n_bad:
        what = "NaN/-inf/non-positive" if kind == "depth" else "NaN/inf"
        note = f"warning: depth map {p.name} has {n_bad} invalid values ({what}); filled from their neighbours"
        with np.errstate(invalid="ignore"):
            zeros = kind == "depth" and not metric and bool((arr == 0).any()) and not bool((arr < 0).any())
        if zeros:
            # An 8-bit map normalised with 0 = nearest lost its nearest subject this way,
            # merged into whatever lies behind it.
            note += (" (0 is read as 'no distance measured'; if 0 means the nearest, the map is not distances: "
                     "invert it to a disparity, larger = nearer, and leave out --depth-kind depth)")
        notes.append(note)
    valid = arr[ok]
    lo, hi = float(valid.min()), float(valid.max())
    if (1.0 / lo - 1.0 / hi if kind == "depth" else hi - lo) < 1e-12:  # as DepthResult.disparity decides
        # Not "nothing will be refocused": a focal plane off that plane (--focus-value
        # with --no-normalize) blurs the whole photo evenly.
        notes.append(f"warning: depth map {p.name} is constant (every value {lo:g}): the whole photo lies on one "
                     "plane, sharp when focused on it, evenly blurred otherwise")
    if metric and kind == "depth":
        notes.append(f"{p.name}: float distances, taken to be in metres ({lo:.4g} .. {hi:.4g} m)")
        if lo >= MILLIMETRE_HINT_M:
            # A map in millimetres read as metres put --focus-value 2.5m in front of
            # everything and asked for blur radii of thousands of pixels.
            notes.append(f"warning: {p.name} puts its nearest point {lo:.4g} m away: if its distances are in millimetres "
                         "(or centimetres), divide them by 1000 (or 100), since distances like --focus-value 2.5m are in metres")
    elif kind == "depth" and rec_kind is None:
        # --depth-kind depth on a 16-bit PNG in millimetres (as RGB-D cameras save them)
        # was then told to "use metric depth (--depth FILE --depth-kind depth ...)".
        notes.append(f"{p.name}: distances in an image format, whose unit is unknown: used as relative depth; for distances "
                     "in metres (--focus-value 2m, --f-number) give a float map in metres (.npy, .tif, .pfm or .exr)")
    elif metric:
        near, far = (f"{1.0 / v:.3g} m" if v > 0 else "infinity" for v in (hi, lo))
        notes.append(f"{p.name}: metric disparity (1/m), distances {near} .. {far}")
    return arr, kind, metric, f"file {p.name}", notes


def _options() -> str:
    """What the user can do when a photo has no depth (one clause, for error lines)."""
    from refocus.depth.estimate import DEFAULT_DEPTH_MODEL, _hub_offline

    # "unset HF_HUB_OFFLINE" only where it is set (estimate.unavailable_message's rule).
    net = "network access; unset HF_HUB_OFFLINE" if _hub_offline() else "network access"
    return (
        f"pass --depth FILE with a depth or disparity map, or let the depth network {DEFAULT_DEPTH_MODEL} "
        f"download once ({net}) or pass --depth-model PATH to a downloaded one"
    )


def get_depth(
    image_path: str | os.PathLike | None,
    *,
    depth_path: str | os.PathLike | None = None,
    depth_kind: str | None = None,
    model: str | os.PathLike | None = None,
    allow_estimate: bool = True,
    image: np.ndarray | None = None,
    refine: bool | None = None,
    device: str = "cpu",
    neighbour: bool = True,
) -> DepthResult:
    """Find the depth of a photo (file, embedded, network, defocus; in that order).

    Parameters
    ----------
    image_path : path or None
        The photo (for embedded depth); may be None when ``image`` and another
        source are given.
    depth_path : path, optional
        An explicit depth/disparity map; used as is (no fallback if unreadable).
        Without one, the photo's neighbouring ``PHOTO-disparity.*`` is used when it
        exists (``neighbour``; :func:`find_neighbour_depth`).
    depth_kind : {"disparity", "depth"}, optional
        What ``depth_path`` holds; by default what the file records (a map
        ``refocus depth`` wrote, :func:`refocus.io.depthfile.read_depth_meta`), else
        disparity.
    model : str or path, optional
        A transformers depth model (hub id or folder); given explicitly, it is used
        instead of any embedded depth, and a failure to load it is an error.
    allow_estimate : bool
        Allow the network and the defocus estimate when nothing is stored.
    image : (H, W, 3) array, optional
        The photo's pixels when already loaded: float sRGB in [0, 1], or uint8/uint16,
        grey or RGBA, as :func:`refocus.io.as_float_rgb` accepts.
    refine : bool or None
        True: align the map's edges with the photo (weighted median) even when it
        already has the photo's size; False: plain bilinear resampling; None (the
        default): align only maps that are resampled.
    device : str
        Torch device for the network.
    neighbour : bool
        Look for the photo's neighbouring depth map when no ``depth_path`` is given.

    Raises
    ------
    RefocusError
        When no source gives a usable map, with what the user can do about it.
    """
    from refocus.io import as_float_rgb, read_image

    if depth_kind not in (None, "disparity", "depth"):
        raise RefocusError(f"unknown depth kind {depth_kind!r}: use disparity or depth")
    if depth_path is not None and not isinstance(depth_path, (str, os.PathLike)):
        raise RefocusError(
            f"depth_path must be a file path, got {type(depth_path).__name__}; "
            "an in-memory map goes to refocus.render_bokeh(image, disparity, ...)"
        )
    if image is None:
        if image_path is None:
            raise RefocusError("get_depth needs an image path or the image")
        image, _ = read_image(image_path)
    # The photo guides edge alignment and feeds the network, both in sRGB [0, 1]:
    # a uint8 photo taken as 0..255 floats aligned the edges differently.
    image = as_float_rgb(image)[0]
    H, W = image.shape[:2]
    notes: list[str] = []
    found = None  # (values, kind, metric, source)

    if depth_path is None and neighbour and model is None and image_path is not None:
        depth_path = find_neighbour_depth(image_path)
        if depth_path is not None:
            notes.append(f"using the depth map next to the photo, {depth_path.name} (pass --depth FILE to use another)")
    if depth_path is not None:
        arr, kind, metric, source, more = _from_file(depth_path, depth_kind)
        notes += more
        _check_aspect(arr.shape, (H, W), f"depth map {Path(depth_path).name}")
        found = (arr, kind, metric, source)
    elif depth_kind is not None:
        raise RefocusError("--depth-kind applies to a --depth file; none was given")

    skipped: list[str] = []  # why an embedded map was not used
    if found is None and model is None and image_path is not None:
        from refocus.depth.embedded import find_embedded_depth

        emb, skipped = find_embedded_depth(image_path)
        notes += [f"embedded depth skipped: {m}" for m in skipped]
        if emb is not None:
            try:
                _check_aspect(emb.values.shape, (H, W), f"embedded depth ({emb.source})")
                notes += emb.notes
                found = (emb.values, emb.kind, emb.metric, emb.source)
            except RefocusError as exc:
                skipped = [*skipped, str(exc)]
                notes.append(f"embedded depth skipped: {exc}")
        elif not skipped:
            notes.append("no depth map embedded in the photo")

    net_missing = ""
    if found is None and (model is not None or allow_estimate):
        from refocus.depth.estimate import ModelUnavailable, estimate_depth_network

        try:
            net = estimate_depth_network(image, model, device=device)
            # No aspect check: the network saw the whole photo; its grid is only rounded.
            desc = "metric depth" if net.metric else "relative disparity"
            found = (net.values, net.kind, net.metric, f"{net.model_type} network via transformers ({net.model}, {desc})")
        except ModelUnavailable as exc:
            if model is not None:
                raise
            net_missing = "the depth network is not available (offline or not downloaded)"
            notes.append(f"{exc}; using the photo's own blur instead")
        except RefocusError as exc:
            if model is not None:
                raise
            notes.append(f"monocular network skipped: {exc}")

    if found is None and allow_estimate:
        from refocus.depth.estimate import AllInFocus, estimate_depth_from_defocus

        try:
            disp = estimate_depth_from_defocus(image)
            found = (disp, "disparity", False, DEFOCUS_ESTIMATE_SOURCE)
            notes.append(DEFOCUS_ESTIMATE_NOTE)
        except AllInFocus as exc:
            why = f"{exc}" + (f", and {net_missing}" if net_missing else "")
            raise RefocusError(f"no depth for this photo: {why}; {_options()}") from None
        except RefocusError as exc:
            notes.append(f"defocus estimate skipped: {exc}")

    if found is None and not allow_estimate and model is None:
        # Nothing stored, and estimating was ruled out: downloading a network is no answer.
        name = Path(image_path).name if image_path is not None else "the photo"
        why = "; ".join(skipped)
        raise RefocusError(
            f"no depth for this photo: {name} has no embedded depth{f' ({why})' if why else ''}, and --no-estimate "
            "forbids estimating it; pass --depth FILE with a depth or disparity map"
        )
    if found is None:
        why = "; ".join(notes) if notes else "nothing found"
        raise RefocusError(f"no depth for this photo ({why}); {_options()}")
    values, kind, metric, source = found
    raw_shape = tuple(int(s) for s in np.shape(values))
    raw_disp = to_disparity(values, kind)
    raw_range = (float(raw_disp.min()), float(raw_disp.max()))
    if raw_shape != (H, W):
        # W x H is the working copy's size, smaller than the photo's own for a large photo.
        along = "" if refine is False else " along the photo's edges"
        notes.append(f"depth {raw_shape[1]}x{raw_shape[0]} resampled{along} to {W}x{H}, the size the photo is worked at")
        aligned = _align(values, kind, image, refine is not False)
    elif refine:
        notes.append("depth edges aligned with the photo's edges (weighted median)")
        aligned = _align(values, kind, image, True)
    else:
        # A map that already fits is the user's (or the camera's) word: left alone
        # (invalid values filled).
        aligned = np.asarray(values, dtype=np.float32)
        if _invalid_count(aligned, kind):
            with np.errstate(divide="ignore"):  # disparity 0: infinitely far
                aligned = raw_disp if kind == "disparity" else (1.0 / raw_disp).astype(np.float32)
    return DepthResult(aligned, kind, metric, source, notes, raw_shape, raw_range)

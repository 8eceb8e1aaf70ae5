"""refocus: change the focus of a photo after it was taken.

Stages (each a plain function over arrays, with a small typed config):

* :mod:`refocus.depth` - where the depth comes from (files, embedded, networks);
* :mod:`refocus.deblur` - DeblurNet: all-in-focus image and defocus map;
* :mod:`refocus.render` - the bokeh renderer (BokehNet stage);
* :mod:`refocus.pipeline` - the stages composed.

Conventions: images are float32 H x W x 3 sRGB in [0, 1]; rendering happens in
linear light; disparity is "larger = nearer"; CoC is a signed radius in pixels,
positive in front of the focal plane.
"""

# First: for the `refocus` script it installs the Ctrl-C handling (refocus.errors)
# before the heavy imports below, so an interrupt during them is one line too.
from refocus.errors import RefocusError  # noqa: I001
from refocus.aperture import ApertureConfig
from refocus.render import RenderConfig

__version__ = "0.1.0"

__all__ = [
    "ApertureConfig",
    "RefocusError",
    "RenderConfig",
    "deblur",
    "refocus",
    "render_bokeh",
    "__version__",
]

#: Stage packages reachable as attributes after a bare ``import refocus``
#: (``refocus.io.write_image(...)``, as the README writes it), imported on first use.
_SUBPACKAGES = ("aperture", "camera", "deblur", "depth", "io", "pipeline", "render")


def __getattr__(name):
    # Heavier stages are imported on first use so that `import refocus` stays fast.
    if name == "render_bokeh":  # depth preparation + renderer: refocus.pipeline.bokeh
        from refocus.pipeline.bokeh import render_bokeh

        return render_bokeh
    if name == "refocus":
        from refocus.pipeline import refocus

        return refocus
    if name in _SUBPACKAGES:
        # ``refocus.deblur`` is the subpackage, and it is callable: importing it (as
        # the pipeline does) makes the package attribute the module whatever was
        # returned here, so the README's ``refocus.deblur(photo)`` must work on it.
        import importlib

        return importlib.import_module(f"refocus.{name}")
    raise AttributeError(f"module 'refocus' has no attribute {name!r}")

"""The generative engine: Genfocus (the seed paper's DeblurNet and BokehNet, LoRAs on
FLUX.1-dev) reimplemented on ``diffusers`` + ``peft`` (``pip install 'refocus[genfocus]'``).

* :mod:`.sampler` - the denoising loop with condition streams and tiles;
* :mod:`.engine` - sizes, prompts, seeds, conditions; :class:`GenfocusEngine`;
* :mod:`.weights` - where the weights come from (hub or local), checked in seconds.

Importing this package needs neither torch's GPU nor ``diffusers``; using the engine does.
"""

from refocus.pipeline.genfocus.engine import (
    GenfocusEngine,
    GenfocusOptions,
    defocus_condition,
    get_engine,
    model_size,
    refocus_strength,
)
from refocus.pipeline.genfocus.weights import available, packages_missing

__all__ = [
    "GenfocusEngine",
    "GenfocusOptions",
    "available",
    "defocus_condition",
    "get_engine",
    "model_size",
    "packages_missing",
    "refocus_strength",
]

"""Local neural-data packs: recordings of your own, scored on a model by Brain-Score's own
benchmark classes.

- ``format``: the layout of a pack and its rules, ``PackError``;
- ``read``: ``read_pack`` (loading and validation into a ``NeuralPack``), ``pack_digest``;
- ``write``: ``write_pack``;
- ``demo``: ``make_demo_pack``, a pack with a planted signal;
- ``benchmarks``: ``load_pack`` (``read_pack`` plus the pack's Brain-Score benchmarks).
"""
from .benchmarks import crossvalidation_kwargs, load_pack
from .demo import make_demo_pack
from .format import PackError
from .read import NeuralPack, pack_digest, read_pack
from .write import write_pack

__all__ = ["NeuralPack", "PackError", "crossvalidation_kwargs", "load_pack", "make_demo_pack", "pack_digest",
           "read_pack", "write_pack"]

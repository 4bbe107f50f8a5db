"""What an exported plugin is and does at load time: ``plugin.json`` -> Brain-Score models.

An exported plugin folder holds no variant-specific code. Its ``plugin.json`` (written by
``export.py``) names the weights' source and sha256 and everything the commitment needs
besides the network (region -> layer map, preprocessing, ms per timestep). The network is
rebuilt from the weights file's own header config (``tdsnn.load_model``), so loading a
plugin never consults a tdsnn registry.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import tdsnn
from tdsnn.data import Preprocessing
from tdsnn.names import check_model_name
from tdsnn.regions import REGIONS

from .commitment import TEMPORAL_SUFFIX, CommitmentSpec, TDSNNCommitment, model_identifier, wrap
from .weights import WeightsSource, from_json

PLUGIN_FILE = "plugin.json"
#: Version of the ``plugin.json`` layout.
FORMAT = 1

BIBTEX = """@inproceedings{zhou2026tdsnn,
  title={Topographic Deep Spiking Neural Networks for the Primate Ventral Visual Stream},
  author={Zhou and Fang and Wang and Xu},
  booktitle={AAAI},
  year={2026},
  note={arXiv:2508.04270}
}"""

_SHA256 = re.compile(r"[0-9a-f]{64}")


class PluginError(ValueError):
    """A plugin folder whose ``plugin.json`` is missing or malformed."""


@dataclass(frozen=True)
class ExportedPlugin:
    """An exported variant: ``name`` with weights ``sha256`` from ``weights``; ``base_id``
    is its rate-coded identifier, ``base_id + '-temporal'`` its per-timestep twin."""
    name: str
    base_id: str
    weights: WeightsSource
    sha256: str
    spec: CommitmentSpec

    @property
    def identifiers(self) -> list[str]:
        return [self.base_id, self.base_id + TEMPORAL_SUFFIX]

    def to_json(self) -> dict:
        pre = self.spec.preprocessing
        return {"tdsnn_plugin": FORMAT, "name": self.name, "identifier": self.base_id,
                "weights": self.weights.to_json(), "sha256": self.sha256,
                "region_layer_map": dict(self.spec.region_layer_map),
                "preprocessing": {"size": pre.size, "mean": list(pre.mean), "std": list(pre.std)},
                "temporal": dict(self.spec.temporal)}

    @classmethod
    def from_json(cls, raw: dict) -> "ExportedPlugin":
        if not isinstance(raw, dict) or raw.get("tdsnn_plugin") != FORMAT:
            raise PluginError(f"not a tdsnn plugin description (format {FORMAT})")
        try:
            name = check_model_name(raw["name"])
            base_id = raw["identifier"]
            if not isinstance(base_id, str) or not re.fullmatch(rf"{re.escape(name)}(-T\d+)?-[0-9a-f]{{8}}", base_id):
                raise PluginError(f"identifier {base_id!r} is not {name}[-T<T>]-<sha8>")
            sha256 = raw["sha256"]
            if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256) or not base_id.endswith(sha256[:8]):
                raise PluginError(f"sha256 {sha256!r} is not the 64-hex digest the identifier ends with")
            regions = raw["region_layer_map"]
            if not isinstance(regions, dict) or set(regions) != set(REGIONS) or \
                    not all(isinstance(v, str) for v in regions.values()):
                raise PluginError(f"region_layer_map must map each of {', '.join(REGIONS)} to a layer name")
            pre = raw["preprocessing"]
            preprocessing = Preprocessing(int(pre["size"]), tuple(map(float, pre["mean"])),
                                          tuple(map(float, pre["std"])))
            temporal = {"t0_ms": float(raw["temporal"]["t0_ms"]), "step_ms": float(raw["temporal"]["step_ms"])}
            return cls(name, base_id, from_json(raw["weights"]), sha256,
                       CommitmentSpec(dict(regions), preprocessing, temporal))
        except (KeyError, TypeError, ValueError) as err:
            if isinstance(err, PluginError):
                raise
            raise PluginError(f"malformed {PLUGIN_FILE}: {type(err).__name__}: {err}") from err

    @classmethod
    def read(cls, folder: str | Path) -> "ExportedPlugin":
        path = Path(folder) / PLUGIN_FILE
        try:
            raw = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise PluginError(f"cannot read {path}: {err}") from err
        try:
            return cls.from_json(raw)
        except PluginError as err:
            raise PluginError(f"{path}: {err}") from err

    def commitment(self, folder: str | Path, identifier: str) -> TDSNNCommitment:
        """The Brain-Score model ``identifier`` (one of ``identifiers``), with the weights fetched
        from their source, sha256-checked, and the network built from their header."""
        if identifier not in self.identifiers:
            raise KeyError(f"{identifier!r} is not one of this plugin's models: {', '.join(self.identifiers)}")
        path = self.weights.fetch(Path(folder), self.sha256)
        model = tdsnn.load_model(path, expected_sha256=self.sha256)
        built = model_identifier(self.name, model, self.sha256)
        if built != self.base_id:
            raise PluginError(f"{path} builds {built}, not {self.base_id}")
        activations = wrap(model, self.base_id, self.spec.preprocessing)
        return TDSNNCommitment(activations, self.spec, temporal=identifier.endswith(TEMPORAL_SUFFIX))

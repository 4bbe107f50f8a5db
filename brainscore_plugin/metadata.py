"""An exported plugin's ``metadata.yml`` in Brain-Score's schema 2.0.

Every value is either computed from the exported network and its checkpoint (parameter
count, layers, input resolution, preprocessing, weights source) or read from the variant's
registry entry (training data); a field nothing here knows is listed as an assertion with
status ``undocumented`` instead of a value. ``brainscore_core.metadata.contract.load(text,
"vision")`` is the check (``validate``).
"""
from __future__ import annotations

from typing import Optional

import yaml
from brainscore_core.metadata import contract
from torch import nn

from tdsnn.models import SCornet, Spikformer
from tdsnn.models.spikformer import embed_dim
from tdsnn.registry import ModelEntry

from .commitment import TEMPORAL_SUFFIX, VISUAL_DEGREES
from .exported import ExportedPlugin
from .weights import HubWeights, UrlWeights

PAPER_URL = "https://arxiv.org/abs/2508.04270"
PAPER_CITATION = ("Zhou, Fang, Wang and Xu. Topographic Deep Spiking Neural Networks for the Primate "
                  "Ventral Visual Stream. AAAI 2026 (arXiv:2508.04270)")

#: Data tag -> (schema 2.0 dataset identifier, name).
DATASETS = {
    "fmnist": ("other", "Fashion-MNIST"),
    "cifar100": ("other", "CIFAR-100"),
    "imagenet": ("imagenet-1k", "ImageNet-1k (ILSVRC-2012)"),
    "imagenet-val": ("imagenet-1k", "ImageNet-1k (ILSVRC-2012) validation images"),
    "synthetic": ("other", "tdsnn synthetic images"),
    "folder": ("other", "a local image folder"),
}

#: Every field this file may leave undocumented, in schema order.
_UNKNOWN_UNLESS_SET = ("/model/supervision", "/training/objective", "/training/loss", "/data/training_datasets",
                       "/lineage/base_models", "/provenance/source_url")
_ALWAYS_UNDOCUMENTED = ("/training/process", "/training/learning_rate", "/training/batch_size",
                        "/training/preprocessing", "/data/summary", "/eval/test_datasets", "/eval/validation_datasets",
                        "/provenance/weights_provider", "/legal/license", "/people/creators",
                        "/people/organizations", "/use/applications", "/use/limitations")


class MetadataError(ValueError):
    """Metadata that Brain-Score's contract rejects."""


def validate(text: str) -> dict:
    """The document in ``text`` after Brain-Score's own contract check (``MetadataError`` if rejected)."""
    try:
        return contract.load(text, "vision")
    except contract.MetadataError as err:
        raise MetadataError(f"metadata rejected by brainscore_core.metadata.contract: {err}") from err


def _weight_layers(model: nn.Module) -> int:
    return sum(isinstance(m, (nn.Conv2d, nn.Linear)) and any(p.requires_grad for p in m.parameters(recurse=False))
               for m in model.modules())


def _backbone(model: nn.Module) -> tuple[str, str, str]:
    """Brain-Score architecture family, backbone name and connection pattern of ``model``."""
    spiking = "spiking_" if model.is_spiking else ""
    if isinstance(model, Spikformer):
        name = f"Spikformer-{len(model.blocks)}-{embed_dim(model.config.width)} with spiking self-attention"
        return f"{spiking}transformer", name, "feed-forward connections"
    if isinstance(model, SCornet):
        return (f"{spiking}recurrent_convolutional_neural_network", "CORnet-RT areas V1, V2, V4, IT",
                "each area feeds itself across timesteps and the next area one timestep later")
    return f"{spiking}convolutional_neural_network", "ResNet-18", "feed-forward connections"


def _loss(model: nn.Module) -> str:
    config = model.config
    terms = ["cross-entropy on the class labels"]
    if config.stc is not None:
        terms.append(f"spatio-temporal constraints (STC) on the cortical sheets, alpha = {config.stc.alpha:g}, "
                     f"beta = {config.stc.beta:g}")
    if config.topoloss is not None:
        terms.append(f"TopoLoss, tau = {config.topoloss.tau:g}")
    return " + ".join(terms)


def _entry(plugin: ExportedPlugin, identifier: str, entry: ModelEntry, model: nn.Module, trained_here: bool,
           plugin_url: Optional[str]) -> dict:
    config, pre = model.config, plugin.spec.preprocessing
    temporal = identifier.endswith(TEMPORAL_SUFFIX)
    kind = (f"spiking (LIF), T = {config.timesteps}" if model.is_spiking else "ANN") + \
        (", one time bin per timestep" if temporal else ", rate-coded" if model.is_spiking else "")
    sheets = ", with cortical sheets (topographic)" if config.sheet is not None or config.topoloss is not None else ""
    dataset = DATASETS.get((entry.data or "").partition(":")[0])
    if temporal:
        t0, step = plugin.spec.temporal["t0_ms"], plugin.spec.temporal["step_ms"]
        output = (f"per-timestep spike rates of the committed blocks, timestep t spanning "
                  f"[{t0:g} + {step:g} t, {t0:g} + {step:g} (t + 1)) ms")
    else:
        output = ("spike rates (mean over the T timesteps)" if model.is_spiking else "activations") + \
            " of the committed blocks; class logits at 'logits'"
    family, backbone, connections = _backbone(model)
    doc: dict = {
        "model": {
            "display_name": f"tdsnn {plugin.name} ({kind})",
            "version": f"weights sha256 {plugin.sha256}",
            "architecture": {
                "family": family,
                "description": f"tdsnn {config.arch}: {backbone} (width x{config.width:g}, {config.stem} stem"
                               f"{', blurpool' if config.blurpool else ''}){sheets}; {connections}"
                               + ("; LIF neurons carry membrane state across the timesteps" if model.is_spiking
                                  else "") + ". Brain-Score records the committed block outputs: "
                               + ", ".join(f"{region} = {layer}" for region, layer in
                                           plugin.spec.region_layer_map.items()) + ".",
            },
            "parameter_count": sum(p.numel() for p in model.parameters()),
            "parameter_count_exact": True,
            "trainable_layers": str(_weight_layers(model)),
            "recurrent": bool(model.recurrent_in_time),
            "input_resolution": {"channels": config.in_channels, "height": pre.size, "width": pre.size},
            "visual_degrees": float(VISUAL_DEGREES),
            "visual_degrees_description": f"{VISUAL_DEGREES} degrees, the tdsnn plugin's commitment for every "
                                          "model (not derived from the training data).",
        },
        "io": {
            "modality": "image",
            "interface": "tdsnn brainscore_plugin TDSNNCommitment: a ModelCommitment over a PytorchWrapper that "
                         "averages each layer over the timesteps",
            "input_format": f"RGB images resized to {pre.size} x {pre.size} px, normalised with mean "
                            f"{list(pre.mean)} and std {list(pre.std)}",
            "output_format": output,
        },
        "provenance": {"checkpoint": f"{plugin.weights} (sha256 {plugin.sha256})"},
    }
    known = []
    if dataset is not None:
        data_id, data_name = dataset
        doc["model"]["supervision"] = {"type": "supervised",
                                       "description": f"{config.num_classes}-class classification of {data_name}"}
        doc["data"] = {"training_datasets": [{"identifier": data_id, "name": data_name, "role": "training"}]}
        known += ["/model/supervision", "/data/training_datasets"]
        if trained_here:
            doc["training"] = {"objective": f"{config.num_classes}-class image classification", "loss": _loss(model)}
            known += ["/training/objective", "/training/loss"]
    if not trained_here and entry.weights is not None:
        doc["lineage"] = {"base_models": [{"name": entry.weights.source, "relationship": "derived_from"}]}
        known.append("/lineage/base_models")
    if isinstance(plugin.weights, HubWeights):
        doc["provenance"]["source_url"] = f"https://huggingface.co/{plugin.weights.repo}"
        known.append("/provenance/source_url")
    elif isinstance(plugin.weights, UrlWeights):
        doc["provenance"]["source_url"] = plugin.weights.url
        known.append("/provenance/source_url")
    export_source = {"kind": "other", "citation": "computed by `python -m brainscore_plugin export` from the "
                                                   "checkpoint header and the variant's registry entry"}
    if plugin_url is not None:
        export_source["url"] = plugin_url
    doc["sources"] = {"paper": {"kind": "paper", "url": PAPER_URL, "citation": PAPER_CITATION},
                      "tdsnn_export": export_source}
    computed = ["/model/display_name", "/model/version", "/model/parameter_count", "/model/parameter_count_exact",
                "/model/trainable_layers", "/model/recurrent", "/model/input_resolution", "/model/visual_degrees",
                "/model/visual_degrees_description", "/io/modality", "/io/interface", "/io/input_format",
                "/io/output_format", "/provenance/checkpoint"]
    assertions = [{"path": "/model/architecture", "status": "verified", "sources": ["paper", "tdsnn_export"]}]
    assertions += [{"path": p, "status": "verified", "sources": ["tdsnn_export"]} for p in computed + known]
    assertions += [{"path": p, "status": "undocumented"}
                   for p in _UNKNOWN_UNLESS_SET + _ALWAYS_UNDOCUMENTED if p not in known]
    doc["assertions"] = assertions
    return doc


def metadata_text(plugin: ExportedPlugin, entry: ModelEntry, model: nn.Module, trained_here: bool,
                  plugin_url: Optional[str]) -> str:
    """``metadata.yml`` of ``plugin`` (checked by the contract before it is returned).

    trained_here: the weights are a tdsnn checkpoint (``tdsnn-train``), so the training
    objective follows from the model config; otherwise the weights were converted from
    ``entry.weights.source`` (their lineage). plugin_url: HTTPS URL of the plugin code.
    """
    document = {"schema_version": "2.0", "domain": "vision",
                "models": {i: _entry(plugin, i, entry, model, trained_here, plugin_url) for i in plugin.identifiers}}
    text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    validate(text)
    return text

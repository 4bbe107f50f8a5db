"""Topography (METHOD.md §5): V1 preference maps and their smoothness on the sine
gratings, correlation against cortical distance, IT category selectivity and the
effective dimensionality of each region's responses to the category images.

Models without cortical sheets are measured on the retinotopic sheet a TSResNet18 of
the same block sizes starts from (``tdsnn.sheets.model_sheet``).
"""
from __future__ import annotations

import numpy as np
import torch

from tdsnn.analysis import (block_rates, circular_variance, correlation_vs_distance, effective_dimensionality,
                            map_smoothness, tuning_curves)
from tdsnn.analysis.selectivity import (FLOC_EXCLUDED, category_smoothness, floc_domains, overlap_correlations,
                                        responsive_units, selective_fraction, selectivity_maps)
from tdsnn.sheets import model_sheet
from tdsnn.stimuli import category_images, sine_gratings

from . import Options, Subject
from .common import DataUnavailable, class_names, per_class, stack, test_split

#: V1 map name -> grating metadata column.
V1_FACTORS = {"orientation": "orientation", "sf": "sf_cpd", "color": "color"}
#: Classes of a test split used as categories (ImageNet's 1000 would not fit in memory).
MAX_CATEGORIES = 10


def settings(subject: Subject, options: Options) -> dict:
    categories = str(options.categories) if options.categories else None
    return {"data": options.data or subject.entry.data, "categories": categories,
            "category_images": options.category_images}


def category_set(subject: Subject, options: Options) -> tuple[torch.Tensor, np.ndarray, list[str], str]:
    """Images ``[N, 3, S, S]`` in [0, 1], labels ``[N]``, category names and a description:
    the ``--categories`` folders, else ``category_images`` test images of each of the
    first ``MAX_CATEGORIES`` classes."""
    size = subject.model.config.input_size
    if options.categories is not None:
        images, labels, names = category_images(options.categories, size)
        return images, np.asarray(labels), names, f"category folders {options.categories}"
    spec, dataset = test_split(subject, options, normalize=False)
    images, labels = stack(dataset, per_class(dataset, options.category_images, MAX_CATEGORIES))
    names = class_names(dataset, int(labels.max()) + 1)[:int(labels.max()) + 1]
    return (images, labels.numpy(), names,
            f"{spec} test split, first {options.category_images} images of each of its first {len(names)} classes")


def _v1_maps(subject: Subject, options: Options, result: dict) -> None:
    model, block = subject.model, subject.entry.region_layer_map["V1"]
    images, meta = sine_gratings(model.config.input_size)
    rates = block_rates(model, images, subject.preprocessing, [block], batch_size=options.batch_size,
                        device=subject.device, progress=options.progress)[block].numpy()
    positions = model_sheet(model, block).positions.cpu().numpy()
    metrics, arrays = result["metrics"], result["arrays"]
    arrays["v1_positions"] = positions
    for name, factor in V1_FACTORS.items():
        m = map_smoothness(rates, meta, positions, factor)
        metrics[f"v1_{name}_smoothness"] = m["smoothness"]
        metrics[f"v1_{name}_smoothness_chance"] = m["chance"]
        arrays[f"v1_{name}_preference"] = m["preferences"]
        arrays[f"v1_{name}_mask"] = m["mask"]
        arrays[f"v1_{name}_bins"] = m["bin_centers"]
        arrays[f"v1_{name}_curve"] = np.nanmean(m["curves"], 0)
        arrays[f"v1_{name}_chance_curve"] = np.nanmean(m["chance_curves"], 0)
    angles, curves = tuning_curves(rates, meta, "orientation")
    cv = circular_variance(curves, angles)
    metrics["v1_circular_variance_median"] = float(np.nanmedian(cv)) if np.isfinite(cv).any() else float("nan")
    centers, corr = correlation_vs_distance(rates, positions)
    arrays["v1_correlation_bins"], arrays["v1_correlation_curve"] = centers, np.nanmean(corr, 0)
    result["details"].update(v1_block=block, v1_units=int(rates.shape[1]), gratings=len(images))


def _categories(subject: Subject, options: Options, result: dict) -> None:
    model, regions = subject.model, subject.entry.region_layer_map
    images, labels, names, source = category_set(subject, options)
    blocks = list(dict.fromkeys(regions.values()))
    responses = block_rates(model, images, subject.preprocessing, blocks, batch_size=options.batch_size,
                            device=subject.device, progress=options.progress)
    metrics, arrays = result["metrics"], result["arrays"]
    for region, block in regions.items():
        metrics[f"effective_dimensionality_{region}"] = effective_dimensionality(responses[block])
    it = regions["IT"]
    positions = model_sheet(model, it).positions.cpu().numpy()
    domains = floc_domains(names)  # fLoc folders: TDANN's five domain maps; else one map per category
    excluded = [c for c in FLOC_EXCLUDED if c in names] if domains else []
    maps = selectivity_maps(responses[it].numpy(), labels, names, domains=domains, exclude=excluded)
    responsive = responsive_units(responses[it])  # silent units (t = 0 everywhere) would fake smoothness
    order, overlap = overlap_correlations(maps, mask=responsive)
    per_category = {name: category_smoothness(t, positions, mask=responsive) for name, t in maps.items()}
    metrics["it_category_smoothness"] = float(np.nanmean([m["smoothness"] for m in per_category.values()]))
    metrics["it_category_smoothness_chance"] = float(np.nanmean([m["chance"] for m in per_category.values()]))
    arrays["it_positions"] = positions
    arrays["it_t_maps"] = np.stack([maps[n] for n in order])
    arrays["it_overlap"] = overlap
    result["details"].update(categories=list(order), category_source=source, category_stimuli=len(images),
                             it_block=it, it_category_smoothness={n: m["smoothness"] for n, m in per_category.items()},
                             it_selective_fraction={n: selective_fraction(t, mask=responsive) for n, t in maps.items()},
                             it_maps="fLoc domains" if domains else "categories",
                             it_responsive_units=int(responsive.sum()))


def run(subject: Subject, options: Options) -> dict:
    result = {"metrics": {}, "unavailable": {}, "details": {}, "arrays": {}}
    _v1_maps(subject, options, result)
    try:
        _categories(subject, options, result)
    except DataUnavailable as err:
        for key in ("it_category_smoothness", "effective_dimensionality"):
            result["unavailable"][key] = f"no category images: {err}; pass --categories DIR"
    return result

"""Topography (docs/method.md §5): V1 preference maps and their smoothness on the sine
gratings, correlation against cortical distance, IT category selectivity and the
effective dimensionality of each region's responses to the category images.

Models without cortical sheets are measured on the retinotopic sheet a TSResNet18 of
the same block sizes starts from (``tdsnn.sheets.model_sheet``).

Every smoothness, chance level and distance curve carries its standard error in
``SuiteResult.sem`` (curves: ``*_sem`` arrays), as ``SPREAD`` describes.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch

from tdsnn.analysis import (N_BOOT, block_rates, bootstrap_se, circular_variance, correlation_summary,
                            effective_dimensionality, map_smoothness, tuning_curves)
from tdsnn.analysis.selectivity import (FLOC_EXCLUDED, IT_SAMPLES, category_bootstrap, category_smoothness,
                                        floc_domains, mean_category_smoothness, overlap_correlations,
                                        responsive_units, selective_fraction, selectivity_maps)
from tdsnn.sheets import model_sheet
from tdsnn.stimuli import category_images, sine_gratings

from . import Options, Subject, SuiteResult
from .common import DataUnavailable, class_names, data_settings, folder_version, per_class, stack, test_split
from .keys import (CATEGORY_METRICS, EFFECTIVE_DIMENSIONALITY, IT_CATEGORY_SMOOTHNESS, IT_CATEGORY_SMOOTHNESS_CHANCE,
                   IT_OVERLAP, IT_POSITIONS, IT_T_MAPS, V1_BINS, V1_CHANCE_CURVE, V1_CHANCE_CURVE_SEM,
                   V1_CIRCULAR_VARIANCE, V1_CORRELATION_BINS, V1_CORRELATION_CURVE, V1_CORRELATION_CURVE_SEM, V1_CURVE,
                   V1_CURVE_SEM, V1_MAPS, V1_MASK, V1_POSITIONS, V1_PREFERENCE, V1_SMOOTHNESS, V1_SMOOTHNESS_CHANCE)

#: V1 map name -> grating metadata column.
GRATING_COLUMN = dict(zip(V1_MAPS, ("orientation", "sf_cpd", "color")))
#: Classes of a test split used as categories (ImageNet's 1000 would not fit in memory).
MAX_CATEGORIES = 10
#: What "±" means for this suite's numbers (listed under the tables).
SPREAD = (f"topography: ± is one standard error. Smoothness and the distance curves: bootstrap over units "
          f"({N_BOOT} samples of the analysed units drawn with replacement, each with its own seed; for IT the "
          f"category images are redrawn within each category too); where more units are analysed than one sample "
          f"holds, this is the spread of one sample, an upper bound. Chance: SEM over the 20 (IT: {IT_SAMPLES}) "
          f"shuffled-distance samples. Within one trained network: training seeds are not resampled.")


def _spread(value: float) -> Optional[float]:
    """A standard error for ``SuiteResult.set``: None where it could not be measured (NaN)."""
    return value if math.isfinite(value) else None


def settings(subject: Subject, options: Options) -> dict:
    folder = options.categories
    return {**data_settings(subject, options), "categories": str(folder) if folder else None,
            "categories_version": folder_version(folder) if folder else None,
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


def _v1_maps(subject: Subject, options: Options, result: SuiteResult) -> None:
    model, block = subject.model, subject.entry.region_layer_map["V1"]
    images, meta = sine_gratings(model.config.input_size)
    rates = block_rates(model, images, subject.preprocessing, [block], batch_size=options.batch_size,
                        device=subject.device, progress=options.progress)[block].numpy()
    positions = model_sheet(model, block).positions.cpu().numpy()
    result.set_array(V1_POSITIONS, positions)
    for name, column in GRATING_COLUMN.items():
        m = map_smoothness(rates, meta, positions, column)
        result.set(V1_SMOOTHNESS[name], m["smoothness"], _spread(m["smoothness_sem"]))
        result.set(V1_SMOOTHNESS_CHANCE[name], m["chance"], _spread(m["chance_sem"]))
        result.set_array(V1_PREFERENCE[name], m["preferences"])
        result.set_array(V1_MASK[name], m["mask"])
        result.set_array(V1_BINS[name], m["bin_centers"])
        result.set_array(V1_CURVE[name], np.nanmean(m["curves"], 0))
        result.set_array(V1_CURVE_SEM[name], m["curve_sem"])
        result.set_array(V1_CHANCE_CURVE[name], np.nanmean(m["chance_curves"], 0))
        result.set_array(V1_CHANCE_CURVE_SEM[name], m["chance_curve_sem"])
    angles, curves = tuning_curves(rates, meta, "orientation")
    cv = circular_variance(curves, angles)
    result.set(V1_CIRCULAR_VARIANCE, float(np.nanmedian(cv)) if np.isfinite(cv).any() else float("nan"))
    corr = correlation_summary(rates, positions)
    result.set_array(V1_CORRELATION_BINS, corr["bin_centers"])
    result.set_array(V1_CORRELATION_CURVE, corr["curve"])
    result.set_array(V1_CORRELATION_CURVE_SEM, corr["curve_sem"])
    result.details.update(v1_block=block, v1_units=int(rates.shape[1]), gratings=len(images), spread=SPREAD,
                          v1_units_analysed={name: int(result.arrays[V1_MASK[name]].sum()) for name in V1_MAPS})


def _categories(subject: Subject, options: Options, result: SuiteResult) -> None:
    model, regions = subject.model, subject.entry.region_layer_map
    images, labels, names, source = category_set(subject, options)
    blocks = list(dict.fromkeys(regions.values()))
    responses = block_rates(model, images, subject.preprocessing, blocks, batch_size=options.batch_size,
                            device=subject.device, progress=options.progress)
    for region, block in regions.items():
        result.set(EFFECTIVE_DIMENSIONALITY[region], effective_dimensionality(responses[block]))
    it = regions["IT"]
    positions = model_sheet(model, it).positions.cpu().numpy()
    domains = floc_domains(names)  # fLoc folders: TDANN's five domain maps; else one map per category
    excluded = [c for c in FLOC_EXCLUDED if c in names] if domains else []
    it_responses = responses[it].numpy()
    maps = selectivity_maps(it_responses, labels, names, domains=domains, exclude=excluded)
    responsive = responsive_units(it_responses)  # silent units (t = 0 everywhere) would fake smoothness
    order, overlap = overlap_correlations(maps, mask=responsive)
    # the spread comes from one bootstrap over images and units shared by all maps (category_bootstrap)
    per_category = {name: category_smoothness(t, positions, mask=responsive, n_boot=0) for name, t in maps.items()}
    _, replicates = category_bootstrap(it_responses, labels, names, positions, mask=responsive, domains=domains,
                                       exclude=excluded)
    summary = mean_category_smoothness(list(per_category.values()), replicates)
    result.set(IT_CATEGORY_SMOOTHNESS, summary["smoothness"], _spread(summary["smoothness_sem"]))
    result.set(IT_CATEGORY_SMOOTHNESS_CHANCE, summary["chance"], _spread(summary["chance_sem"]))
    result.set_array(IT_POSITIONS, positions)
    result.set_array(IT_T_MAPS, np.stack([maps[n] for n in order]))
    result.set_array(IT_OVERLAP, overlap)
    result.details.update(categories=list(order), category_source=source, category_stimuli=len(images),
                          it_block=it, it_category_smoothness={n: m["smoothness"] for n, m in per_category.items()},
                          it_category_smoothness_sem=dict(zip(per_category, bootstrap_se(replicates))),
                          it_selective_fraction={n: selective_fraction(t, mask=responsive) for n, t in maps.items()},
                          it_maps="fLoc domains" if domains else "categories",
                          it_responsive_units=int(responsive.sum()))


def run(subject: Subject, options: Options) -> SuiteResult:
    result = SuiteResult("topography")
    _v1_maps(subject, options, result)
    try:
        _categories(subject, options, result)
    except DataUnavailable as err:
        result.mark_unavailable(f"no category images: {err}; pass --categories DIR", CATEGORY_METRICS)
    return result

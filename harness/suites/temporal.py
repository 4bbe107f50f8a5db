"""Temporal dynamics of spiking models (docs/method.md §5):

- spike entropy (bits) of each region's layer on the sine gratings at several inference T,
  and the firing rate per timestep at the model's own T;
- Fisher information over time of the weights feeding each region (I_t for t = 1..T at
  the model's own T, on the first ``fisher_images`` test images);
- top-1 accuracy (%) against inference T (``tdsnn.analysis.timesteps``: 1-16 for
  feed-forward networks, 2-20 for recurrent ones) on the first ``timestep_images`` test images.

The last two need the test split of the weights' data; where it cannot be had they are
unavailable and spike entropy is still measured. ANNs have no spikes; their result is empty.
"""
from __future__ import annotations

from torch.utils.data import Subset

from tdsnn.analysis import block_spikes, spike_entropy
from tdsnn.analysis.fisher import connection_weights, fisher_over_time
from tdsnn.analysis.timesteps import accuracy_by_timesteps, inference_timesteps
from tdsnn.data import num_classes
from tdsnn.regions import REGIONS
from tdsnn.stimuli import sine_gratings

from . import Options, Subject, SuiteResult
from .common import DataUnavailable, data_settings, stack, test_split
from .keys import (ACCURACY_AT_TIMESTEPS, FISHER, FISHER_BY_STEP, RATE_PER_TIMESTEP, SPIKE_ENTROPY,
                   SPIKE_ENTROPY_BY_REGION)


def settings(subject: Subject, options: Options) -> dict:
    return {**data_settings(subject, options), "timesteps": list(options.entropy_timesteps),
            "fisher_images": options.fisher_images, "timestep_images": options.timestep_images}


def run(subject: Subject, options: Options) -> SuiteResult:
    model = subject.model
    result = SuiteResult("temporal")
    if not model.is_spiking:
        result.details["note"] = f"{subject.name} is an ANN: no spikes"
        return result
    entropy(subject, options, result)
    timesteps = inference_timesteps(model)
    needs_data = [*FISHER.values(), *(ACCURACY_AT_TIMESTEPS[t] for t in timesteps)]
    try:
        spec, dataset = test_split(subject, options)
    except DataUnavailable as err:
        result.mark_unavailable(str(err), needs_data)
        return result
    classes = num_classes(spec, dataset)
    if classes != model.config.num_classes:
        result.mark_unavailable(f"{spec} has {classes} classes, {subject.name} has {model.config.num_classes} "
                                "outputs", needs_data)
        return result
    fisher(subject, options, dataset, result)
    subset = Subset(dataset, range(min(options.timestep_images, len(dataset))))
    accuracy = accuracy_by_timesteps(model, subset, timesteps, batch_size=options.batch_size, device=subject.device,
                                     progress=options.progress)
    for t, value in accuracy.items():
        result.set(ACCURACY_AT_TIMESTEPS[t], value)
    result.details.update(data=spec, accuracy_timesteps=list(timesteps), timestep_images=len(subset))
    return result


def entropy(subject: Subject, options: Options, result: SuiteResult) -> None:
    """Spike entropy of each region's layer on the gratings at the inference T of
    ``options.entropy_timesteps`` and the model's own, and the rate per timestep at its own."""
    model = subject.model
    regions = subject.entry.region_layer_map
    blocks = list(dict.fromkeys(regions.values()))
    images, _ = sine_gratings(model.config.input_size)
    native = model.timesteps
    by_region = {region: {} for region in regions}
    try:
        for timesteps in sorted({*options.entropy_timesteps, native}):
            model.set_timesteps(timesteps)
            spikes = block_spikes(model, images, subject.preprocessing, blocks, batch_size=options.batch_size,
                                  device=subject.device, progress=options.progress)
            for region, block in regions.items():
                by_region[region][timesteps] = spike_entropy(spikes[block])
                if timesteps == native:
                    result.set_array(RATE_PER_TIMESTEP[region], spikes[block].float().mean(dim=(0, 2)).numpy())
    finally:
        model.set_timesteps(native)
    for region in regions:
        result.set(SPIKE_ENTROPY_BY_REGION[region], by_region[region][native])
    result.set(SPIKE_ENTROPY, sum(by_region[r][native] for r in regions) / len(regions))
    result.details.update(entropy_by_timesteps={r: {str(t): h for t, h in e.items()} for r, e in by_region.items()},
                          native_timesteps=native, blocks=dict(regions), stimuli=f"{len(images)} sine gratings")


def fisher(subject: Subject, options: Options, dataset, result: SuiteResult) -> None:
    """I_t (t = 1..T) of the weights of each region's block on the first ``fisher_images``
    test images: ``I_T`` as the region's metric, the curve in ``details[FISHER_BY_STEP]``."""
    regions = {region: subject.entry.region_layer_map[region] for region in REGIONS}
    weights = connection_weights(subject.model, regions)
    images, labels = stack(dataset, range(min(options.fisher_images, len(dataset))))
    curves = fisher_over_time(subject.model, images, labels, weights, progress=options.progress)  # [T, regions]
    for region, curve in zip(weights, curves.T):
        result.set(FISHER[region], float(curve[-1]))
    result.details[FISHER_BY_STEP] = {region: curve.tolist() for region, curve in zip(weights, curves.T)}
    result.details.update(fisher_images=len(images),
                          fisher_weights={region: sum(p.numel() for p in group) for region, group in weights.items()})

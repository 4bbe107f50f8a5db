"""Temporal dynamics of spiking models on the sine gratings (METHOD.md §5): spike
entropy (bits) of each region's layer at several inference T, and the firing rate per
timestep at the model's own T. ANNs have no spikes; their result is empty."""
from __future__ import annotations

from tdsnn.analysis import block_spikes, spike_entropy
from tdsnn.stimuli import sine_gratings

from . import Options, Subject


def settings(subject: Subject, options: Options) -> dict:
    return {"timesteps": list(options.entropy_timesteps)}


def run(subject: Subject, options: Options) -> dict:
    model = subject.model
    result = {"metrics": {}, "unavailable": {}, "details": {}, "arrays": {}}
    if not model.is_spiking:
        result["details"]["note"] = f"{subject.name} is an ANN: no spikes"
        return result
    regions = subject.entry.region_layer_map
    blocks = list(dict.fromkeys(regions.values()))
    images, _ = sine_gratings(model.config.input_size)
    native = model.timesteps
    entropy = {region: {} for region in regions}
    try:
        for timesteps in sorted({*options.entropy_timesteps, native}):
            model.set_timesteps(timesteps)
            spikes = block_spikes(model, images, subject.preprocessing, blocks, batch_size=options.batch_size,
                                  device=subject.device, progress=options.progress)
            for region, block in regions.items():
                entropy[region][timesteps] = spike_entropy(spikes[block])
                if timesteps == native:
                    result["arrays"][f"rate_per_timestep_{region}"] = spikes[block].float().mean(dim=(0, 2)).numpy()
    finally:
        model.set_timesteps(native)
    for region in regions:
        result["metrics"][f"spike_entropy_{region}"] = entropy[region][native]
    result["metrics"]["spike_entropy"] = sum(entropy[r][native] for r in regions) / len(regions)
    result["details"].update(entropy_by_timesteps={r: {str(t): h for t, h in e.items()} for r, e in entropy.items()},
                             native_timesteps=native, blocks=dict(regions), stimuli=f"{len(images)} sine gratings")
    return result

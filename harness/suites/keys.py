"""Keys of the suites' results: the one spelling of every metric and array key, shared by
the suites, the report and the figures.

``METRICS[suite]`` lists the fixed metric keys of each suite and ``ARRAYS[suite]`` its
per-unit arrays; ``SuiteResult`` refuses any other key (besides the per-run keys a result
declares, such as Brain-Score benchmark ids), so a misspelled key fails where it is
written or read. Key families are dicts (``V1_SMOOTHNESS["orientation"]``), so a
misspelled member is a ``KeyError`` too.
"""
from __future__ import annotations

from tdsnn.analysis.robustness import PERTURBATIONS
from tdsnn.analysis.timesteps import FEEDFORWARD_TIMESTEPS, RECURRENT_TIMESTEPS
from tdsnn.regions import REGIONS

#: Suites in the order they run and appear in tables.
SUITES = ("accuracy", "topography", "robustness", "temporal", "brainscore")

# accuracy: top-1 (%) on the evaluation split
ACCURACY = "accuracy"

# topography: V1 maps on the sine gratings, IT categories, effective dimensionality
#: V1 preference maps, by name.
V1_MAPS = ("orientation", "sf", "color")
V1_SMOOTHNESS = {m: f"v1_{m}_smoothness" for m in V1_MAPS}
V1_SMOOTHNESS_CHANCE = {m: f"v1_{m}_smoothness_chance" for m in V1_MAPS}
V1_CIRCULAR_VARIANCE = "v1_circular_variance_median"
IT_CATEGORY_SMOOTHNESS = "it_category_smoothness"
IT_CATEGORY_SMOOTHNESS_CHANCE = "it_category_smoothness_chance"
EFFECTIVE_DIMENSIONALITY = {r: f"effective_dimensionality_{r}" for r in REGIONS}
#: Topography metrics measured on the category images (unavailable together without them).
CATEGORY_METRICS = (IT_CATEGORY_SMOOTHNESS, IT_CATEGORY_SMOOTHNESS_CHANCE, *EFFECTIVE_DIMENSIONALITY.values())

V1_POSITIONS = "v1_positions"  # [U, 2] mm
V1_PREFERENCE = {m: f"v1_{m}_preference" for m in V1_MAPS}  # [U]
V1_MASK = {m: f"v1_{m}_mask" for m in V1_MAPS}  # [U] bool: the most tuned units
V1_BINS = {m: f"v1_{m}_bins" for m in V1_MAPS}  # [bins] mm
V1_CURVE = {m: f"v1_{m}_curve" for m in V1_MAPS}  # [bins]
V1_CURVE_SEM = {m: f"v1_{m}_curve_sem" for m in V1_MAPS}  # [bins] bootstrap SE over units
V1_CHANCE_CURVE = {m: f"v1_{m}_chance_curve" for m in V1_MAPS}  # [bins]
V1_CHANCE_CURVE_SEM = {m: f"v1_{m}_chance_curve_sem" for m in V1_MAPS}  # [bins] SEM over shuffled samples
V1_CORRELATION_BINS = "v1_correlation_bins"  # [bins] mm
V1_CORRELATION_CURVE = "v1_correlation_curve"  # [bins] Pearson r
V1_CORRELATION_CURVE_SEM = "v1_correlation_curve_sem"  # [bins] bootstrap SE over units
IT_POSITIONS = "it_positions"  # [U, 2] mm
IT_T_MAPS = "it_t_maps"  # [maps, U]
IT_OVERLAP = "it_overlap"  # [maps, maps]

# robustness: top-1 (%) clean and under each perturbation, keyed by the perturbation's name
ROBUST_ACCURACY = {p: p for p in PERTURBATIONS}

# temporal: spike entropy (bits) at the model's own T
SPIKE_ENTROPY = "spike_entropy"  # mean over the region layers
SPIKE_ENTROPY_BY_REGION = {r: f"spike_entropy_{r}" for r in REGIONS}
RATE_PER_TIMESTEP = {r: f"rate_per_timestep_{r}" for r in REGIONS}  # [T] spikes per neuron per step
# temporal: Fisher information I_T of the weights feeding each region at the model's own T
# (the curve over t = 1..T is the details entry FISHER_BY_STEP), and top-1 (%) at inference T
FISHER = {r: f"fisher_{r}" for r in REGIONS}
FISHER_BY_STEP = "fisher_by_step"  # details: {region: [T] I_t}
ACCURACY_AT_TIMESTEPS = {t: f"accuracy_T{t}" for t in sorted({*FEEDFORWARD_TIMESTEPS, *RECURRENT_TIMESTEPS})}

# brainscore: mean ceiled score of each region's benchmarks (benchmark ids are per-run keys)
BRAINSCORE = {r: f"brainscore_{r}" for r in REGIONS}

METRICS: dict[str, tuple[str, ...]] = {
    "accuracy": (ACCURACY,),
    "topography": (*V1_SMOOTHNESS.values(), *V1_SMOOTHNESS_CHANCE.values(), V1_CIRCULAR_VARIANCE, *CATEGORY_METRICS),
    "robustness": tuple(ROBUST_ACCURACY.values()),
    "temporal": (SPIKE_ENTROPY, *SPIKE_ENTROPY_BY_REGION.values(), *FISHER.values(),
                 *ACCURACY_AT_TIMESTEPS.values()),
    "brainscore": tuple(BRAINSCORE.values()),
}
ARRAYS: dict[str, tuple[str, ...]] = {
    "accuracy": (), "robustness": (), "brainscore": (),
    "topography": (V1_POSITIONS, *V1_PREFERENCE.values(), *V1_MASK.values(), *V1_BINS.values(), *V1_CURVE.values(),
                   *V1_CURVE_SEM.values(), *V1_CHANCE_CURVE.values(), *V1_CHANCE_CURVE_SEM.values(),
                   V1_CORRELATION_BINS, V1_CORRELATION_CURVE, V1_CORRELATION_CURVE_SEM, IT_POSITIONS, IT_T_MAPS,
                   IT_OVERLAP),
    "temporal": tuple(RATE_PER_TIMESTEP.values()),
}

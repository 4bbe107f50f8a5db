"""Analyses of block responses (METHOD.md §5): responses to stimuli, tuning maps and
their smoothness on the cortical sheet, correlation vs distance, IT category
selectivity, robustness to perturbations, spike entropy and effective dimensionality."""
from .maps import (V1_MAX_DIST_MM, circular_variance, correlation_vs_distance, map_smoothness,
                   orientation_smoothness, preference_difference, preferred, preferred_color,
                   preferred_orientation, preferred_sf, smoothness, smoothness_curve, tuning_curves)
from .responses import block_rates, block_spikes
from .robustness import RobustnessConfig, fgsm, gaussian_noise, pgd, robust_accuracy, timestep_mask
from .selectivity import (FLOC_DOMAINS, FLOC_EXCLUDED, IT_BINS, IT_MAX_DIST_MM, IT_SAMPLE_SIZE, IT_SAMPLES,
                          SELECTIVE_T, category_smoothness, floc_domains, overlap_correlations, responsive_units,
                          selective_fraction, selectivity_maps, t_values)
from .temporal import effective_dimensionality, spike_entropy

__all__ = [
    "FLOC_DOMAINS", "FLOC_EXCLUDED", "IT_BINS", "IT_MAX_DIST_MM", "IT_SAMPLES", "IT_SAMPLE_SIZE", "RobustnessConfig",
    "SELECTIVE_T", "floc_domains", "responsive_units", "V1_MAX_DIST_MM", "block_rates", "block_spikes", "category_smoothness",
    "circular_variance", "correlation_vs_distance", "effective_dimensionality", "fgsm", "gaussian_noise",
    "map_smoothness", "orientation_smoothness", "overlap_correlations", "pgd", "preference_difference", "preferred",
    "preferred_color", "preferred_orientation", "preferred_sf", "robust_accuracy", "selective_fraction",
    "selectivity_maps", "smoothness", "smoothness_curve", "spike_entropy", "t_values", "timestep_mask",
    "tuning_curves",
]

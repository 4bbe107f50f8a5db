"""Analyses of block responses (docs/method.md §5): responses to stimuli, tuning maps and
their smoothness on the cortical sheet, correlation vs distance, IT category
selectivity, robustness to perturbations, spike entropy and effective dimensionality."""
from .dimensionality import effective_dimensionality
from .maps import (N_BOOT, V1_MAX_DIST_MM, bootstrap_se, circular_variance, correlation_summary,
                   correlation_vs_distance, map_smoothness, most_tuned, orientation_smoothness,
                   preference_difference, preferred, preferred_color, preferred_orientation, preferred_sf, sem,
                   smoothness, smoothness_curve, smoothness_summary, smoothness_values, tuning_curves)
from .responses import block_rates, block_spikes
from .robustness import (PERTURBATION_LABELS, PERTURBATIONS, RobustnessConfig, fgsm, gaussian_noise, pgd,
                         robust_accuracy, timestep_mask)
from .selectivity import (FLOC_DOMAINS, FLOC_EXCLUDED, IT_BINS, IT_MAX_DIST_MM, IT_SAMPLE_SIZE, IT_SAMPLES,
                          SELECTIVE_T, category_bootstrap, category_smoothness, floc_domains,
                          mean_category_smoothness, overlap_correlations, responsive_units, selective_fraction,
                          selectivity_maps, t_values)
from .temporal import spike_entropy

__all__ = [
    "FLOC_DOMAINS", "FLOC_EXCLUDED", "IT_BINS", "IT_MAX_DIST_MM", "IT_SAMPLES", "IT_SAMPLE_SIZE", "N_BOOT",
    "PERTURBATIONS", "PERTURBATION_LABELS", "RobustnessConfig", "SELECTIVE_T", "V1_MAX_DIST_MM", "block_rates",
    "block_spikes", "bootstrap_se", "category_bootstrap", "category_smoothness", "circular_variance",
    "correlation_summary", "correlation_vs_distance", "effective_dimensionality", "fgsm", "floc_domains",
    "gaussian_noise", "map_smoothness", "mean_category_smoothness", "most_tuned", "orientation_smoothness",
    "overlap_correlations", "pgd", "preference_difference", "preferred", "preferred_color",
    "preferred_orientation", "preferred_sf", "responsive_units", "robust_accuracy", "selective_fraction",
    "selectivity_maps", "sem", "smoothness", "smoothness_curve", "smoothness_summary", "smoothness_values",
    "spike_entropy", "t_values", "timestep_mask", "tuning_curves",
]

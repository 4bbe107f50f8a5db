"""Analyses of block responses (METHOD.md §5): responses to stimuli, tuning maps and
their smoothness on the cortical sheet, correlation vs distance, spike entropy and
effective dimensionality."""
from .maps import (V1_MAX_DIST_MM, circular_variance, correlation_vs_distance, map_smoothness,
                   orientation_smoothness, preference_difference, preferred, preferred_color,
                   preferred_orientation, preferred_sf, smoothness, smoothness_curve, tuning_curves)
from .responses import block_rates, block_spikes
from .temporal import effective_dimensionality, spike_entropy

__all__ = [
    "V1_MAX_DIST_MM", "block_rates", "block_spikes", "circular_variance", "correlation_vs_distance",
    "effective_dimensionality", "map_smoothness", "orientation_smoothness", "preference_difference",
    "preferred", "preferred_color", "preferred_orientation", "preferred_sf", "smoothness",
    "smoothness_curve", "spike_entropy", "tuning_curves",
]

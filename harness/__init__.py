"""tdsnn comparison harness: Brain-Score, accuracy, topography, robustness and temporal suites."""

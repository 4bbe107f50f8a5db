"""Brain-Score benchmarks of a neural-data pack: Brain-Score's own benchmark classes
(``NeuralBenchmark`` with PLS and the internal-consistency ceiling, as
MajajHong2015public.IT-pls; ``RSABenchmark`` with the RDM metric and the RSA ceiling)."""
from __future__ import annotations

import brainscore_plugin  # noqa: F401  (configures Brain-Score before it is imported)
from brainscore_vision import load_ceiling, load_metric
from brainscore_vision.benchmark_helpers.neural_common import NeuralBenchmark, RSABenchmark

from .format import PackError
from .read import NeuralPack, read_pack


def crossvalidation_kwargs(pack: NeuralPack) -> dict:
    """PLS cross-validation options: Brain-Score's defaults (10 stratified 90/10 splits),
    with the test share raised on small sets so that every stratum has a test stimulus
    (sklearn's StratifiedShuffleSplit needs n_test >= n_strata)."""
    cv = {"stratification_coord": pack.stratification}
    n = len(pack.stimulus_set)
    strata = pack.stimulus_set[pack.stratification].nunique() if pack.stratification else 1
    if round(0.1 * n) < strata:
        if strata >= n:
            raise PackError(f"{pack.folder}: {n} stimuli cannot be split over {strata} strata of "
                            f"{pack.stratification!r}")
        cv["train_size"] = 1 - strata / n
    return cv


def load_pack(folder) -> NeuralPack:
    """``read_pack`` plus the benchmarks of the pack's metrics: ``"pls"`` is a
    ``NeuralBenchmark`` (PLS regression, ceiling ``internal_consistency`` over repetitions,
    ceiled = r² / ceiling), ``"rdm"`` an ``RSABenchmark`` (ceiled = r / RSA ceiling)."""
    pack = read_pack(folder)
    for metric in pack.metrics:
        identifier = pack.identifier(metric)
        if metric == "pls":
            ceiler, repetitions = load_ceiling("internal_consistency"), pack.repetitions
            pack.benchmarks[metric] = NeuralBenchmark(
                identifier=identifier, version=1, assembly=pack.averaged, visual_degrees=pack.visual_degrees,
                number_of_trials=1, similarity_metric=load_metric("pls", crossvalidation_kwargs=crossvalidation_kwargs(pack)),
                ceiling_func=lambda: ceiler(repetitions), parent=pack.region, bibtex=None)
        else:
            pack.benchmarks[metric] = RSABenchmark(
                identifier=identifier, version=1, assembly=pack.averaged, region=pack.region,
                visual_degrees=pack.visual_degrees, number_of_trials=1, bibtex=None)
    return pack

"""Robustness (docs/method.md §5): top-1 (%) of the first ``robustness_images`` test images,
clean and under Gaussian noise, FGSM, PGD and per-timestep pixel masking. Attacks run in
pixel space and backpropagate through the surrogate gradient over all T; the strengths
are recorded in ``details.config``."""
from __future__ import annotations

import dataclasses

from tdsnn.analysis.robustness import robust_accuracy

from . import Options, Subject, SuiteResult
from .common import DataUnavailable, data_settings, stack, test_split
from .keys import ROBUST_ACCURACY


def settings(subject: Subject, options: Options) -> dict:
    return {**data_settings(subject, options), "images": options.robustness_images,
            "config": dataclasses.asdict(options.robustness)}


def run(subject: Subject, options: Options) -> SuiteResult:
    result = SuiteResult("robustness")
    try:
        spec, dataset = test_split(subject, options, normalize=False)
    except DataUnavailable as err:
        result.mark_unavailable(str(err))
        return result
    images, labels = stack(dataset, range(min(options.robustness_images, len(dataset))))
    pre = subject.preprocessing
    measured = robust_accuracy(subject.model, images, labels, pre.mean, pre.std, options.robustness,
                               batch_size=options.batch_size, device=subject.device, progress=options.progress)
    for perturbation, key in ROBUST_ACCURACY.items():
        result.set(key, measured[perturbation])
    result.details.update(data=spec, images=measured["images"], config=measured["config"])
    return result

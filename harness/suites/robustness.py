"""Robustness (METHOD.md §5): top-1 (%) of the first ``robustness_images`` test images,
clean and under Gaussian noise, FGSM, PGD and per-timestep pixel masking. Attacks run in
pixel space and backpropagate through the surrogate gradient over all T; the strengths
are recorded in ``details.config``."""
from __future__ import annotations

import dataclasses

from tdsnn.analysis.robustness import robust_accuracy

from . import Options, Subject
from .common import DataUnavailable, stack, test_split


def settings(subject: Subject, options: Options) -> dict:
    return {"data": options.data or subject.entry.data, "images": options.robustness_images,
            "config": dataclasses.asdict(options.robustness)}


def run(subject: Subject, options: Options) -> dict:
    try:
        spec, dataset = test_split(subject, options, normalize=False)
    except DataUnavailable as err:
        return {"metrics": {}, "unavailable": {"robustness": str(err)}, "details": {}}
    images, labels = stack(dataset, range(min(options.robustness_images, len(dataset))))
    pre = subject.preprocessing
    result = robust_accuracy(subject.model, images, labels, pre.mean, pre.std, options.robustness,
                             batch_size=options.batch_size, device=subject.device, progress=options.progress)
    metrics = {k: result[k] for k in ("clean", "noise", "fgsm", "pgd", "mask")}
    return {"metrics": metrics, "unavailable": {},
            "details": {"data": spec, "images": result["images"], "config": result["config"]}}

"""Task accuracy: top-1 (%) on the test split of the data the weights were trained on."""
from __future__ import annotations

from torch.utils.data import Subset

from tdsnn.analysis.accuracy import top1_accuracy
from tdsnn.data import num_classes

from . import Options, Subject, SuiteResult
from .common import DataUnavailable, data_settings, test_split
from .keys import ACCURACY


def settings(subject: Subject, options: Options) -> dict:
    return {**data_settings(subject, options), "limit": options.limit}


def run(subject: Subject, options: Options) -> SuiteResult:
    result = SuiteResult("accuracy")
    try:
        spec, dataset = test_split(subject, options)
    except DataUnavailable as err:
        result.mark_unavailable(str(err))
        return result
    classes = num_classes(spec, dataset)
    if classes != subject.model.config.num_classes:
        result.mark_unavailable(f"{spec} has {classes} classes, {subject.name} has "
                                f"{subject.model.config.num_classes} outputs")
        return result
    if options.limit is not None:
        dataset = Subset(dataset, range(min(options.limit, len(dataset))))
    result.set(ACCURACY, top1_accuracy(subject.model, dataset, batch_size=options.batch_size, device=subject.device,
                                       progress=options.progress))
    result.details.update(data=spec, images=len(dataset))
    return result

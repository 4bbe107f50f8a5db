"""Task accuracy: top-1 (%) on the test split of the data the weights were trained on."""
from __future__ import annotations

from torch.utils.data import Subset

from tdsnn.analysis.accuracy import top1_accuracy
from tdsnn.data import num_classes

from . import Options, Subject
from .common import DataUnavailable, test_split


def settings(subject: Subject, options: Options) -> dict:
    return {"data": options.data or subject.entry.data, "limit": options.limit}


def run(subject: Subject, options: Options) -> dict:
    try:
        spec, dataset = test_split(subject, options)
    except DataUnavailable as err:
        return {"metrics": {}, "unavailable": {"accuracy": str(err)}, "details": {}}
    classes = num_classes(spec, dataset)
    if classes != subject.model.config.num_classes:
        return {"metrics": {}, "details": {},
                "unavailable": {"accuracy": f"{spec} has {classes} classes, {subject.name} has "
                                            f"{subject.model.config.num_classes} outputs"}}
    if options.limit is not None:
        dataset = Subset(dataset, range(min(options.limit, len(dataset))))
    accuracy = top1_accuracy(subject.model, dataset, batch_size=options.batch_size, device=subject.device,
                             progress=options.progress)
    return {"metrics": {"accuracy": accuracy}, "unavailable": {},
            "details": {"data": spec, "images": len(dataset)}}

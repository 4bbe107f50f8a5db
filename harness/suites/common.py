"""Evaluation data shared by the suites: the test split matching a model's weights, and
the versions of data on disk that results depend on."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset

from tdsnn.data import DEFAULT_ROOT, FASHION_MNIST_DEBIAN, DataError, DataSpec, build_dataset

from . import Options, Subject


class DataUnavailable(RuntimeError):
    """The evaluation data of a suite cannot be had here (no data tag, missing files)."""


def evaluation_spec(subject: Subject, options: Options) -> str:
    """``--data`` when given, else the data tag the weights were trained on."""
    spec = options.data or subject.entry.data
    if spec is None:
        raise DataUnavailable(f"{subject.name} has no data tag; pass --data (e.g. imagenet-val:/path/to/val)")
    if spec == "imagenet":
        raise DataUnavailable("no ImageNet path given; pass --data imagenet-val:/path/to/imagenet/val")
    return spec


def folder_version(folder: Path) -> str:
    """sha256 of the relative path, size and modification time of every file under
    ``folder`` ("missing" when it is not there): it changes whenever a file is added,
    removed or rewritten, without reading the files."""
    if not folder.exists():
        return "missing"
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(folder, followlinks=True):
        dirs.sort()
        for name in sorted(files):
            path = Path(root, name)
            stat = path.stat()
            digest.update(f"{path.relative_to(folder).as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def evaluation_folder(spec: str) -> Optional[Path]:
    """The folder that holds the evaluation split of data ``spec`` (None: generated data)."""
    data = DataSpec.parse(spec)
    if data.name == "synthetic":
        return None
    if data.name == "fmnist" and data.path is None and FASHION_MNIST_DEBIAN.exists():
        return FASHION_MNIST_DEBIAN
    if data.name in ("fmnist", "cifar100"):
        return Path(data.path or DEFAULT_ROOT) / ("FashionMNIST" if data.name == "fmnist" else "cifar-100-python")
    return Path(data.path) if data.name == "imagenet-val" else Path(data.path) / "val"


def data_settings(subject: Subject, options: Options) -> dict:
    """The evaluation data spec of ``subject`` and the version of its files (``folder_version``;
    "generated" for synthetic data, None where the spec names no data)."""
    spec = options.data or subject.entry.data
    try:
        folder = evaluation_folder(spec) if spec else None
    except DataError:
        return {"data": spec, "data_version": None}
    return {"data": spec, "data_version": folder_version(folder) if folder else "generated" if spec else None}


def test_split(subject: Subject, options: Options, normalize: bool = True) -> tuple[str, Dataset]:
    """(spec, evaluation split at the model's input size), normalised or in [0, 1].

    Data of the weights' tag that is not on this machine is ``DataUnavailable``; a
    ``DataError`` in data given by ``--data`` is bad input and propagates."""
    spec = evaluation_spec(subject, options)
    try:
        return spec, build_dataset(spec, subject.model.config.input_size, train=False, normalize=normalize)
    except DataError as err:
        if options.data is not None:
            raise
        raise DataUnavailable(str(err)) from err


def dataset_labels(dataset: Dataset) -> np.ndarray:
    """Labels ``[N]`` of a dataset, read from its label array when it has one."""
    for attr in ("labels", "targets"):
        if hasattr(dataset, attr):
            return np.asarray(getattr(dataset, attr))
    if isinstance(dataset, TensorDataset):
        return dataset.tensors[1].numpy()
    return np.array([int(dataset[i][1]) for i in range(len(dataset))])


def class_names(dataset: Dataset, n_classes: int) -> list[str]:
    """The dataset's class names, else the class indices as strings."""
    names = getattr(dataset, "classes", None)
    return list(names) if names is not None else [str(i) for i in range(n_classes)]


def stack(dataset: Dataset, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``[n, 3, S, S]`` and labels ``[n]`` of the items at ``indices``."""
    items = [dataset[int(i)] for i in indices]
    return torch.stack([x for x, _ in items]), torch.as_tensor([int(y) for _, y in items])


def per_class(dataset: Dataset, per_class_count: int, max_classes: int) -> np.ndarray:
    """Indices of the first ``per_class_count`` items of each of the first ``max_classes``
    classes, class by class."""
    labels = dataset_labels(dataset)
    classes = np.unique(labels)[:max_classes]
    return np.concatenate([np.flatnonzero(labels == c)[:per_class_count] for c in classes])

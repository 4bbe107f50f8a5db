"""Training and evaluation data: Fashion-MNIST, CIFAR-100, ImageNet, any ImageFolder, synthetic.

A dataset is named by a spec string ``name[:path]``:

    fmnist[:DIR]        Debian's /usr/share/datasets/fashion-mnist (idx .gz files), else
                        torchvision's download into DIR (default ~/.cache/tdsnn)
    cifar100[:DIR]      torchvision CIFAR-100 in DIR (downloaded when online)
    imagenet:DIR        ImageFolder layout DIR/train/<class>/*, DIR/val/<class>/*
    imagenet-val:DIR    the ImageNet validation folder DIR/<class>/* alone (evaluation only)
    folder:DIR          any ImageFolder layout with DIR/train and DIR/val
    synthetic[:N]       N generated images of 4 oriented-grating classes (tests)

Every dataset yields ``(image [3, S, S] float32, label)`` normalised by
``Preprocessing`` (or in [0, 1] with ``normalize=False``); grayscale images are repeated
to 3 channels. Class names are in ``dataset.classes`` where the data has them.
"""
from __future__ import annotations

import gzip
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset, TensorDataset
from torchvision import datasets, transforms

FASHION_MNIST_DEBIAN = Path("/usr/share/datasets/fashion-mnist")
DEFAULT_ROOT = Path(os.environ.get("TDSNN_DATA", Path.home() / ".cache" / "tdsnn"))
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                         "Ankle boot")


class DataError(RuntimeError):
    """Missing or malformed data, with what was expected."""


@dataclass(frozen=True)
class Preprocessing:
    """Image size in pixels and per-channel normalisation applied to [0, 1] RGB images."""
    size: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def normalize(self) -> transforms.Normalize:
        return transforms.Normalize(self.mean, self.std)

    def at(self, size: int) -> "Preprocessing":
        """The same normalisation at ``size`` px (a network's own input size)."""
        return Preprocessing(size, self.mean, self.std)


#: Normalisation of each dataset (Fashion-MNIST: its own grey-level statistics).
DATASET_STATS = {
    "fmnist": ((0.2860,) * 3, (0.3530,) * 3),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "imagenet": (IMAGENET_MEAN, IMAGENET_STD),
    "imagenet-val": (IMAGENET_MEAN, IMAGENET_STD),
    "folder": (IMAGENET_MEAN, IMAGENET_STD),
    "synthetic": ((0.5,) * 3, (0.25,) * 3),
}


@dataclass(frozen=True)
class DataSpec:
    name: str
    path: Optional[str] = None

    @classmethod
    def parse(cls, spec: str) -> "DataSpec":
        name, _, path = spec.partition(":")
        if name not in DATASET_STATS:
            raise DataError(f"unknown dataset {name!r} in {spec!r}; valid: {', '.join(DATASET_STATS)} "
                            "(written name[:path])")
        if name in ("imagenet", "folder") and not path:
            raise DataError(f"{name} needs a path: {name}:/path/to/root with train/ and val/ class folders")
        if name == "imagenet-val" and not path:
            raise DataError("imagenet-val needs a path: imagenet-val:/path/to/imagenet/val with one folder per class")
        if name == "synthetic" and path and not (path.isascii() and path.isdigit() and int(path) >= 1):
            raise DataError(f"synthetic:N needs a positive whole number of images N, got {path!r} in {spec!r}")
        return cls(name, path or None)

    def preprocessing(self, size: int) -> Preprocessing:
        mean, std = DATASET_STATS[self.name]
        return Preprocessing(size, mean, std)


def _read_idx(path: Path) -> np.ndarray:
    """An idx file (optionally gzipped) as a uint8 array."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape).copy()


class _ArrayImages(Dataset):
    """uint8 images ``[N, H, W]`` or ``[N, H, W, 3]`` with labels and class names, transformed per item."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform, classes: list[str]):
        self.images, self.labels, self.transform, self.classes = images, labels, transform, classes

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        image = torch.from_numpy(np.ascontiguousarray(self.images[i]))
        image = image.unsqueeze(0).expand(3, -1, -1) if image.ndim == 2 else image.permute(2, 0, 1)
        return self.transform(image.float().div(255)), int(self.labels[i])


def _tensor_transform(pre: Preprocessing, train: bool, native: int):
    """Transforms for [3, h, w] float tensors: resize, light augmentation when training, normalise."""
    steps = [transforms.Resize(pre.size, antialias=True)] if native != pre.size else []
    if train:
        steps += [transforms.RandomCrop(pre.size, padding=max(1, pre.size // 16)), transforms.RandomHorizontalFlip()]
    return transforms.Compose(steps + [pre.normalize()])


def _fashion_mnist(spec: DataSpec, pre: Preprocessing, train: bool) -> Dataset:
    split = "train" if train else "t10k"
    debian = FASHION_MNIST_DEBIAN / f"{split}-images-idx3-ubyte.gz"
    if spec.path is None and debian.exists():
        images = _read_idx(debian)
        labels = _read_idx(FASHION_MNIST_DEBIAN / f"{split}-labels-idx1-ubyte.gz")
        return _ArrayImages(images, labels, _tensor_transform(pre, train, 28), list(FASHION_MNIST_CLASSES))
    root = Path(spec.path) if spec.path else DEFAULT_ROOT
    try:
        raw = datasets.FashionMNIST(str(root), train=train, download=True)
    except Exception as err:  # noqa: BLE001 - torchvision raises several error types offline
        raise DataError(f"Fashion-MNIST not found: expected Debian's {FASHION_MNIST_DEBIAN}/*-idx?-ubyte.gz "
                        f"(apt-get install dataset-fashion-mnist) or torchvision's files under {root} "
                        f"and the download failed: {err}") from err
    return _ArrayImages(raw.data.numpy(), raw.targets.numpy(), _tensor_transform(pre, train, 28),
                        list(FASHION_MNIST_CLASSES))


def _cifar100(spec: DataSpec, pre: Preprocessing, train: bool) -> Dataset:
    root = Path(spec.path) if spec.path else DEFAULT_ROOT
    try:
        raw = datasets.CIFAR100(str(root), train=train, download=True)
    except Exception as err:  # noqa: BLE001
        raise DataError(f"CIFAR-100 not found under {root} (expected {root}/cifar-100-python/) "
                        f"and the download failed: {err}") from err
    return _ArrayImages(raw.data, np.asarray(raw.targets), _tensor_transform(pre, train, 32), list(raw.classes))


def load_image(path: str) -> Image.Image:
    """The RGB image in ``path``; ``DataError`` naming the file when it is corrupt or truncated."""
    try:
        with open(path, "rb") as f:
            return Image.open(f).convert("RGB")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        reason = "unknown or corrupt image format" if isinstance(err, UnidentifiedImageError) else err
        raise DataError(f"{path}: not a readable image ({reason})") from err


def _image_folder(spec: DataSpec, pre: Preprocessing, train: bool) -> Dataset:
    if spec.name == "imagenet-val":
        if train:
            raise DataError("imagenet-val is an evaluation split; train with imagenet:/path/to/imagenet")
        root = Path(spec.path)
    else:
        root = Path(spec.path) / ("train" if train else "val")
    if not root.is_dir():
        raise DataError(f"{spec.name}: expected an ImageFolder directory {root} with one sub-folder per class")
    if train:
        tf = [transforms.RandomResizedCrop(pre.size), transforms.RandomHorizontalFlip()]
    else:
        tf = [transforms.Resize(math.ceil(pre.size * 256 / 224)), transforms.CenterCrop(pre.size)]
    try:
        return datasets.ImageFolder(str(root), transforms.Compose(tf + [transforms.ToTensor(), pre.normalize()]),
                                    loader=load_image)
    except (FileNotFoundError, RuntimeError) as err:
        raise DataError(f"{spec.name}: no images in {root}: {err}") from err


def synthetic_images(n: int, size: int, classes: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` noisy gratings ``[n, 3, size, size]`` in [0, 1] whose orientation encodes the label ``[n]``."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % classes
    theta = labels.float() * math.pi / classes
    coords = torch.linspace(0, 1, size)
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    phase = torch.rand(n, generator=g)[:, None, None] * 2 * math.pi
    wave = torch.sin(2 * math.pi * 4 * (x * theta.cos()[:, None, None] + y * theta.sin()[:, None, None]) + phase)
    images = 0.5 + 0.35 * wave + 0.15 * torch.randn(n, size, size, generator=g)
    return images.clamp(0, 1).unsqueeze(1).expand(-1, 3, -1, -1).contiguous(), labels


def _synthetic(spec: DataSpec, pre: Preprocessing, train: bool) -> Dataset:
    n = int(spec.path) if spec.path else 256
    images, labels = synthetic_images(n if train else max(4, n // 4), pre.size, seed=0 if train else 1)
    mean = torch.tensor(pre.mean)[:, None, None]
    std = torch.tensor(pre.std)[:, None, None]
    return TensorDataset((images - mean) / std, labels)


_BUILDERS = {"fmnist": _fashion_mnist, "cifar100": _cifar100, "imagenet": _image_folder, "imagenet-val": _image_folder,
             "folder": _image_folder, "synthetic": _synthetic}
NUM_CLASSES = {"fmnist": 10, "cifar100": 100, "imagenet": 1000, "imagenet-val": 1000, "synthetic": 4}


def build_dataset(spec: str | DataSpec, size: int, train: bool, normalize: bool = True) -> Dataset:
    """The train or evaluation split of ``spec`` at ``size`` pixels, normalised by the
    dataset's statistics, or with ``normalize=False`` left in [0, 1]."""
    spec = DataSpec.parse(spec) if isinstance(spec, str) else spec
    pre = spec.preprocessing(size) if normalize else Preprocessing(size, (0.0,) * 3, (1.0,) * 3)
    return _BUILDERS[spec.name](spec, pre, train)


def num_classes(spec: str | DataSpec, dataset: Optional[Dataset] = None) -> int:
    """Number of classes of ``spec`` (ImageFolder: counted from ``dataset``)."""
    spec = DataSpec.parse(spec) if isinstance(spec, str) else spec
    if spec.name in NUM_CLASSES:
        return NUM_CLASSES[spec.name]
    return len(dataset.classes)

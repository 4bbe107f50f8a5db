"""Analysis stimuli (docs/method.md §5): full-field sine gratings on TDANN's grid, and
fLoc-style category images read from folders.

Gratings: 8 orientations x 8 spatial frequencies x 5 phases x 2 colour conditions = 640
images. The image spans ``DEGREES_PER_IMAGE`` degrees of visual angle.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image

from .data import DataError

DEGREES_PER_IMAGE = 8.0
ORIENTATIONS_DEG = np.linspace(0.0, 180.0, 9)[:-1]
SF_CYCLES_PER_IMAGE = np.linspace(5.5, 110.0, 9)[:-1]
PHASES_RAD = np.linspace(0.0, 2 * math.pi, 6)[:-1]
COLORS = ("bw", "rc")  # black/white, red/cyan


def grating_metadata() -> pd.DataFrame:
    """One row per grating, in image order: orientation (deg), sf (cycles/image and /deg), phase (rad), color."""
    rows = [(o, sf, sf / DEGREES_PER_IMAGE, ph, c)
            for c in COLORS for o in ORIENTATIONS_DEG for sf in SF_CYCLES_PER_IMAGE for ph in PHASES_RAD]
    meta = pd.DataFrame(rows, columns=["orientation", "sf_cpi", "sf_cpd", "phase", "color"])
    meta.insert(0, "stimulus_id", [f"grating_{i:03d}" for i in range(len(meta))])
    return meta


def sine_gratings(size: int, supersample: int = 4) -> tuple[torch.Tensor, pd.DataFrame]:
    """Render the 640 gratings at ``size`` x ``size`` pixels.

    Each grating is ``0.5 + 0.5 sin(2 pi sf (x cos(theta) + y sin(theta)) + phase)`` with x, y
    in image widths; black/white gratings put it on all channels, red/cyan ones on red
    and its complement on green and blue. Rendering at ``supersample`` x the size and
    box-averaging down keeps frequencies above the pixel Nyquist limit from aliasing.

    Returns:
        images ``[640, 3, size, size]`` float32 in [0, 1], and ``grating_metadata()``.
    """
    if size < 1 or supersample < 1:
        raise ValueError(f"size and supersample must be >= 1, got {size}, {supersample}")
    meta = grating_metadata()
    n = size * supersample
    coords = (torch.arange(n, dtype=torch.float32) + 0.5) / n
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    theta = torch.tensor(np.deg2rad(meta["orientation"].to_numpy()), dtype=torch.float32)
    sf = torch.tensor(meta["sf_cpi"].to_numpy(), dtype=torch.float32)
    phase = torch.tensor(meta["phase"].to_numpy(), dtype=torch.float32)
    wave = torch.empty(len(meta), size, size)
    for i in range(0, len(meta), 32):  # chunks bound memory at large sizes
        s = slice(i, i + 32)
        arg = 2 * math.pi * sf[s, None, None] * (x * torch.cos(theta[s, None, None]) + y * torch.sin(theta[s, None, None]))
        wave[s] = F.avg_pool2d(torch.sin(arg + phase[s, None, None]).unsqueeze(1), supersample).squeeze(1)
    red_cyan = torch.tensor((meta["color"] == "rc").to_numpy())[:, None, None]
    images = torch.stack([wave, torch.where(red_cyan, -wave, wave), torch.where(red_cyan, -wave, wave)], dim=1)
    return 0.5 + 0.5 * images, meta


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


def category_images(root, size: int) -> tuple[torch.Tensor, np.ndarray, list[str]]:
    """fLoc-style category images: ``root/<category>/*.{png,jpg,jpeg,bmp}``.

    Categories are the sub-folders, sorted by name (VPNL fLoc's ``stimuli/`` folder:
    adult, body, car, ...); image suffixes match case-insensitively; names starting with
    "." (hidden files and folders) are skipped. Each image is converted to RGB
    (grayscale repeated to 3 channels), centre-cropped to a square (the shorter side is
    kept, no letterbox) and resized to ``size`` (bilinear, antialiased). Returns images
    ``[N, 3, size, size]`` float32 in [0, 1], labels ``[N]`` (int64, indexing the names;
    files within a category sorted by name) and the category names. Raises
    ``DataError`` naming what was expected when root is not a directory, has fewer than
    2 category folders, a folder holds no images, or an image cannot be read.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"category images: {root} is not a directory (expected {root}/<category>/*.png)")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(folders) < 2:
        raise DataError(f"category images: {root} needs at least 2 category sub-folders, found {len(folders)}")
    images, labels = [], []
    for label, folder in enumerate(folders):
        files = sorted(p for p in folder.iterdir()
                       if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and not p.name.startswith("."))
        if not files:
            raise DataError(f"category images: {folder} holds no {'/'.join(IMAGE_SUFFIXES)} files")
        for path in files:
            try:
                with Image.open(path) as image:
                    rgb = np.asarray(image.convert("RGB"), dtype=np.float32)
            except (OSError, ValueError) as err:  # PIL.UnidentifiedImageError is an OSError
                raise DataError(f"category images: cannot read {path} as an image ({err})") from err
            x = torch.from_numpy(rgb / 255).permute(2, 0, 1)
            side = min(x.shape[1:])
            top, left = (x.shape[1] - side) // 2, (x.shape[2] - side) // 2
            x = x[:, top:top + side, left:left + side].unsqueeze(0)
            images.append(F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)[0])
            labels.append(label)
    return torch.stack(images).clamp(0, 1), np.asarray(labels, dtype=np.int64), [f.name for f in folders]

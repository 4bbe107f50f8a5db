"""Weights hosted outside this repository, fetched through the libraries' own caches.

Two sources: a file of a Hugging Face hub model repository (``huggingface_hub``'s cache,
``$HF_HOME/hub``) and a torchvision weights enum (torch.hub's cache,
``$TORCH_HOME/hub/checkpoints``). The cache is looked up first, so cached weights load
with no network; otherwise one probe (``tdsnn.network.probe``, ``TIMEOUT_S``, no retries)
checks that the server answers before the library downloads. With no network, or with
``HF_HUB_OFFLINE=1`` (honoured for both sources), a missing file raises
``WeightsUnavailable`` at once.

Weights whose registry entry records no sha256 are pinned on first use: ``pinned_sha256``
writes the file's sha256 into a pin file under ``$TDSNN_CACHE/pins`` (default
``~/.cache/tdsnn/pins``), and every later load is checked against it.
"""
from __future__ import annotations

import hashlib
import json
import os
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import huggingface_hub
import torch
import torchvision
from huggingface_hub import constants as hf_constants
from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

from .checkpoint import CheckpointError, WeightsUnavailable, atomic_write, sha256_file
from .network import probe

#: Seconds to wait for a server before calling its weights unavailable.
TIMEOUT_S = 10.0


@dataclass(frozen=True)
class HubFile:
    """``filename`` of the Hugging Face model repository ``repo`` at ``revision``
    (a commit hash; ``None`` means the branch ``main``)."""
    repo: str
    filename: str
    revision: Optional[str] = None

    def __str__(self) -> str:
        return f"hf://{self.repo}/{self.filename}" + (f"@{self.revision}" if self.revision else "")


def _check_online(url: str, source: str, cache: Path) -> None:
    """Raise ``WeightsUnavailable`` when offline or when ``url``'s server does not answer in ``TIMEOUT_S``."""
    why = "HF_HUB_OFFLINE is set" if hf_constants.HF_HUB_OFFLINE else probe(url, TIMEOUT_S)
    if why is not None:
        raise WeightsUnavailable(f"weights unavailable offline: {source} (not in the cache {cache}; {why}; "
                                 "run once with network access, or copy the file there)")


def hub_file(source: HubFile) -> Path:
    """Local path of a hub file: from the cache, else downloaded into it."""
    kwargs = dict(repo_id=source.repo, filename=source.filename, revision=source.revision)
    try:
        return Path(huggingface_hub.hf_hub_download(**kwargs, local_files_only=True))
    except LocalEntryNotFoundError:
        pass
    _check_online(huggingface_hub.hf_hub_url(source.repo, source.filename, revision=source.revision),
                  str(source), Path(hf_constants.HF_HUB_CACHE))
    try:
        return Path(huggingface_hub.hf_hub_download(**kwargs, etag_timeout=TIMEOUT_S))
    except (HfHubHTTPError, LocalEntryNotFoundError) as err:
        raise CheckpointError(f"cannot download {source}: {err}") from err


def torchvision_file(name: str) -> Path:
    """Local path of torchvision weights ``name`` (e.g. ``ResNet18_Weights.IMAGENET1K_V1``):
    from torch.hub's cache, else downloaded into it (checked against the sha256 prefix in
    torchvision's file name)."""
    try:
        url = torchvision.models.get_weight(name).url
    except (ValueError, KeyError, AttributeError) as err:
        raise CheckpointError(f"unknown torchvision weights {name!r}: {err}") from err
    filename = os.path.basename(urllib.parse.urlparse(url).path)
    path = Path(torch.hub.get_dir()) / "checkpoints" / filename
    if path.is_file():
        return path
    source = f"torchvision {name} ({url})"
    _check_online(url, source, path.parent)
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = torch.hub.HASH_REGEX.search(filename)
    try:
        torch.hub.download_url_to_file(url, str(path), hash_prefix=prefix.group(1) if prefix else None)
    except (OSError, RuntimeError) as err:
        raise CheckpointError(f"cannot download {source}: {err}") from err
    return path


def pin_file(source: str) -> Path:
    """The pin file of weights ``source`` (``Weights.source``) under ``$TDSNN_CACHE/pins``."""
    root = Path(os.environ.get("TDSNN_CACHE") or Path.home() / ".cache" / "tdsnn")
    return root / "pins" / f"{hashlib.sha256(source.encode()).hexdigest()[:24]}.json"


def pinned_sha256(source: str, path: Path) -> tuple[str, bool]:
    """``path``'s sha256, checked against the one pinned for ``source``, and whether it was
    pinned just now: the first call records it (trust on first use); a later file with another
    sha256 raises ``CheckpointError`` naming the file and the pin."""
    pin = pin_file(source)
    digest = sha256_file(path)
    if not pin.is_file():
        record = {"source": source, "file": str(path), "sha256": digest}
        atomic_write(pin, lambda tmp: Path(tmp).write_text(json.dumps(record, indent=1) + "\n"))
        return digest, True
    try:
        pinned = json.loads(pin.read_text())["sha256"]
    except (ValueError, KeyError, TypeError) as err:
        raise CheckpointError(f"pin file {pin} of {source} is corrupt ({err}); delete it to pin {path} again") \
            from err
    if digest != pinned:
        raise CheckpointError(f"sha256 mismatch for {path}: expected {pinned} (pinned on first use in {pin}), "
                              f"got {digest}; the cached file of {source} was replaced. Delete the file to "
                              "download it again, or the pin file if the new file is trusted")
    return digest, False

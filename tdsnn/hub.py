"""Weights hosted outside this repository, fetched through the libraries' own caches.

Two sources: a file of a Hugging Face hub model repository (``huggingface_hub``'s cache,
``$HF_HOME/hub``) and a torchvision weights enum (torch.hub's cache,
``$TORCH_HOME/hub/checkpoints``). The cache is looked up first, so cached weights load
with no network; otherwise one HEAD request (``TIMEOUT_S``, no retries) checks that the
server answers before the library downloads. With no network, or with
``HF_HUB_OFFLINE=1`` (honoured for both sources), a missing file raises
``WeightsUnavailable`` at once.
"""
from __future__ import annotations

import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import huggingface_hub
import torch
import torchvision
from huggingface_hub import constants as hf_constants
from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

from .checkpoint import CheckpointError, WeightsUnavailable

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
    error = None
    if not hf_constants.HF_HUB_OFFLINE:
        try:
            urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=TIMEOUT_S).close()
            return
        except urllib.error.HTTPError:
            return  # the server answered; the download reports what it said
        except OSError as err:
            error = err
    raise WeightsUnavailable(f"weights unavailable offline: {source} (not in the cache {cache}; "
                             "run once with network access, or copy the file there)") from error


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

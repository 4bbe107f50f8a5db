"""Where an exported plugin's weights file comes from, and how it is fetched and verified.

Three sources, each written to and read from the plugin's ``plugin.json``:

- ``HubWeights``: a file of a Hugging Face hub model repository, fetched with
  ``huggingface_hub`` into its cache (``$HF_HOME/hub``; ``HF_HUB_OFFLINE=1`` serves it from
  there alone);
- ``UrlWeights``: an HTTPS URL, downloaded once into
  ``$BRAINSCORE_HOME/models/tdsnn/<sha256>/<file>`` (Brain-Score's weights cache);
- ``BundledWeights``: a file inside the plugin folder (local use only: upstream plugins
  carry no binaries).

``fetch`` returns a local path whose sha256 has been checked against the export's.
"""
from __future__ import annotations

import os
import re
import shutil
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

from tdsnn.checkpoint import CheckpointError, WeightsUnavailable, atomic_write, check_file
from tdsnn.hub import TIMEOUT_S, HubFile, hub_file
from tdsnn.network import probe

_FILENAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
_REPO = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}")
_REVISION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def _checked(pattern: re.Pattern, value: object, what: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value) or ".." in value:
        raise ValueError(f"invalid {what} {value!r}")
    return value


def verified(path: Path, sha256: str, source: str) -> Path:
    """``path`` when its sha256 is ``sha256``, else a ``CheckpointError`` naming ``source``."""
    try:
        return check_file(path, sha256)
    except CheckpointError as err:
        raise CheckpointError(f"weights from {source}: {err}") from err


@dataclass(frozen=True)
class HubWeights:
    """``filename`` of hub model repository ``repo`` at ``revision`` (``None``: branch ``main``)."""
    repo: str
    filename: str
    revision: Optional[str] = None

    def __post_init__(self):
        _checked(_REPO, self.repo, "hub repository (OWNER/REPO)")
        _checked(_FILENAME, self.filename, "weights file name")
        if self.revision is not None:
            _checked(_REVISION, self.revision, "hub revision")

    @classmethod
    def parse(cls, spec: str, filename: str) -> "HubWeights":
        """``OWNER/REPO`` or ``OWNER/REPO@REV``."""
        repo, _, revision = spec.partition("@")
        return cls(repo, filename, revision or None)

    def __str__(self) -> str:
        return str(HubFile(self.repo, self.filename, self.revision))

    def to_json(self) -> dict:
        return {"hub": {"repo": self.repo, "filename": self.filename, "revision": self.revision}}

    def fetch(self, folder: Path, sha256: str) -> Path:
        return verified(hub_file(HubFile(self.repo, self.filename, self.revision)), sha256, str(self))

    def publish_hint(self, local: Path) -> str:
        pin = "" if self.revision else (f"\nthen pin the commit it prints: export again with "
                                        f"--weights-hub {self.repo}@<commit>")
        return f"upload the weights with:\n  hf upload {self.repo} {local} {self.filename}{pin}"


@dataclass(frozen=True)
class UrlWeights:
    """A weights file served at an HTTPS ``url`` (plain HTTP only on the loopback interface)."""
    url: str

    def __post_init__(self):
        parsed = urllib.parse.urlparse(self.url)
        loopback = parsed.scheme == "http" and parsed.hostname in _LOOPBACK
        if not (parsed.scheme == "https" or loopback) or not parsed.hostname or parsed.username:
            raise ValueError(f"invalid weights URL {self.url!r}: use https://HOST/PATH/FILE (no credentials)")
        _checked(_FILENAME, self.filename, "weights file name in the URL")

    @property
    def filename(self) -> str:
        return os.path.basename(urllib.parse.urlparse(self.url).path)

    def __str__(self) -> str:
        return self.url

    def to_json(self) -> dict:
        return {"url": self.url}

    def fetch(self, folder: Path, sha256: str) -> Path:
        home = Path(os.environ.get("BRAINSCORE_HOME", Path.home() / ".brain-score"))
        path = home / "models" / "tdsnn" / sha256 / self.filename
        if not path.is_file():
            why = probe(self.url, TIMEOUT_S)
            if why is not None:
                raise WeightsUnavailable(f"weights unavailable: {self.url} does not answer ({why}) "
                                         f"and they are not in the cache {path.parent}")
            atomic_write(path, lambda tmp: self._download(tmp, sha256))
        return verified(path, sha256, self.url)

    def _download(self, tmp: str, sha256: str) -> None:
        try:
            with urllib.request.urlopen(self.url, timeout=TIMEOUT_S) as response, open(tmp, "wb") as out:
                shutil.copyfileobj(response, out)
        except (urllib.error.URLError, OSError) as err:
            raise CheckpointError(f"cannot download weights from {self.url}: {err}") from err
        verified(Path(tmp), sha256, self.url)

    def publish_hint(self, local: Path) -> str:
        return f"make {local} available at\n  {self.url}"


@dataclass(frozen=True)
class BundledWeights:
    """A weights file inside the plugin folder (for local use; upstream plugins carry no binaries)."""
    filename: str

    def __post_init__(self):
        _checked(_FILENAME, self.filename, "weights file name")

    def __str__(self) -> str:
        return f"the plugin folder's {self.filename}"

    def to_json(self) -> dict:
        return {"bundled": self.filename}

    def fetch(self, folder: Path, sha256: str) -> Path:
        return verified(Path(folder) / self.filename, sha256, str(self))

    def publish_hint(self, local: Path) -> str:
        return "the weights are bundled in the plugin folder: for local use only (upstream plugins carry no binaries)"


WeightsSource = Union[HubWeights, UrlWeights, BundledWeights]


def from_json(raw: dict) -> WeightsSource:
    """The source a ``plugin.json`` names."""
    if not isinstance(raw, dict) or len(raw) != 1:
        raise ValueError(f"plugin.json weights must name one source (hub, url or bundled), got {raw!r}")
    (kind, value), = raw.items()
    if kind == "hub" and isinstance(value, dict) and set(value) <= {"repo", "filename", "revision"}:
        return HubWeights(**value)
    if kind == "url" and isinstance(value, str):
        return UrlWeights(value)
    if kind == "bundled" and isinstance(value, str):
        return BundledWeights(value)
    raise ValueError(f"plugin.json weights: unknown source {raw!r}")

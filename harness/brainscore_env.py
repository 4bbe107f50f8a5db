"""The Brain-Score environment of the harness: brainscore_vision imported with the
plugin's settings, and its S3 downloads behind the network preflight.

``brainscore_plugin`` is imported first: it sets ``BS_INSTALL_DEPENDENCIES`` so that
loading a benchmark never pip-installs its requirements. Registered benchmarks load
through ``load_benchmark``, so they use the data cached in ``$BRAINIO_HOME`` and download
what is missing. Offline they fail within seconds with a one-line ``reason``:

* Every S3 download goes through ``BotoFetcher.download_boto``, which is only called for
  files missing from ``$BRAINIO_HOME``. Inside ``s3_preflight()`` that method first asks
  ``tdsnn.network.preflight`` whether the bucket's host answers an HTTPS HEAD request
  (``PROBE_TIMEOUT_S``, 3 s with DNS, remembered per host for ``PREFLIGHT_TTL_S``) and
  raises ``S3Unreachable`` at once if not. So cached data never waits on the network,
  and a network that drops packets (where boto3 would retry its 60 s connect timeout
  several times) costs at most ~3 s per run.
* Measured on a machine without network (DNS fails): all 23 default benchmarks are
  reported unavailable in about 2 s in all (0.1-1.3 s each without the preflight).
"""
from __future__ import annotations

import re
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional
from urllib.parse import urlparse

import brainscore_plugin  # noqa: F401  (sets BS_INSTALL_DEPENDENCIES before brainscore_vision is imported)
import brainscore_vision
from brainscore_core.benchmarks import score_benchmark
from brainscore_core.supported_data_standards.brainio import fetch as brainio_fetch
from brainscore_vision import load_benchmark

from tdsnn import network

__all__ = ["BENCHMARK_PLUGINS", "S3Unreachable", "load_benchmark", "reason", "s3_preflight", "score_benchmark"]

#: Folder of the installed brainscore_vision's benchmark plugins.
BENCHMARK_PLUGINS = Path(brainscore_vision.__file__).parent / "benchmarks"


class S3Unreachable(ConnectionError):
    """The S3 host of a missing data file does not answer (raised before boto3 tries)."""


@contextmanager
def s3_preflight() -> Iterator[dict[str, Optional[str]]]:
    """While active, a download of a file missing from ``$BRAINIO_HOME`` first checks that
    its S3 host answers (``tdsnn.network.preflight``) and raises ``S3Unreachable`` at once
    if not. Yields ``{host: reason or None}`` of the hosts consulted."""
    fetcher = brainio_fetch.BotoFetcher
    original = fetcher.download_boto
    consulted: dict[str, Optional[str]] = {}

    def download_boto(self):
        parsed = urlparse(self.location)
        host = parsed.hostname or "?"
        why = consulted[host] = network.preflight(host, parsed.port or 443)
        if why is not None:
            raise S3Unreachable(f"S3 unreachable ({why}): {host}")
        return original(self)

    fetcher.download_boto = download_boto
    try:
        yield consulted
    finally:
        fetcher.download_boto = original


def reason(err: BaseException) -> str:
    """A one-line account of why a benchmark could not be loaded or scored."""
    seen, stack = set(), [err]
    while stack:  # S3Unreachable anywhere in the chain (Brain-Score wraps some errors in lists)
        e = stack.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, S3Unreachable):
            return str(e)
        stack += [a for a in getattr(e, "args", ()) if isinstance(a, BaseException)]
        stack += [a for arg in getattr(e, "args", ()) if isinstance(arg, (list, tuple))
                  for a in arg if isinstance(a, BaseException)]
        stack += [c for c in (e.__cause__, e.__context__) if c is not None]
    text = str(err)
    url = re.search(r'Could not connect to the endpoint URL: "([^"]+)"', text)
    if url:
        return f"S3 unreachable (EndpointConnectionError): {urlparse(url.group(1)).hostname}"
    first = text.strip().splitlines()[0] if text.strip() else ""
    return f"{type(err).__name__}: {first[:240]}" if first else type(err).__name__

"""The one network probe: does a server answer at all, within a bounded time?

Used before any download (hub weights, Brain-Score's S3 data) so that a machine without
network fails within seconds with a reason, instead of waiting on library retries. A TCP
connect is not enough (some networks accept every connect), so the probe is an HTTPS HEAD
request; any HTTP status counts as an answer.
"""
from __future__ import annotations

import math
import threading
import time
import urllib.error
import urllib.request
from typing import Optional

#: Seconds a probe waits for an answer, DNS included.
PROBE_TIMEOUT_S = 3.0
#: Seconds a host's probe result is reused by ``preflight``.
PREFLIGHT_TTL_S = 300.0

_remembered: dict[tuple[str, int], tuple[float, Optional[str]]] = {}
_lock = threading.Lock()


def probe(url: str, timeout: Optional[float] = None) -> Optional[str]:
    """``None`` when ``url``'s server answers a HEAD request (any HTTP status) within
    ``timeout`` seconds (default ``PROBE_TIMEOUT_S``), else a short reason. Runs in a daemon
    thread so that a hanging DNS lookup cannot hold the caller. Honours proxy variables."""
    timeout = PROBE_TIMEOUT_S if timeout is None else timeout
    outcome: dict[str, Optional[str]] = {}

    def attempt():
        try:
            urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout).close()
            outcome["why"] = None
        except urllib.error.HTTPError:
            outcome["why"] = None  # the server answered (S3 says 403 to an anonymous HEAD of a bucket)
        except Exception as err:  # noqa: BLE001 - any failure to get an answer
            cause = getattr(err, "reason", err)
            outcome["why"] = f"{type(cause).__name__}: {cause}" if str(cause) else type(cause).__name__

    worker = threading.Thread(target=attempt, name=f"probe-{url}", daemon=True)
    worker.start()
    worker.join(timeout + 0.5)
    return outcome.get("why", f"no answer within {timeout:g} s")


def host_url(host: str, port: int = 443) -> str:
    """``https://host[:port]/``."""
    return f"https://{host}/" if port == 443 else f"https://{host}:{port}/"


def preflight(host: str, port: int = 443) -> Optional[str]:
    """``probe`` of ``https://host:port/``, remembered per host for ``PREFLIGHT_TTL_S`` seconds."""
    with _lock:
        when, why = _remembered.get((host, port), (-math.inf, None))
        if time.monotonic() - when > PREFLIGHT_TTL_S:
            why = probe(host_url(host, port))
            _remembered[(host, port)] = (time.monotonic(), why)
        return why


def forget() -> None:
    """Drop every remembered probe result (tests; a network that came back)."""
    with _lock:
        _remembered.clear()

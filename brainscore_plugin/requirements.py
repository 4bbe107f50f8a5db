"""A plugin's ``requirements.txt``: the pinned tdsnn requirement, and what Brain-Score can install.

Brain-Score pip-installs each line of a plugin's ``requirements.txt`` on its own servers,
so tdsnn (not on a package index) must be a direct VCS reference pinned to a commit:
``tdsnn @ git+<project URL>@<commit>``. The URL is the one in setup.py (``url=``), read
from the checkout's setup.py, or, for tdsnn installed from git, from pip's record of
where it came from (``direct_url.json``, PEP 610).
"""
from __future__ import annotations

import ast
import importlib.metadata
import json
import subprocess
import urllib.parse
from pathlib import Path
from typing import Optional

from packaging.requirements import InvalidRequirement, Requirement

PROJECT = "tdsnn"
#: The checkout this package runs from, when it runs from one.
CHECKOUT = Path(__file__).resolve().parent.parent


class RequirementError(ValueError):
    """No pinned requirement can be built (not a checkout, a dirty tree, no project URL)."""


def setup_url(setup_py: Path) -> Optional[str]:
    """The ``url=`` string of the ``setup(...)`` call in ``setup_py``, read without running it."""
    for node in ast.walk(ast.parse(setup_py.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "setup":
            for keyword in node.keywords:
                if keyword.arg == "url" and isinstance(keyword.value, ast.Constant):
                    return keyword.value.value
    return None


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True).stdout.strip()


def vcs_requirement(url: str, commit: str) -> str:
    """``tdsnn @ git+URL@COMMIT``."""
    return f"{PROJECT} @ git+{url.removesuffix('/')}@{commit}"


def pinned_requirement(root: Path = CHECKOUT, allow_dirty: bool = False) -> tuple[str, str, str]:
    """``(requirement, project URL, commit)`` of the tdsnn this runs from.

    A git checkout with a setup.py: its ``url=`` at ``HEAD``; a tree with uncommitted
    changes to tracked files is refused unless ``allow_dirty``. Otherwise, tdsnn installed
    from git: the URL and commit pip recorded. Anything else: ``RequirementError``.
    """
    setup_py = root / "setup.py"
    if setup_py.is_file() and (root / ".git").exists():
        url = setup_url(setup_py)
        if not url:
            raise RequirementError(f"{setup_py} has no url= to build a VCS requirement from; pass --requirement SPEC")
        try:
            commit = _git(root, "rev-parse", "HEAD")
            dirty = _git(root, "status", "--porcelain", "--untracked-files=no")
        except (OSError, subprocess.CalledProcessError) as err:
            raise RequirementError(f"cannot read the git commit of {root}: {err}; pass --requirement SPEC") from err
        if dirty and not allow_dirty:
            raise RequirementError(f"{root} has uncommitted changes, which {vcs_requirement(url, commit)} would "
                                   "not install; commit them (and push), or pass --allow-dirty or --requirement SPEC")
        return vcs_requirement(url, commit), url, commit
    try:
        direct = json.loads(importlib.metadata.distribution(PROJECT).read_text("direct_url.json") or "{}")
    except importlib.metadata.PackageNotFoundError:
        direct = {}
    vcs = direct.get("vcs_info", {})
    if vcs.get("vcs") == "git" and vcs.get("commit_id") and direct.get("url", "").startswith("https://"):
        return vcs_requirement(direct["url"], vcs["commit_id"]), direct["url"], vcs["commit_id"]
    raise RequirementError(f"tdsnn here is neither a git checkout nor installed from git, so no commit can be "
                           f"pinned; pass --requirement SPEC (e.g. '{PROJECT} @ git+https://HOST/OWNER/REPO@COMMIT')")


def commit_url(url: str, commit: str) -> Optional[str]:
    """An HTTPS page of the project at ``commit`` (GitHub layout), or ``None`` for other URLs."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme != "https" or not parsed.hostname:
        return None
    return f"{url.removesuffix('/').removesuffix('.git')}/tree/{commit}"


def _installed_from(name: str) -> Optional[str]:
    """Where pip installed distribution ``name`` from, when that was not a package index."""
    try:
        raw = importlib.metadata.distribution(name).read_text("direct_url.json")
    except importlib.metadata.PackageNotFoundError:
        return None
    return json.loads(raw).get("url") if raw else None


def requirement_problems(lines: list[str]) -> list[str]:
    """Why lines of a requirements.txt would not install on Brain-Score's servers (empty: they would).

    Each line must be a PEP 508 requirement. tdsnn, and any package installed here from a
    local folder or file rather than an index, must be a direct ``name @ https/git+https``
    reference; local paths, ``file:`` URLs and pip options are refused.
    """
    problems = []
    for number, raw in enumerate(lines, 1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        where = f"requirements.txt line {number} ({line!r})"
        if line.startswith("-"):
            problems.append(f"{where}: pip options and editable installs do not work on Brain-Score's servers")
            continue
        try:
            requirement = Requirement(line)
        except InvalidRequirement as err:
            problems.append(f"{where}: not a requirement specifier: {err}")
            continue
        if requirement.url is not None:
            scheme = urllib.parse.urlparse(requirement.url).scheme
            if scheme not in ("https", "git+https"):
                problems.append(f"{where}: {scheme or 'a local path'} is not reachable from Brain-Score's servers; "
                                "use an https:// or git+https:// URL")
            continue
        if requirement.name.lower() == PROJECT:
            why = "is not on a package index"
        elif _installed_from(requirement.name) is not None:
            why = f"is installed here from {_installed_from(requirement.name)}, not from a package index"
        else:
            continue
        problems.append(f"{where}: {requirement.name} {why}; pin it as "
                        f"'{requirement.name} @ git+https://HOST/OWNER/REPO@COMMIT'")
    return problems

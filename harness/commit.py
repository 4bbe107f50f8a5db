"""Commit exact files to git: ``git add -- PATHS`` then ``git commit --only -- PATHS``, so
nothing else that is staged or changed in the work tree goes into the commit."""
from __future__ import annotations

import subprocess
from pathlib import Path


class GitError(RuntimeError):
    """git is missing, the files are not in one work tree, or a git command failed."""


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=False)
    except OSError as err:
        raise GitError(f"cannot run git: {err.strerror or err}") from err


def repository(folder: Path) -> Path:
    """The root of the git work tree holding ``folder`` (or its nearest existing parent),
    with a committer identity configured; ``GitError`` otherwise."""
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    found = _git(existing, "rev-parse", "--show-toplevel")
    if found.returncode != 0:
        raise GitError(f"{folder} is not inside a git work tree")
    root = Path(found.stdout.strip()).resolve()
    if _git(root, "var", "GIT_COMMITTER_IDENT").returncode != 0:
        raise GitError(f"git in {root} has no committer identity: set user.name and user.email")
    return root


def commit(repo: Path, paths: list[Path], message: str) -> bool:
    """Commit exactly ``paths`` (inside ``repo``) with ``message``; False when none of them
    changed since the last commit."""
    relative = [Path(p).resolve().relative_to(repo).as_posix() for p in paths]
    added = _git(repo, "add", "--", *relative)
    if added.returncode != 0:
        raise GitError(f"git add failed: {added.stderr.strip()}")
    if _git(repo, "diff", "--cached", "--quiet", "--", *relative).returncode == 0:
        return False
    done = _git(repo, "commit", "--quiet", "-m", message, "--only", "--", *relative)
    if done.returncode != 0:
        raise GitError(f"git commit failed: {done.stderr.strip()}")
    return True

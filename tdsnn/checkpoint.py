"""Model checkpoints: safetensors tensors with the model config in the header.

A weights file alone rebuilds its model: ``load_model(path)``. Writes are atomic
(temporary file + ``os.replace``), and reads can be pinned to a sha256. Weights from
elsewhere (torchvision, the Hugging Face hub) are plain ``torch.save`` state_dicts, read
with ``read_state_dict``.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any, Callable, Optional, Union

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from .config import ModelConfig

PathLike = Union[str, os.PathLike]


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt, or does not match what was asked for."""


class WeightsUnavailable(CheckpointError):
    """Hub-hosted weights that cannot be fetched here (offline) and are not in the local cache."""


def sha256_file(path: PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def state_sha256(model: nn.Module) -> str:
    """sha256 of a model's state_dict (names, dtypes, shapes and values): a content
    fingerprint for models that do not come from a file."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def atomic_write(path: PathLike, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, flush it to disk, then move
    it into place: ``path`` holds either its old or its complete new contents, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the usual permissions
        _fsync(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    with contextlib.suppress(OSError):  # not every file system syncs folders
        _fsync(path.parent)


def atomic_write_text(path: PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (see ``atomic_write``)."""
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def read_json(path: PathLike) -> Any:
    """The JSON document in ``path``; ``CheckpointError`` when it is missing or unreadable."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path} is unreadable: {err}") from err


def _fsync(path: PathLike) -> None:
    """Flush a file's (or folder's) contents to disk, so a rename never outlives its data."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_model(model: nn.Module, path: PathLike, half: bool = False, clusters: bool = True) -> str:
    """Write ``model``'s state_dict and config to ``path``; returns the file's sha256.

    ``half`` stores parameters and batch-norm statistics as float16; other buffers
    (cortical-sheet positions, clusters) keep their dtype so they restore bit-exactly.
    ``clusters=False`` leaves out the cortical sheets' clusters, the STC loss's sampling
    state (often larger than the weights); loading resamples them from the positions.
    """
    params = {name for name, _ in model.named_parameters()}
    state = {}
    for name, tensor in model.state_dict().items():
        if not clusters and name.startswith("sheets.") and name.endswith(".clusters"):
            continue
        tensor = tensor.detach().cpu().contiguous()
        if half and tensor.is_floating_point() and (name in params or name.endswith(("running_mean", "running_var"))):
            tensor = tensor.half()
        state[name] = tensor
    metadata = {"config": json.dumps(model.config.to_dict())}
    atomic_write(path, lambda tmp: save_file(state, tmp, metadata=metadata))
    return sha256_file(path)


def check_file(path: PathLike, expected_sha256: Optional[str] = None) -> Path:
    """``path`` after checking that it exists and, when ``expected_sha256`` is given, matches it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if expected_sha256 is not None:
        actual = sha256_file(path)
        if actual != expected_sha256:
            raise CheckpointError(f"sha256 mismatch for {path}: expected {expected_sha256}, got {actual} "
                                  "(the file is corrupt or is not the registered checkpoint)")
    return path


def _read(path: Path, tensors: bool) -> tuple[ModelConfig, Optional[dict[str, torch.Tensor]]]:
    """The model config in the safetensors header of ``path`` and, with ``tensors``, its tensors."""
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        state = load_file(str(path)) if tensors else None
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path} is not a readable safetensors checkpoint: {err}") from err
    if "config" not in metadata:
        raise CheckpointError(f"{path} has no tdsnn model config in its header")
    try:
        return ModelConfig.from_dict(json.loads(metadata["config"])), state
    except (ValueError, TypeError, AttributeError) as err:  # JSONDecodeError is a ValueError
        raise CheckpointError(f"{path}: the model config in its header is corrupt: {err}") from err


def read_config(path: PathLike) -> ModelConfig:
    """The model config of a checkpoint, read from its header alone (the tensors are not loaded)."""
    return _read(check_file(path), tensors=False)[0]


def read_checkpoint(path: PathLike, expected_sha256: Optional[str] = None) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    """Config and tensors of a checkpoint, after checking it exists, parses and matches the sha256."""
    return _read(check_file(path, expected_sha256), tensors=True)


def read_state_dict(path: PathLike, expected_sha256: Optional[str] = None) -> dict[str, torch.Tensor]:
    """A ``torch.save``d state_dict (torchvision / TopoNets format), read with ``weights_only=True``
    after the checks of ``check_file``."""
    path = check_file(path, expected_sha256)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as err:
        raise CheckpointError(f"{path} is not a readable torch state_dict: {err}") from err
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} does not hold a state_dict (a dict of tensors)")
    return state


def load_state(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load ``state`` into ``model`` strictly, casting to the model's dtypes; clear error on mismatch."""
    own = model.state_dict()
    cast = {k: (v.to(own[k].dtype) if k in own and v.is_floating_point() else v) for k, v in state.items()}
    try:
        model.load_state_dict(cast, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"{source} does not fit {model.config.arch}: {err}") from err

"""The checkpoint file: a dict written atomically, never over an existing file unless asked, and read back with
``torch.load(weights_only=True)``, so reading a checkpoint runs no code.

What goes in it is the model's (``Algorithm.state``: algorithm, env, spaces, config, networks, optimizers,
normalizers, counters); rebuilding a model from it is ``natgrad.algos.loading.load``, which runs no code the file names
either: an env named by ``module:...`` is imported only if the user trusts the file (``trust_env=True``).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from natgrad.errors import NatgradError

FORMAT = "natgrad-checkpoint"
VERSION = 1


def write(payload: dict[str, Any], path: str | Path, overwrite: bool = False) -> Path:
    """Write ``payload`` (tensors, and plain data) to ``path`` atomically; an existing file is kept unless
    ``overwrite=True``."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise NatgradError(f"{path} already exists: choose another path or pass overwrite=True")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save({"format": FORMAT, "version": VERSION, **payload}, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def read(path: str | Path) -> dict[str, Any]:
    """The checkpoint's contents, every tensor on the CPU whatever device wrote it (``Algorithm.restore`` copies them
    to the model's), or a one-line NatgradError saying what is wrong with the file."""
    path = Path(path)
    if path.is_dir():
        raise NatgradError(f"{path} is a directory: pass a checkpoint file such as {path}/model.pt")
    if not path.exists():
        raise NatgradError(f"no checkpoint at {path}: check the path")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a damaged file
        raise NatgradError(
            f"{path} is not a readable natgrad checkpoint (corrupt or truncated: {type(e).__name__}): "
            "pass a file written by model.save or natgrad train"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise NatgradError(f"{path} is not a natgrad checkpoint: pass a file written by model.save or natgrad train")
    if payload.get("version") != VERSION:
        raise NatgradError(f"{path} has checkpoint version {payload.get('version')}; this natgrad reads {VERSION}")
    return payload

"""Tuned hyperparameters per algorithm and environment, shipped as one TOML file per algorithm.

``presets/<algo>.toml`` holds one table per env id with the values that differ from the
algorithm's config defaults. A table may name ``extends = "<other table>"`` to start from
another one; tables whose names start with ``_`` are such shared bases, not envs. A file whose
only key is ``same_as = "<other algo>"`` takes that algorithm's presets as they are.
"""

from __future__ import annotations

import json
import sys
from functools import cache
from pathlib import Path
from typing import Any

from natgrad.errors import NatgradError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

PRESET_DIR = Path(__file__).parent / "presets"


@cache
def presets(algo: str) -> dict[str, dict[str, Any]]:
    """{env id: {option: value}} for ``algo`` (its CLI name), with ``extends`` resolved."""
    path = PRESET_DIR / f"{algo}.toml"
    if not path.exists():
        return {}
    with open(path, "rb") as f:
        tables = tomllib.load(f)
    if "same_as" in tables:
        return presets(tables["same_as"])
    return {name: _resolve(tables, name, path) for name in tables if not name.startswith("_")}


def preset(algo: str, env_id: str) -> dict[str, Any]:
    """The preset of ``algo`` on ``env_id``, or {} when there is none."""
    return dict(presets(algo).get(env_id, {}))


def preset_file(path: str | Path, env_id: str) -> dict[str, Any]:
    """The preset for ``env_id`` in a TOML file of the shipped presets' form (one table per env id, ``extends``
    resolved), such as the one ``natgrad tune`` writes; a one-line NatgradError if it has none."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            tables = tomllib.load(f)
    except OSError as e:
        raise NatgradError(f"cannot read the preset file {path} ({e.strerror}): check the path") from None
    except tomllib.TOMLDecodeError as e:
        raise NatgradError(f"{path} is not valid TOML ({e}): fix the file") from None
    envs = sorted(name for name, table in tables.items() if isinstance(table, dict) and not name.startswith("_"))
    if env_id not in envs:
        raise NatgradError(f"{path} has no preset for {env_id} (it has {', '.join(envs) or 'no env table'}): "
                           f"add a [{json.dumps(env_id)}] table of options")
    return _resolve(tables, env_id, path)


def _resolve(tables: dict[str, dict[str, Any]], name: str, path: Path, seen: tuple[str, ...] = ()) -> dict[str, Any]:
    if name in seen:
        raise NatgradError(f"{path}: presets extend each other in a cycle {' -> '.join((*seen, name))}")
    if name not in tables:
        raise NatgradError(f"{path}: {seen[-1]!r} extends {name!r}, which is not a table of that file")
    table = dict(tables[name])
    base = table.pop("extends", None)
    return {**_resolve(tables, base, path, (*seen, name)), **table} if base else table

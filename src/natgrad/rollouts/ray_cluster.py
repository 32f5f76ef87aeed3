"""Connecting to Ray, the optional extra: one clear line when it is missing or its cluster cannot be reached.

Nothing here imports Ray at module level, so ``import natgrad`` never does.
"""

from __future__ import annotations

import socket
from types import ModuleType

from natgrad.errors import NatgradError, one_line

INSTALL_HINT = "pip install natgrad[ray]"
REACH_TIMEOUT = 5.0  # seconds to wait for a HOST:PORT to accept a connection


def require_ray() -> ModuleType:
    """The ``ray`` module, or a NatgradError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise NatgradError(f"--workers/--ray-address need Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


def connect(address: str | None = None) -> ModuleType:
    """Ray, initialized: this process's running instance if it has one, else the cluster at ``address``.

    ``address`` is "auto" (the cluster started on this machine by ``ray start --head``), "HOST:PORT"
    (its head node, port 6379 by default), "ray://HOST:PORT", or "local" (a new private instance); None
    is Ray's default: the cluster running on this machine if there is one, else a new local instance.
    """
    ray = require_ray()
    if ray.is_initialized():
        return ray
    if address not in (None, "auto", "local"):
        check_reachable(address)
    try:
        ray.init(address=address, logging_level="ERROR", include_dashboard=False)
    except (ConnectionError, ValueError) as e:
        raise NatgradError(f"cannot connect to Ray at --ray-address {address!r} ({one_line(e)}): start a cluster "
                           "with `ray start --head` or pass its HOST:PORT; a cluster with token authentication "
                           "also needs RAY_AUTH_MODE=token and its token (`ray get-auth-token`) here") from None
    return ray


def check_reachable(address: str) -> None:
    """Refuse, within seconds, a HOST:PORT that is malformed or where nothing listens (Ray itself waits minutes)."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    host = host.strip("[]")  # [::1]:6379
    if not sep or not host or not port.isdigit():
        raise NatgradError(f"invalid --ray-address {address!r}: use auto, HOST:PORT (e.g. 10.0.0.1:6379) "
                           "or ray://HOST:PORT")
    try:
        socket.create_connection((host, int(port)), timeout=REACH_TIMEOUT).close()
    except OSError as e:
        raise NatgradError(f"no Ray cluster answers at --ray-address {address} ({one_line(e)}): "
                           "start one with `ray start --head` there, or check the host and port") from None


def check_cpus(count: int, cpus: float, option: str) -> None:
    """Refuse ``count`` tasks of ``cpus`` CPUs each that the cluster cannot hold at once (Ray would wait forever)."""
    import ray

    total = ray.cluster_resources().get("CPU", 0.0)
    if count * cpus > total:
        raise NatgradError(f"{count} × {cpus:g} CPUs is more than the Ray cluster's {total:g}: "
                           f"pass {option} {total / count:g} (or less), or add nodes")

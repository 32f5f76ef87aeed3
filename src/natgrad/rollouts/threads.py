"""How many threads torch uses while natgrad computes, set on entry and restored on exit.

Small networks run fastest on one thread: with torch's default (one per core) a CartPole
``learn`` slows down many times over as soon as another job shares the machine. natgrad sets
its own count only around its own work (``learn``, ``predict``, evaluation), so a user's other
torch code keeps the count it had.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from natgrad.errors import NatgradError


def check_threads(threads: int | None, option: str | None = None) -> int | None:
    """``threads`` if it is None (leave torch's count alone) or an integer >= 1; else a one-line error. ``option``:
    the command-line option that gave it (``--threads``), which takes no None."""
    if threads is not None and not (isinstance(threads, int) and not isinstance(threads, bool) and threads >= 1):
        given, keep = (f"{option} {threads}", "") if option else (f"threads={threads!r}",
                                                                   " or None to keep torch's own setting")
        raise NatgradError(f"invalid {given}: must be an integer >= 1 (1 is fastest for small networks){keep}")
    return threads


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(threads)`` (None: unchanged), then restore the old count."""
    if threads is None or threads == torch.get_num_threads():
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)

"""Deterministic fault injection for the write paths: every file-system operation that
changes something (create, write-open, fsync, chmod, mkdir, rename, exchange, unlink, rmdir)
is counted, and the Nth one either kills the run or fails with an errno.

A kill is simulated in the process: the Nth operation raises ``Killed`` (a BaseException
that no liftlab handler catches) and every later operation raises it again without doing
anything, so clean-up code in ``finally``/``except`` blocks cannot touch the disk, exactly as
after a SIGKILL. The real SIGKILL of a subprocess is exercised separately."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from liftlab.core import fsio

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
OS_CALLS = ("open", "replace", "rename", "unlink", "remove", "rmdir", "mkdir", "fsync",
            "chmod")


class Killed(BaseException):
    """The run died here (simulated SIGKILL)."""


@dataclass
class Injector:
    at: int | None = None  # the operation that fails (1-based); None: only count
    errno: int | None = None  # fail with this errno; None: kill
    count: int = 0
    dead: bool = False

    def wrap(self, name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def fake(*args: Any, **kwargs: Any) -> Any:
            if name == "open" and not (args[1] & WRITE_FLAGS):
                return real(*args, **kwargs)
            if self.dead:
                raise Killed(name)
            self.count += 1
            if self.count == self.at:
                if self.errno is None:
                    self.dead = True
                    raise Killed(name)
                raise OSError(self.errno, os.strerror(self.errno), str(args[0]))
            if name == "fsync":
                return None  # counted, but the tests need not wait for the disk
            return real(*args, **kwargs)

        return fake


@contextlib.contextmanager
def inject(at: int | None = None, errno: int | None = None) -> Iterator[Injector]:
    injector = Injector(at, errno)
    with pytest.MonkeyPatch.context() as mp:
        for name in OS_CALLS:
            mp.setattr(os, name, injector.wrap(name, getattr(os, name)))
        mp.setattr(fsio, "_exchange", injector.wrap("exchange", fsio._exchange))
        yield injector


def count_operations(run: Callable[[], object]) -> int:
    with inject() as injector:
        run()
    return injector.count

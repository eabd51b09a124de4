"""``sedc explain --ray``: joining the cluster before any image, keeping Ray off stdout, and
telling the user about actors and nodes that die.

- The cluster is joined before the progress bar starts; one that cannot be joined is a usage
  error (exit 2) with one line naming the address and the cause, and no image is marked failed.
- While Ray runs, ``sys.stdout`` is ``DIR/ray.log``: Ray's driver prints the messages it gets
  from the cluster there (a dead raylet's state dump, for instance), and sedc writes its own
  lines to the real stdout, which it keeps.
- Each actor death is one line on stderr and is counted in the summary.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, TextIO

from ..base.errors import UsageError

RAY_LOG = "ray.log"


@dataclass
class Session:
    """Where sedc writes its result lines, and the Ray events of the run (none without Ray)."""

    stdout: TextIO
    events: list[Any] = field(default_factory=list)
    log: Path | None = None
    report: Callable[[str], None] | None = None

    def on_event(self, event: Any) -> None:
        """Record an actor death and say it on stderr."""
        self.events.append(event)
        if self.report is not None:
            self.report(f"warning: {event} (Ray's messages: {self.log})")

    def summary(self) -> list[str]:
        """The summary's Ray line, when an actor died."""
        if not self.events:
            return []
        nodes = sorted({e.node for e in self.events if e.node_gone})
        retried = sum(e.requeued for e in self.events)
        given_up = sum(e.given_up for e in self.events)
        where = f" (nodes lost: {', '.join(nodes)})" if nodes else ""
        deaths = f"{len(self.events)} actor{'s' * (len(self.events) != 1)} died{where}"
        return [f"Ray: {deaths}; {retried} image{'s' * (retried != 1)} retried on the surviving actors, "
                f"{given_up} given up; Ray's messages in {self.log}"]


@contextlib.contextmanager
def backend_session(args: argparse.Namespace, folder: Path, report: Callable[[str], None]
                    ) -> Iterator[Session]:
    """A :class:`Session` for the run: with ``--ray``, joined to the cluster and left at the end.

    Parameters
    ----------
    args : argparse.Namespace
        The ``sedc explain`` arguments (``ray``, ``ray_timeout``).
    folder : Path
        The output folder, where ``ray.log`` is written.
    report : callable
        Writes one line to the user (stderr).

    Raises
    ------
    UsageError
        Ray is not installed, or the cluster cannot be joined.
    """
    if args.ray is None:
        yield Session(sys.stdout)
        return
    if getattr(args, "devices", None) is not None:
        raise UsageError("--ray and --devices exclude each other (Ray places its actors itself)")
    ray = _import_ray()
    log = folder / RAY_LOG
    real_stdout = sys.stdout
    with open(log, "a", encoding="utf-8", buffering=1) as sink, contextlib.redirect_stdout(sink):
        join(ray, args.ray, args.ray_timeout)
        try:
            yield Session(real_stdout, log=log, report=report)
        finally:
            ray.shutdown()


def _import_ray() -> Any:
    from ..scale.ray import import_ray

    try:
        return import_ray()
    except ImportError as err:
        raise UsageError(str(err)) from None


def join(ray: Any, address: str, timeout: float) -> None:
    """Connect to ``address``; a failure is a usage error naming the address and the cause."""
    from ..base.errors import RayConnectError
    from ..scale.ray_connect import connect

    try:
        connect(ray, address, timeout, log_to_driver=False, logging_level=logging.WARNING)
    except RayConnectError as err:
        raise UsageError(str(err)) from None

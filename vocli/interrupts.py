"""Ctrl-C and SIGTERM as a flag that code checks at safe points, instead of an exception anywhere.

Python runs a signal handler between any two bytecodes of the main thread. When that is
inside a weakref callback or a ``__del__`` (h5py and multiprocessing run many), the
``KeyboardInterrupt`` the handler raises is printed as "Exception ignored in ..." and lost:
the run goes on as if nothing happened. Inside ``DeferredSignals`` the handlers only record
the signal; ``check()`` (called between chunks of work, around file writes, while waiting
for workers) hands it to the handler that was there before, which raises at that safe point.

Usage::

    with DeferredSignals() as signals:
        for chunk in work:
            signals.check()
            write(chunk)
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from typing import Iterator

#: The signals deferred by default: Ctrl-C and ``kill``'s default.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class DeferredSignals:
    """Context manager: ``signals`` arriving inside it are delivered at ``check()`` (or at the end).

    Delivery calls the handler that was installed on entry (Python's ``default_int_handler``
    raises ``KeyboardInterrupt``; the CLI's SIGTERM handler records it and raises the same).
    A signal whose handler was the system default is delivered as ``SystemExit(128 + signum)``,
    so ``finally`` blocks still clean up, with the exit status the signal would have given.
    Ignored signals stay ignored. Outside the main thread (where Python handles no signals)
    it does nothing. On leaving with an exception, signals still pending are dropped: the
    run is already stopping. A process forked inside the block (a pool's worker) that gets a
    signal before it sets its own handlers dies of it, as by default, instead of recording it.

    ``released()`` opens a window for long work that touches no h5py (matching a chunk of
    annotations in this process): there a signal is delivered at once, and stays pending for
    the next ``check()`` in case Python lost that delivery in a callback.
    """

    def __init__(self, signals: tuple[int, ...] = STOP_SIGNALS):
        self.signals = signals
        self.pending: list[int] = []
        self._previous: dict[int, object] = {}
        self._pid = os.getpid()
        self._eager = False

    def __enter__(self) -> "DeferredSignals":
        if threading.current_thread() is not threading.main_thread():
            return self
        self._pid = os.getpid()
        for signum in self.signals:
            handler = signal.getsignal(signum)
            if handler is None or handler == signal.SIG_IGN:  # set outside Python, or ignored: left alone
                continue
            self._previous[signum] = handler
            signal.signal(signum, self._record)
        return self

    def _record(self, signum: int, frame) -> None:
        if os.getpid() != self._pid:  # a forked child that inherited the handler: die of it
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        self.pending.append(signum)
        if self._eager:
            self._deliver(signum)

    @contextlib.contextmanager
    def released(self) -> Iterator[None]:
        """Inside, signals are delivered as they arrive (those pending first), as without the block.

        A delivery that Python loses (raised inside a weakref callback or ``__del__``, "Exception
        ignored in ...") stays pending, so the ``check()`` after the window delivers it again.
        """
        self.check()
        self._eager = True
        try:
            yield
        except BaseException:
            self.pending.clear()  # delivered, or the work failed anyway
            raise
        finally:
            self._eager = False

    def check(self) -> None:
        """Deliver a signal that arrived since the last check (normally: raise ``KeyboardInterrupt``)."""
        if self.pending:
            signum = self.pending[0]
            self.pending.clear()
            self._deliver(signum)

    def _deliver(self, signum: int) -> None:
        handler = self._previous.get(signum)
        if callable(handler):
            handler(signum, None)
        elif handler == signal.SIG_DFL:
            raise SystemExit(128 + signum)

    def __exit__(self, exc_type, exc, tb) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        previous, self._previous = self._previous, {}
        if exc_type is None and self.pending:
            self._previous = previous
            try:
                self.check()
            finally:
                self._previous = {}
        self.pending.clear()

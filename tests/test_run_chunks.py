"""The converters' chunked process pool."""

from __future__ import annotations

import signal

from converters._common import run_chunks


def _sigint_handler(_job: int):
    return signal.getsignal(signal.SIGINT)


def test_workers_leave_ctrl_c_to_the_parent():
    # Ctrl-C reaches the whole process group; only the parent reports it (no worker tracebacks).
    handlers = list(run_chunks(_sigint_handler, [1, 2, 3, 4], workers=2, sizes=[1] * 4))
    assert handlers == [signal.SIG_IGN] * 4
    assert signal.getsignal(signal.SIGINT) is not signal.SIG_IGN  # the parent's own handler is untouched

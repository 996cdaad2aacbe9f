"""How long this process has run: the "done in" of every command is the whole command.

``process_seconds()`` measures from the moment the kernel started the process (so the
interpreter's start and every import count, as a user's stopwatch would), read on Linux
from ``/proc/self/stat`` (field 22, ``starttime``, in clock ticks since boot) against
``/proc/uptime``; both tick every 10 ms, so the figure is within about 20 ms. Elsewhere it
falls back to the time ``vocli`` was first imported (``STARTED``), which leaves out the
interpreter's own start (about 20 ms). The commands take it just before printing their
result, so the printing itself (a few ms) is the only part of the command left out.
"""

from __future__ import annotations

import os
import time

#: ``time.monotonic()`` when this module was first imported (vocli/__init__ imports it first).
STARTED = time.monotonic()


def _kernel_seconds() -> float | None:
    try:
        with open("/proc/self/stat", "rb") as f:
            stat = f.read()
        with open("/proc/uptime", "rb") as f:
            uptime = float(f.read().split()[0])
        # The command name (field 2) is in parentheses and may hold spaces: count after its ')'.
        ticks = int(stat[stat.rindex(b")") + 2:].split()[19])
        return uptime - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def process_seconds() -> float:
    """Seconds since this process started (see the module docstring for what counts)."""
    seconds = _kernel_seconds()
    since_import = time.monotonic() - STARTED
    # A kernel figure below the time since import means it could not be trusted (a container's
    # clock, say): the import time is then the better bound.
    return seconds if seconds is not None and seconds >= since_import else since_import

"""The converters' chunked process pool."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys

import pytest

from converters._common import HelperTraceback, _take, gather_chunks, run_chunks
from vocli.errors import VocliError


def _sigint_handler(_job: int):
    return signal.getsignal(signal.SIGINT)


def test_workers_leave_ctrl_c_to_the_parent(default_sigint):
    # Ctrl-C reaches the whole process group; only the parent reports it (no worker tracebacks).
    handlers = list(run_chunks(_sigint_handler, [1, 2, 3, 4], workers=2, sizes=[1] * 4))
    assert handlers == [signal.SIG_IGN] * 4
    assert signal.getsignal(signal.SIGINT) is not signal.SIG_IGN  # the parent's own handler is untouched


# gather_chunks: the calling process and forked helpers share the jobs.

_PARENT = os.getpid()
_FORK = multiprocessing.get_context("fork")
# Synchronisation without sleeps: created before any fork, so helpers share them.
_HELPER_STARTED = _FORK.Event()   # a helper took a job
_PARENT_STARTED = _FORK.Event()   # the calling process took a job
_EVERYONE = [_FORK.Barrier(1)]    # replaced per test: each process's first job waits for all
_ARRIVED = [False]                # per process (forked copies): passed the barrier already
WAIT_S = 60  # a safety net only: the events come within milliseconds


@pytest.fixture(autouse=True)
def _fresh_events():
    _HELPER_STARTED.clear()
    _PARENT_STARTED.clear()
    _ARRIVED[0] = False


def _caller_and_a_helper_meet() -> None:
    """Each side says it holds a job and waits until the other does: both take part."""
    mine, other = (_PARENT_STARTED, _HELPER_STARTED) if os.getpid() == _PARENT else (_HELPER_STARTED, _PARENT_STARTED)
    mine.set()
    assert other.wait(WAIT_S)


def _square(job: int) -> tuple[int, int]:
    if not _ARRIVED[0]:  # each process's first job waits until every process has one
        _ARRIVED[0] = True
        _EVERYONE[0].wait(WAIT_S)
    return job * job, os.getpid()


def _square_quickly(job: int) -> tuple[int, int]:
    return job * job, os.getpid()


def _fails_in_helper(job: int) -> int:
    if os.getpid() != _PARENT:
        _HELPER_STARTED.set()
        raise ValueError(f"job {job} failed")
    assert _HELPER_STARTED.wait(WAIT_S)  # the helper takes a job while the caller holds this one
    return job


def _dies_in_helper(job: int) -> int:
    if os.getpid() != _PARENT:
        _HELPER_STARTED.set()
        os._exit(3)
    assert _HELPER_STARTED.wait(WAIT_S)
    return job


class _Unpicklable(Exception):
    def __reduce__(self):
        raise TypeError("not picklable")


class _NotRebuilt(Exception):
    def __init__(self, path, reason):  # pickles as (args,), which this __init__ cannot take back
        super().__init__(f"{path}: {reason}")


def _unpicklable_failure_in_helper(job: int) -> int:
    if os.getpid() != _PARENT:
        _HELPER_STARTED.set()
        raise _Unpicklable("boom")
    assert _HELPER_STARTED.wait(WAIT_S)
    return job


def _unrebuildable_failure_in_helper(job: int) -> int:
    if os.getpid() != _PARENT:
        _HELPER_STARTED.set()
        raise _NotRebuilt("a.xml", "bad")
    assert _HELPER_STARTED.wait(WAIT_S)
    return job


def _fails_in_parent(job: int) -> int:
    if os.getpid() == _PARENT:
        _PARENT_STARTED.set()
        raise KeyError("parent job")
    assert _PARENT_STARTED.wait(WAIT_S)  # helpers leave jobs for the caller until it has one
    return job


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_gather_chunks_returns_every_result_in_job_order(workers):
    seen = []
    _EVERYONE[0] = _FORK.Barrier(workers)
    results = gather_chunks(_square, list(range(40)), workers, sizes=[2] * 40,
                            progress=lambda done, total: seen.append((done, total)))
    assert [r for r, _ in results] == [j * j for j in range(40)]
    pids = {pid for _, pid in results}
    assert _PARENT in pids  # the calling process works too
    assert len(pids) == workers  # and each helper took jobs (each first job waits for all of them)
    assert seen[0] == (0, 80) and seen[-1] == (80, 80)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert multiprocessing.active_children() == []


def test_gather_chunks_with_no_jobs_or_one():
    assert gather_chunks(_square_quickly, [], 2, sizes=[]) == []
    assert gather_chunks(_square_quickly, [3], 2, sizes=[1]) == [(9, _PARENT)]


def test_gather_chunks_helpers_leave_ctrl_c_to_the_parent(default_sigint):
    handlers = gather_chunks(_sigint_handler_slowly, list(range(8)), 2, sizes=[1] * 8)
    by_process = dict((pid, handler) for handler, pid in handlers)
    assert by_process.pop(_PARENT) is not signal.SIG_IGN
    assert list(by_process.values()) == [signal.SIG_IGN]


def _sigint_handler_slowly(_job: int):
    _caller_and_a_helper_meet()  # so both the caller and a helper answer
    return signal.getsignal(signal.SIGINT), os.getpid()


def test_gather_chunks_raises_a_helpers_error_in_the_caller():
    with pytest.raises(ValueError, match="failed") as raised:
        gather_chunks(_fails_in_helper, list(range(6)), 2, sizes=[1] * 6)
    # With the helper's own traceback as its cause, for --debug.
    assert isinstance(raised.value.__cause__, HelperTraceback)
    assert "_fails_in_helper" in str(raised.value.__cause__)
    assert multiprocessing.active_children() == []


def test_gather_chunks_raises_the_callers_own_error_and_stops_the_helpers():
    with pytest.raises(KeyError, match="parent job"):
        gather_chunks(_fails_in_parent, list(range(6)), 2, sizes=[1] * 6)
    assert multiprocessing.active_children() == []


def test_gather_chunks_reports_a_helper_that_died():
    with pytest.raises(VocliError, match=r"worker process stopped unexpectedly \(exit code 3\)"):
        gather_chunks(_dies_in_helper, list(range(6)), 2, sizes=[1] * 6)
    assert multiprocessing.active_children() == []


def test_gather_chunks_words_an_error_that_cannot_travel():
    with pytest.raises(RuntimeError, match=r"in a worker process: _Unpicklable\('boom'\)"):
        gather_chunks(_unpicklable_failure_in_helper, list(range(6)), 2, sizes=[1] * 6)
    _HELPER_STARTED.clear()
    with pytest.raises(RuntimeError, match=r"in a worker process: _NotRebuilt\('a.xml: bad'\)"):
        gather_chunks(_unrebuildable_failure_in_helper, list(range(6)), 2, sizes=[1] * 6)
    assert multiprocessing.active_children() == []


def test_gather_chunks_helpers_do_not_repeat_unflushed_output():
    # A forked process holds a copy of the caller's stdout buffer, and flushes it when it ends:
    # the buffer must be empty at the fork. stdout is a pipe here, so fully buffered.
    script = ("import time\n"
              "from converters._common import gather_chunks\n"
              "def nap(job):\n"
              "    time.sleep(0.005)\n"
              "    return job\n"
              "print('said once', end='')\n"
              "assert gather_chunks(nap, list(range(8)), 3, sizes=[1] * 8) == list(range(8))\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out == "said once"


def _gather_in_a_pool_worker(jobs: list[int]) -> list:
    return [r for r, _ in gather_chunks(_square_quickly, jobs, 2, sizes=[1] * len(jobs))] + [
        list(run_chunks(abs, [-1, -2], 2, sizes=[1, 1]))]


def test_chunks_called_from_a_daemonic_process_run_there():
    # A pool's worker may not start processes: both ways fall back to working in that process.
    with multiprocessing.get_context("fork").Pool(1) as pool:
        assert pool.apply(_gather_in_a_pool_worker, ([1, 2, 3],)) == [1, 4, 9, [1, 2]]


def test_taking_a_job_gives_up_when_the_counters_lock_died_with_its_holder():
    counter = multiprocessing.get_context("fork").Value("q", 0)
    assert [_take(counter, 2, lambda: False) for _ in range(3)] == [0, 1, None]
    holder = os.fork()
    if holder == 0:  # killed while holding the lock: it is never released
        counter.get_lock().acquire()
        os._exit(9)
    os.waitpid(holder, 0)
    checks = []
    assert _take(counter, 5, lambda: checks.append(1) or True) is None
    assert checks == [1]  # asked once the lock had stayed taken for a while

"""The chunked process pool of the converters and of the bulk XML reading (the standard library's Pool)."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time

import pytest

from converters._common import run_chunks

_PARENT = os.getpid()


def _sigint_handler(_job: int):
    return signal.getsignal(signal.SIGINT)


def test_workers_leave_ctrl_c_to_the_parent(default_sigint):
    # Ctrl-C reaches the whole process group; only the parent reports it (no worker tracebacks).
    handlers = list(run_chunks(_sigint_handler, [1, 2, 3, 4], workers=2, sizes=[1] * 4))
    assert handlers == [signal.SIG_IGN] * 4
    assert signal.getsignal(signal.SIGINT) is not signal.SIG_IGN  # the parent's own handler is untouched


def _square_slowly(job: int) -> tuple[int, int]:
    time.sleep(0.002 * (job % 3))  # jobs finish out of order
    return job * job, os.getpid()


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_results_in_job_order_with_progress(workers):
    seen = []
    results = list(run_chunks(_square_slowly, list(range(40)), workers, sizes=[2] * 40,
                              progress=lambda done, total: seen.append((done, total))))
    assert [r for r, _ in results] == [k * k for k in range(40)]
    assert seen[0] == (0, 80) and seen[-1] == (80, 80) and seen == sorted(seen)
    pids = {pid for _, pid in results}
    assert (pids == {_PARENT}) == (workers == 1)


def _fails(job: int) -> int:
    if job == 3:
        raise ValueError(f"job {job} failed")
    return job


def test_a_workers_error_is_raised_in_the_caller():
    with pytest.raises(ValueError, match="job 3 failed"):
        list(run_chunks(_fails, list(range(6)), 2, sizes=[1] * 6))


def _chunks_in_a_pool_worker(jobs: list[int]) -> list:
    return [r for r, _ in run_chunks(_square_slowly, jobs, 2, sizes=[1] * len(jobs))]


def test_chunks_called_from_a_daemonic_process_run_there():
    # A pool's worker may not start processes: the work then runs in that process.
    with multiprocessing.get_context("fork").Pool(1) as pool:
        assert pool.apply(_chunks_in_a_pool_worker, ([1, 2, 3],)) == [1, 4, 9]


@pytest.mark.parametrize("workers", [1, 2])
def test_meanwhile_runs_once_in_the_caller_before_the_first_result(workers):
    calls = []
    results = run_chunks(_square_slowly, list(range(6)), workers, sizes=[1] * 6,
                         meanwhile=lambda: calls.append(os.getpid()))
    assert calls == []  # nothing runs before the results are asked for
    first = next(results)
    assert calls == [_PARENT] and first[0] == 0
    assert [r for r, _ in results] == [1, 4, 9, 16, 25] and calls == [_PARENT]

"""Worker threads: huey's consumer, run inside ``sibyl serve`` (embedded) or as the main loop of
a ``sibyl worker`` process.

Embedded, the consumer installs no signal handlers (uvicorn owns them) and each job thread
lowers its own OS priority (``jobs.nice``) and pins its math libraries to
``runtime.inference_threads`` threads, so jobs yield the CPU to online serving. A ``sibyl
worker`` process lowers the priority of the whole process and stops on SIGINT/SIGTERM: running
jobs are asked to stop (``JobInterrupted``) and go back to the queue without using an attempt.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from typing import TYPE_CHECKING, Any

import structlog
from huey.consumer import Consumer

if TYPE_CHECKING:
    from sibyl.jobs._housekeeping import Housekeeper
    from sibyl.jobs._queue import JobQueue
    from sibyl.settings import Settings

log = structlog.get_logger(__name__)


class _QuietConsumer(Consumer):  # type: ignore[misc]
    """huey's consumer without signal handlers (the host process owns them)."""

    def _set_signal_handlers(self) -> None:
        pass


def lower_thread_priority(nice: int) -> None:
    """Raise the calling thread's niceness by ``nice`` (Linux: threads are scheduled alone)."""
    if nice <= 0 or not hasattr(os, "setpriority"):
        return
    with contextlib.suppress(OSError):
        tid = threading.get_native_id()
        current = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, min(current + nice, 19))


class WorkerPool:
    """``threads`` huey consumer threads plus the housekeeping thread of this process."""

    def __init__(
        self,
        queue: JobQueue,
        housekeeper: Housekeeper,
        settings: Settings,
        threads: int,
        *,
        nice_threads: bool = True,
    ) -> None:
        self.queue = queue
        self.housekeeper = housekeeper
        self.threads = threads
        jobs = settings.jobs
        huey = queue.huey
        limits = settings.runtime.inference_threads

        def _thread_setup() -> None:
            from threadpoolctl import threadpool_limits

            if nice_threads:
                lower_thread_priority(jobs.nice)
            threadpool_limits(limits=limits)  # OpenMP limits apply per calling thread

        huey.on_startup(name="sibyl_worker_thread")(_thread_setup)

        self.consumer = _QuietConsumer(
            huey,
            workers=threads,
            worker_type="thread",
            periodic=False,
            initial_delay=0.05,
            backoff=1.5,
            max_delay=jobs.poll_s,
            scheduler_interval=1,
            check_worker_health=True,
        )
        self._started = False

    def start(self) -> None:
        """Start the consumer threads (they run daemon-free: call :meth:`stop`)."""
        self.housekeeper.start()
        self.consumer.start()
        self._started = True
        log.info("job_workers_started", threads=self.threads, queue=self.queue.describe())

    def stop(self, timeout: float = 10.0) -> None:
        """Interrupt running jobs, wait up to ``timeout`` seconds for the threads, stop."""
        if not self._started:
            return
        self.housekeeper.interrupt_all()
        self.consumer.shutdown_timeout = timeout
        self.consumer.stop(graceful=True)
        self.housekeeper.stop()
        self._started = False
        log.info("job_workers_stopped")

    def run_forever(self) -> None:
        """Run (starting first if needed) until SIGINT or SIGTERM (the ``sibyl worker`` main
        loop)."""
        stop = threading.Event()

        def _on_signal(signum: int, _frame: Any) -> None:
            log.info("job_worker_signal", signal=signal.Signals(signum).name)
            stop.set()

        if not self._started:
            self.start()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, _on_signal)
        next_check = time.monotonic() + 10
        while not stop.wait(0.5):
            if time.monotonic() >= next_check:
                self.consumer.check_worker_health()
                next_check = time.monotonic() + 10
        self.stop()

"""Micro-batching: the texts of requests that wait together share one forward pass on the model's worker thread.

The worker thread runs every call of the model within a time bound: whatever a call raises (a BaseException such as
the tokenizers library's PanicException included) fails that call's requests alone, and a call that overruns its
bound marks the worker stuck, so the service can say it is unhealthy instead of letting requests hang.
"""

import asyncio
import contextlib
import queue
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import Any


class WorkFailed(Exception):
    """The model raised on a request: that request fails, the service goes on."""

    def __init__(self, cause: BaseException) -> None:
        text = str(cause).strip().splitlines()[0][:300] if str(cause).strip() else ""
        super().__init__(f"{type(cause).__name__}: {text}" if text else type(cause).__name__)


class WorkTimeout(Exception):
    """A call of the model overran its time bound: the worker thread is stuck, and no further work can run."""


class ClientGone(Exception):
    """The request's client hung up before its forward pass: its work was dropped."""


class ModelThread(Executor):
    """The model's one worker thread, a daemon: a call that never returns cannot keep the process from exiting (a
    ThreadPoolExecutor's threads are joined at exit). Calls run one at a time, in order; a cancelled one is skipped."""

    def __init__(self) -> None:
        self._calls: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name="model", daemon=True)
        self._thread.start()

    def submit(self, fn: Callable, /, *args: Any, **kwargs: Any) -> Future:
        future: Future = Future()
        self._calls.put((future, fn, args, kwargs))
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._calls.put(None)
        if wait:
            self._thread.join()

    def _work(self) -> None:
        while (call := self._calls.get()) is not None:
            future, fn, args, kwargs = call
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as exc:  # noqa: BLE001 (a PanicException too: the caller decides)
                future.set_exception(exc)


async def run_bounded(executor: Executor, fn: Callable, args: tuple, timeout: float | None) -> Any:
    """`fn(*args)` on `executor`, waited for at most `timeout` seconds (None: no bound).

    WorkFailed wraps whatever it raised; WorkTimeout when it overran (the call goes on in its thread: a thread cannot be
    stopped). Cancelling the wait cancels a call that has not started.
    """
    call = asyncio.get_running_loop().run_in_executor(executor, fn, *args)
    try:
        return await asyncio.wait_for(call, timeout)
    except asyncio.TimeoutError:
        raise WorkTimeout(f"a call of the model took longer than {timeout:g} s") from None
    except (asyncio.CancelledError, KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001
        raise WorkFailed(exc) from exc


@dataclass
class _Job:
    texts: list[str]
    future: asyncio.Future
    arrived: float  # loop time
    gone: Callable[[], bool] | None  # whether its client has hung up, where the server can tell


class MicroBatcher:
    """Gathers the texts of concurrent requests into one forward pass, run on the model's worker thread.

    A batch closes when `max_batch_size` texts are waiting or when its oldest request has waited `max_wait`
    seconds; while a forward pass runs, new requests queue for the next one, so batches grow with the load.
    A request's texts are never split across batches (one with more texts than `max_batch_size` goes alone,
    `run` cutting it into forward passes), and its results do not depend on its batch: the backends mask padding.
    A request cancelled while it waits, or whose client has gone by then, is left out of its batch (ClientGone).

    A batch that raises is run again one request at a time, so only the request that caused it fails (WorkFailed).
    A forward pass longer than `timeout` seconds fails its batch with WorkTimeout and stops the batcher: `failure`
    says why, and every later request fails at once.
    """

    def __init__(self, run: Callable[[list[str]], list], executor: Executor, max_batch_size: int, max_wait: float,
                 timeout: float | None = None) -> None:
        self.run, self.executor = run, executor
        self.max_batch_size, self.max_wait, self.timeout = max_batch_size, max_wait, timeout
        self.failure: str | None = None  # why the batcher stopped, if it did
        self._jobs: deque[_Job] = deque()
        self._waiting = 0  # texts in _jobs
        self._arrived = asyncio.Event()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._serve())
        self._task.add_done_callback(self._stopped)

    async def close(self) -> None:
        """Stop gathering; requests still waiting (only after a graceful-shutdown timeout) are cancelled."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for job in self._jobs:
            job.future.cancel()

    async def submit(self, texts: list[str], gone: Callable[[], bool] | None = None) -> list:
        """One result per text, computed in a batch with whatever other requests are waiting; `gone` says whether the
        request's client has hung up (then its texts are left out: ClientGone)."""
        if self.failure is not None:
            raise WorkTimeout(self.failure)
        loop = asyncio.get_running_loop()
        job = _Job(texts, loop.create_future(), loop.time(), gone)
        self._jobs.append(job)
        self._waiting += len(texts)
        self._arrived.set()
        return await job.future

    def _stopped(self, task: asyncio.Task) -> None:
        """The serving task ended: by `close`, by a stuck forward pass, or by a bug. Fail what waits, say why."""
        if not task.cancelled() and task.exception() is not None:
            self.failure = f"the micro-batcher stopped ({WorkFailed(task.exception())})"
        if self.failure is not None:
            while self._jobs:
                job = self._jobs.popleft()
                if not job.future.done():
                    job.future.set_exception(WorkTimeout(self.failure))

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._jobs:
                self._arrived.clear()
                await self._arrived.wait()
            deadline = self._jobs[0].arrived + self.max_wait
            while self._waiting < self.max_batch_size and (left := deadline - loop.time()) > 0:
                self._arrived.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._arrived.wait(), left)
            batch = self._take()
            if not batch:
                continue
            try:
                await self._answer(batch)
            except WorkTimeout as exc:
                self.failure = str(exc)
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(exc)
                return

    async def _answer(self, batch: list[_Job]) -> None:
        """Run one forward pass for `batch` and settle each request's future; a failed batch of several requests is
        run again one request at a time. WorkTimeout goes to the caller."""
        try:
            results = await run_bounded(self.executor, self.run, ([t for job in batch for t in job.texts],), self.timeout)
        except WorkFailed as exc:
            if len(batch) == 1:
                if not batch[0].future.done():
                    batch[0].future.set_exception(exc)
                return
            for job in batch:
                if not job.future.done():
                    await self._answer([job])
            return
        start = 0
        for job in batch:
            if not job.future.done():  # not cancelled meanwhile
                job.future.set_result(results[start:start + len(job.texts)])
            start += len(job.texts)

    def _take(self) -> list[_Job]:
        """The oldest waiting requests, up to `max_batch_size` texts (at least one request)."""
        batch: list[_Job] = []
        size = 0
        while self._jobs and (not batch or size + len(self._jobs[0].texts) <= self.max_batch_size):
            job = self._jobs.popleft()
            self._waiting -= len(job.texts)
            if job.future.done():
                continue
            if job.gone is not None and job.gone():
                job.future.set_exception(ClientGone())
                continue
            batch.append(job)
            size += len(job.texts)
        return batch

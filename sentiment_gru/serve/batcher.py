"""Micro-batching: the texts of requests that wait together share one forward pass on the model's worker thread."""

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass


@dataclass
class _Job:
    texts: list[str]
    future: asyncio.Future
    arrived: float  # loop time


class MicroBatcher:
    """Gathers the texts of concurrent requests into one forward pass, run on the model's worker thread.

    A batch closes when `max_batch_size` texts are waiting or when its oldest request has waited `max_wait`
    seconds; while a forward pass runs, new requests queue for the next one, so batches grow with the load.
    A request's texts are never split across batches (one with more texts than `max_batch_size` goes alone,
    `run` cutting it into forward passes), and its results do not depend on its batch: the backends mask padding.
    """

    def __init__(self, run: Callable[[list[str]], list], executor: ThreadPoolExecutor, max_batch_size: int, max_wait: float) -> None:
        self.run, self.executor = run, executor
        self.max_batch_size, self.max_wait = max_batch_size, max_wait
        self._jobs: deque[_Job] = deque()
        self._waiting = 0  # texts in _jobs
        self._arrived = asyncio.Event()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._serve())

    async def close(self) -> None:
        """Stop gathering; requests still waiting (only after a graceful-shutdown timeout) are cancelled."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for job in self._jobs:
            job.future.cancel()

    async def submit(self, texts: list[str]) -> list:
        """One result per text, computed in a batch with whatever other requests are waiting."""
        loop = asyncio.get_running_loop()
        job = _Job(texts, loop.create_future(), loop.time())
        self._jobs.append(job)
        self._waiting += len(texts)
        self._arrived.set()
        return await job.future

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
                results = await loop.run_in_executor(self.executor, self.run, [t for job in batch for t in job.texts])
            except Exception as exc:  # a bug, not the input: every request of the batch gets the 500
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(exc)
                continue
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
            if not job.future.done():
                batch.append(job)
                size += len(job.texts)
        return batch

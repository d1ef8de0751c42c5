"""Where jobs run: in the receiving process, or spread over worker processes.

Decoding and flattening a request holds Python's GIL, so one process tops out well below
what two cores can do (bench/RESULTS.md). With ``--workers N`` the collector's front process
only frames requests, and N spawned workers run them: each has its own group commit and
writes its own segments into the same store (segment names are unique), and answers only
once its segment is durable, so an acknowledgement means on disk exactly as before. Jobs go
over pipes to whichever channel is free, so load spreads over the workers however few
client connections there are. A request's body goes through shared memory (each channel has
a slot; only a bigger body takes the pipe): a 320 KB body through a pipe cost ≈ 0.3 ms of
CPU and, since the worker's thread must be scheduled to drain it, ≈ 0.9 ms of latency on
average at saturation. A worker that dies is replaced (its in-flight requests get
503 and are retried by their exporters); workers exit when the front process goes away,
``kill -9`` included, because their pipes close.
"""

from __future__ import annotations

import fcntl
import logging
import mmap
import multiprocessing as mp
import os
import queue
import signal
import tempfile
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.reduction import recv_handle, send_handle
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from collector.exporters.parquet import publish_wals
from collector.jobs import UNAVAILABLE, Job, Outcome
from inferledger.store import DataDir

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess

    from collector.batcher import DurableBatcher
    from collector.ingestor import Ingestor

log = logging.getLogger("inferledger.collector")

CHANNELS_PER_WORKER = 8  # jobs a worker takes at once (they share its group commit)
START_TIMEOUT_S = 180.0  # a cold numba cache compiles the trace walk (≈ 10 s on 2 vCPUs)
SLOT_BYTES = 4 << 20  # a channel's shared-memory slot (pages are used only when touched)


def default_workers() -> int:
    """One worker process per core (at most 4); none on a single core."""
    cores = len(os.sched_getaffinity(0))
    return min(cores, 4) if cores > 1 else 0


class Ingest(Protocol):
    """Where the receivers hand each decoded request: run here (:class:`InProcess`) or in
    worker processes (:class:`WorkerPool`), answered with its outcome once durable."""

    def submit(self, job: Job) -> Outcome: ...

    @property
    def pending_rows(self) -> int: ...

    def close(self) -> None: ...


class InProcess:
    """Jobs run in the calling thread (``--workers 0``; tests and small collectors)."""

    def __init__(self, batcher: DurableBatcher) -> None:
        from collector.ingestor import Ingestor

        self.ingestor = Ingestor(batcher)

    @classmethod
    def open(cls, data: DataDir, max_pending_rows: int = 200_000) -> InProcess:
        from collector.batcher import DurableBatcher
        from collector.exporters.parquet import ParquetSegmentSink
        from collector.processors.traces import warm_up

        log.info("trace decoder ready in %.1f s", warm_up())
        return cls(DurableBatcher(ParquetSegmentSink(data), max_pending_rows=max_pending_rows))

    def submit(self, job: Job) -> Outcome:
        return self.ingestor.run(job)

    @property
    def pending_rows(self) -> int:
        return self.ingestor.pending_rows

    def close(self) -> None:
        self.ingestor.close()


@dataclass(eq=False)
class _Channel:
    worker: int
    generation: int
    conn: Connection
    slot: memoryview  # shared with the worker; holds the body of the job in flight


def _slots(memory: mmap.mmap, channels: int) -> list[memoryview]:
    view = memoryview(memory)
    return [view[k * SLOT_BYTES:(k + 1) * SLOT_BYTES] for k in range(channels)]


class WorkerPool:
    def __init__(self, data: DataDir, workers: int, max_pending_rows: int = 200_000,
                 channels: int = CHANNELS_PER_WORKER) -> None:
        self._ctx = mp.get_context("spawn")  # not fork: the front runs threads (gRPC)
        self._root = str(data.root)
        self._channels = channels
        self._max_pending = max(1, max_pending_rows // workers)
        self._queued = self._ctx.Array("q", workers, lock=False)  # each worker's pending rows
        self._idle: queue.SimpleQueue[_Channel] = queue.SimpleQueue()
        self._generation = [0] * workers
        self._closing = threading.Event()
        spawned = [self._spawn(i) for i in range(workers)]  # start together, then wait
        self._procs = [self._ready(i, proc, conns) for i, (proc, conns, _) in enumerate(spawned)]
        for k in range(channels):  # interleaved, so consecutive jobs go to different workers
            for i, (_, conns, slots) in enumerate(spawned):
                self._idle.put(_Channel(i, 0, conns[k], slots[k]))
        self._watcher = threading.Thread(target=self._watch, name="collector-workers",
                                         daemon=True)
        self._watcher.start()

    def _spawn(self, index: int) -> tuple[BaseProcess, list[Connection], list[memoryview]]:
        pipes = [self._ctx.Pipe() for _ in range(self._channels)]
        proc = self._ctx.Process(
            target=worker_main, name=f"collector-worker-{index}", daemon=True,
            args=(self._root, [theirs for _, theirs in pipes], index, self._queued,
                  self._max_pending))
        proc.start()
        for _, theirs in pipes:
            theirs.close()  # the worker holds them now; ours would keep its EOF away
        # Anonymous memory shared with this worker alone: gone when both processes are.
        fd = os.memfd_create(f"inferledger-worker-{index}")
        try:
            os.ftruncate(fd, self._channels * SLOT_BYTES)
            memory = mmap.mmap(fd, self._channels * SLOT_BYTES)
            send_handle(pipes[0][0], fd, proc.pid)
        finally:
            os.close(fd)
        return proc, [ours for ours, _ in pipes], _slots(memory, self._channels)

    def _ready(self, index: int, proc: BaseProcess, conns: list[Connection]) -> BaseProcess:
        try:
            if conns[0].poll(START_TIMEOUT_S) and conns[0].recv() == "ready":
                return proc
        except EOFError:
            pass
        proc.kill()
        raise RuntimeError(f"collector worker {index} did not start (exit code "
                           f"{proc.exitcode}); see its error above")

    def submit(self, job: Job) -> Outcome:
        while True:
            try:
                ch = self._idle.get(timeout=30)
            except queue.Empty:
                return Outcome(UNAVAILABLE, "no collector worker available")
            if ch.generation == self._generation[ch.worker]:
                break
            ch.conn.close()  # its worker died and was replaced
        try:
            size = len(job.body)
            if size <= SLOT_BYTES:
                ch.slot[:size] = job.body
                ch.conn.send((job.signal, job.json, job.gzip, size))
            else:
                ch.conn.send((job.signal, job.json, job.gzip, -1))
                ch.conn.send_bytes(job.body)
            outcome = ch.conn.recv()
        except (EOFError, OSError):
            ch.conn.close()
            return Outcome(UNAVAILABLE, f"collector worker {ch.worker} exited; retry")
        self._idle.put(ch)
        return outcome

    @property
    def pending_rows(self) -> int:
        return sum(self._queued)

    def _watch(self) -> None:
        """Replace a worker that died (it is a bug or the OOM killer; say so)."""
        while not self._closing.is_set():
            by_sentinel = {p.sentinel: i for i, p in enumerate(self._procs)}
            for s in wait(list(by_sentinel), timeout=0.5):
                i = by_sentinel[s]
                if self._closing.is_set():
                    return
                log.error("collector worker %d exited with code %s; starting another",
                          i, self._procs[i].exitcode)
                self._generation[i] += 1
                self._queued[i] = 0
                # What it acknowledged from its write-ahead files becomes segments now.
                publish_wals(DataDir.at(self._root), DataDir.at(self._root).wal / f"worker-{i}")
                try:
                    proc, conns, slots = self._spawn(i)
                    self._procs[i] = self._ready(i, proc, conns)
                except (OSError, RuntimeError) as e:
                    log.error("%s; trying again in 5 s", e)
                    time.sleep(5)
                    continue
                for conn, slot in zip(conns, slots, strict=True):
                    self._idle.put(_Channel(i, self._generation[i], conn, slot))

    def close(self, timeout_s: float = 60.0) -> None:
        """Let in-flight jobs finish, then close the pipes: the workers write what they
        still hold and exit."""
        self._closing.set()
        self._watcher.join()
        alive = [i for i, p in enumerate(self._procs) if p.is_alive()]
        expected, taken = len(alive) * self._channels, []
        deadline = time.monotonic() + timeout_s
        while len(taken) < expected and (left := deadline - time.monotonic()) > 0:
            try:
                ch = self._idle.get(timeout=left)
            except queue.Empty:
                break
            if ch.generation == self._generation[ch.worker] and ch.worker in alive:
                taken.append(ch)
            else:
                ch.conn.close()
        for ch in taken:
            ch.conn.close()
        for p in self._procs:
            p.join(timeout_s)
            if p.is_alive():
                log.warning("collector worker %s did not stop; killing it", p.name)
                p.kill()
                p.join()


# -- the worker process -------------------------------------------------------------------
def worker_main(root: str, conns: list[Connection], index: int, queued: list[int],
                max_pending_rows: int) -> None:
    from collector.batcher import DurableBatcher
    from collector.exporters.parquet import ParquetSegmentSink
    from collector.ingestor import Ingestor
    from collector.processors.traces import warm_up

    # Ctrl-C reaches the whole process group; the front decides when workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    fd = recv_handle(conns[0])
    memory = mmap.mmap(fd, len(conns) * SLOT_BYTES)
    os.close(fd)
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s worker-{index} %(levelname)s "
                        "%(name)s: %(message)s")
    # One compile at a time: the first fills numba's cache, the others load it.
    with open(Path(tempfile.gettempdir()) / "inferledger-numba.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        warm_up()
    sink = ParquetSegmentSink(DataDir.at(root), owner=f"worker-{index}")
    ingestor = Ingestor(DurableBatcher(sink, max_pending_rows=max_pending_rows))
    conns[0].send("ready")
    threads = [threading.Thread(target=_serve, args=(ingestor, c, slot, queued, index),
                                daemon=True)
               for c, slot in zip(conns, _slots(memory, len(conns)), strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ingestor.close()


def _serve(ingestor: Ingestor, conn: Connection, slot: memoryview, queued: list[int],
           index: int) -> None:
    while True:
        try:
            name, is_json, is_gzip, size = conn.recv()
            # A copy: rows may keep pointing into the body, and the slot takes the next one.
            body = bytes(slot[:size]) if size >= 0 else conn.recv_bytes()
        except (EOFError, OSError):  # the front closed this channel, or went away
            return
        outcome = ingestor.run(Job(name, body, is_json, is_gzip))
        queued[index] = ingestor.pending_rows
        try:
            conn.send(outcome)
        except OSError:
            return

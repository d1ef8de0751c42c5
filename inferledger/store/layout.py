"""Where things live in a data directory, and how files get there atomically."""

from __future__ import annotations

import glob
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from inferledger.errors import UserError
from inferledger.locks import ProcessLock


class NotAStore(UserError):
    """The path given as a data directory is not an InferLedger store."""


@dataclass(frozen=True)
class DataDir:
    """Paths inside one InferLedger data directory.

    Layout::

        raw/<table>/day=YYYY-MM-DD/<segment>.parquet  collector segments (append-only)
        wal/<writer>/<table>/<segment>.arrows  acknowledged rows not yet in a segment (≤ 1 s)
        derived/<table>/day=YYYY-MM-DD[.hHH].gN.parquet analytics outputs: a file per finished
                                                       UTC day, per hour of a day coming in;
                                                       <table> links into the current snapshot
        derived/.snapshots/  generations of the derived tables (``store/snapshots.py``)
        derived/_state.json  the analytics watermark and the pricing/method it used
        derived/_config.json the pricing and settings of the last run (the dashboard shows it)
        views.sql            the SQL API, loadable by any DuckDB client
        inferledger.duckdb   the same views in a catalog file, to open read-only
        reports/send_log.jsonl  the weekly report's deliveries (exactly once per week/recipients)
        scheduler.db         the scheduler's persistent jobs (the weekly report's next run)
        .collector.lock / .analytics.lock / .scheduler.lock  one writer each (``flock``,
                             released when the holder exits; the file names its PID)
    """

    root: Path

    @classmethod
    def at(cls, path: str | os.PathLike[str]) -> DataDir:
        return cls(Path(path).expanduser().resolve())

    @property
    def raw(self) -> Path:
        return self.root / "raw"

    @property
    def wal(self) -> Path:
        return self.root / "wal"

    @property
    def derived(self) -> Path:
        return self.root / "derived"

    @property
    def views_sql(self) -> Path:
        return self.root / "views.sql"

    @property
    def catalog_db(self) -> Path:
        return self.root / "inferledger.duckdb"

    @property
    def sim(self) -> Path:
        """Shared state of the simulated fleet (only when the simulator runs here)."""
        return self.root / "sim"

    def raw_table(self, name: str) -> Path:
        return self.raw / name

    def derived_table(self, name: str) -> Path:
        """Folder of a derived table's files (a link into the current snapshot)."""
        return self.derived / name

    @property
    def analytics_state(self) -> Path:
        return self.derived / "_state.json"

    @property
    def analytics_config(self) -> Path:
        """The pricing and settings the published results were computed with."""
        return self.derived / "_config.json"

    @property
    def send_log(self) -> Path:
        """The weekly report's deliveries, one state per line (append-only)."""
        return self.root / "reports" / "send_log.jsonl"

    # -- writers: one process per file set, each behind its lock ------------------------
    def collector_lock(self) -> ProcessLock:
        """Held by the collector for its lifetime: it alone writes ``raw/`` and ``wal/``."""
        return ProcessLock(self.root / ".collector.lock", f"the collector of {self.root}")

    def analytics_lock(self) -> ProcessLock:
        """Held during each analytics run: it alone writes ``derived/``."""
        return ProcessLock(self.root / ".analytics.lock", f"the analytics of {self.root}")

    def scheduler_lock(self) -> ProcessLock:
        """Held by the scheduler for its lifetime (one schedule, one weekly e-mail)."""
        return ProcessLock(self.root / ".scheduler.lock", f"the scheduler of {self.root}")

    def check_store(self) -> DataDir:
        """This directory as a store to read, or :class:`NotAStore` saying plainly why not.

        A store is what a collector created (it writes ``views.sql`` when it starts); a
        reader never creates one, so a typo in ``--data`` is an error, not a new empty store.
        """
        if not self.root.exists():
            raise NotAStore(f"{self.root}: no such directory; --data must be the data "
                            "directory of a collector (default ./inferledger-data)")
        if not self.root.is_dir():
            raise NotAStore(f"{self.root} is a file, not a data directory")
        if not self.views_sql.is_file():
            raise NotAStore(f"{self.root} is not an InferLedger store (it has no views.sql); "
                            f"a collector creates one: inferledger collector --data {self.root}")
        return self

    def ensure(self) -> DataDir:
        for p in (self.root, self.raw, self.derived):
            p.mkdir(parents=True, exist_ok=True)
        return self


def file_sizes(folder: Path, pattern: str) -> list[int]:
    """Sizes of the files matching ``pattern`` under ``folder``. Compaction and retention
    delete files at any moment: one that vanishes between listing and ``stat`` is skipped."""
    sizes = []
    # The glob module, not Path.glob: a folder removed while it is listed (retention drops
    # whole day partitions) is skipped there, where Path.glob raises.
    for path in glob.iglob(os.path.join(folder, pattern)):
        try:
            sizes.append(os.stat(path).st_size)
        except FileNotFoundError:
            continue
    return sizes


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_parquet_atomic(table: pa.Table, path: Path, *, durable: bool = True,
                         compression: str = "zstd", **options: object) -> Path:
    """Write ``table`` to ``path`` so readers see either the old file or the whole new one.

    The temporary name does not end in ``.parquet``, so globs never pick up a half-written
    file. With ``durable`` the data and the rename are fsynced before returning: the caller
    may then acknowledge the data it contains. ``options`` go to ``pq.write_table``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    pq.write_table(table, tmp, compression=compression, **options)
    if durable:
        publish_durably(tmp, path)
    else:
        os.replace(tmp, path)
    return path


def publish_durably(tmp: Path, path: Path) -> None:
    """Rename a fully written ``tmp`` to ``path``; the data and the rename survive a crash."""
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)

"""Derived tables as snapshots: a new generation of files, switched in by one rename.

An analytics window changes a few files of many tables (a live run: the newest hours'
files). Rewriting whole day files made every live run cost as much as the day had rows,
and replacing files one by one let a reader see ``requests`` updated and ``request_costs``
not yet. Instead each publish builds a generation directory: hard links to the current
generation's files (no data copied), with the window's files written or removed, then
switches ``derived/.snapshots/current`` to it with one atomic rename of a symlink. Every
table's path stays ``derived/<table>/`` (a symlink through ``current``), so a reader's glob
sees one generation or the next, all tables together, never a half-written one.

A file's name always names the same bytes: a file a generation writes is named with that
generation (``….g000000042.parquet``), and unchanged files keep their names as links. A
reader lists a table through ``current`` and opens the files by those paths a moment later;
if ``current`` moved on meanwhile, a path either names the same file in the next generation
or none (it was replaced), which is retried like a compacted raw segment (``retry_vanished``).
Were a name reused, the reader would open the new file at the old one's offsets (seen live:
``TProtocolException: Invalid data``). Layout::

    derived/<table> -> .snapshots/current/<table>
    derived/.snapshots/current -> <generation>
    derived/.snapshots/<generation>/<table>/day=YYYY-MM-DD.gN.parquet      a finished day
    derived/.snapshots/<generation>/<table>/day=YYYY-MM-DD.hHH.gN.parquet  an hour of a day
                                                                           still coming in

Names here (``day_file``, ``hour_file``) are a file's place, without the generation; files of
stores written before names carried one (``day=YYYY-MM-DD.parquet``) are found by the same
places.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from pathlib import Path

import pyarrow as pa

from inferledger.store.layout import DataDir, write_parquet_atomic

SNAPSHOTS = ".snapshots"
CURRENT = "current"
_GENERATION = re.compile(r"^g(\d{9})$")


def day_file(day: str) -> str:
    """The file of a finished UTC day (``YYYY-MM-DD``)."""
    return f"day={day}.parquet"


def hour_file(day: str, hour: int) -> str:
    """The file of one hour of a day whose data is still coming in."""
    return f"day={day}.h{hour:02d}.parquet"


def _stem(place: str) -> str:
    return place.removesuffix(".parquet")


def files_at(folder: Path, place: str) -> list[Path]:
    """A table folder's files at ``place`` (a glob of places allowed), written by any
    generation (or by a release before names carried one)."""
    if not folder.is_dir():
        return []
    stem = _stem(place)
    return [*folder.glob(f"{stem}.parquet"), *folder.glob(f"{stem}.g[0-9]*.parquet")]


def hour_files_of(day: str) -> str:
    """A glob of a day's hour files."""
    return f"day={day}.h??.parquet"


class Snapshot:
    """The next generation of the derived tables, being written by the one analytics run
    (which holds the analytics lock); invisible to readers until :meth:`commit`."""

    def __init__(self, data: DataDir) -> None:
        self.data = data
        self.root = data.derived / SNAPSHOTS
        self.root.mkdir(parents=True, exist_ok=True)
        current = self._current()
        self._clear_abandoned(current)
        number = int(_GENERATION.match(current.name)[1]) + 1 if current else 1
        self.dir = self.root / f"g{number:09d}"
        self.dir.mkdir()
        if current is not None:
            for table in current.iterdir():
                self._link_all(table, self.dir / table.name)
        else:  # a store written before snapshots: its tables are plain folders
            for folder in self._plain_tables():
                self._link_all(folder, self.dir / folder.name)

    def _current(self) -> Path | None:
        link = self.root / CURRENT
        return self.root / os.readlink(link) if link.is_symlink() else None

    def _clear_abandoned(self, current: Path | None) -> None:
        """Generations a crashed run left half built, and the previous one's leftovers."""
        for p in self.root.iterdir():
            if p.name != CURRENT and (current is None or p.name != current.name):
                shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()

    def _plain_tables(self) -> list[Path]:
        return [p for p in self.data.derived.iterdir()
                if p.is_dir() and not p.is_symlink() and not p.name.startswith((".", "_"))]

    @staticmethod
    def _link_all(src: Path, dst: Path) -> None:
        dst.mkdir()
        for f in src.glob("*.parquet"):
            os.link(f, dst / f.name)

    def table(self, name: str) -> Path:
        """The table's folder in this generation (created if new)."""
        path = self.dir / name
        path.mkdir(exist_ok=True)
        return path

    def write(self, name: str, file: str, rows: pa.Table) -> None:
        """Put ``rows`` in the table's ``file`` (a place: ``day_file``, ``hour_file``),
        replacing what the generation had there, under a name of this generation's."""
        self.remove(name, file)
        write_parquet_atomic(rows, self.table(name) / f"{_stem(file)}.{self.dir.name}.parquet",
                             durable=False)

    def remove(self, name: str, pattern: str) -> None:
        """Drop the table's files at the places ``pattern`` matches from this generation."""
        for f in files_at(self.table(name), pattern):
            f.unlink()

    def has(self, name: str, file: str) -> bool:
        return bool(files_at(self.dir / name, file))

    def commit(self) -> None:
        """Make this generation the one every reader sees, all tables at once."""
        for table in sorted(p.name for p in self.dir.iterdir()):
            self._expose(table)
        tmp = self.root / f".{CURRENT}.{uuid.uuid4().hex}"
        os.symlink(self.dir.name, tmp)
        previous = self._current()
        os.replace(tmp, self.root / CURRENT)
        # readers open files through ``current``, so the old generation's links can go now:
        # a file a reader already has open stays readable until it closes it
        if previous is not None and previous != self.dir:
            shutil.rmtree(previous)

    def abandon(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def _expose(self, table: str) -> None:
        """``derived/<table>`` as the stable path through ``current``; a plain folder from
        before snapshots is swapped for the link (its files are in this generation)."""
        path = self.data.derived / table
        if path.is_symlink():
            return
        link = self.data.derived / f".{table}.{uuid.uuid4().hex}"
        os.symlink(Path(SNAPSHOTS) / CURRENT / table, link)
        if path.is_dir():
            aside = self.root / f".old-{table}.{uuid.uuid4().hex}"
            os.replace(path, aside)
            os.replace(link, path)
            shutil.rmtree(aside)
        else:
            os.replace(link, path)

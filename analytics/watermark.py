"""What the published results are based on (``<data>/derived/_state.json``): how far the
data they saw went, with which pricing and method, which days are settled, the derived
tables' shape, and the receipt time up to which runs have seen everything."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from analytics.settings import Settings
from inferledger.store import DataDir

# What the derived tables hold, beyond prices and method: bumped when a release adds or
# changes derived tables (2: answers and answer_costs), so results computed by an older
# release are recomputed from raw once, whole, instead of mixing two shapes.
DERIVED_VERSION = 2


def derived_shape(settings: Settings) -> str:
    """The derived tables' version and the settings that shape them without pricing them
    (how requests group into answers): a change recomputes every day."""
    return f"{DERIVED_VERSION}:{','.join(settings.answer_keys)}"


@dataclass(frozen=True)
class Watermark:
    """What the published results are based on, how far the data they saw went, the day
    from which on days have not yet been computed whole after their data was complete, and
    the shape of the derived tables (``derived_shape``; empty: an older release's), and the
    receipt time up to which the runs have seen all data (0: not known, as in stores of
    older releases): what was received after it is the new data a live run recomputes."""

    watermark_s: float
    pricing_version: str
    method: str
    settled_s: float = 0.0
    shape: str = ""
    received_s: float = 0.0

    @classmethod
    def read(cls, data: DataDir) -> Watermark | None:
        try:
            return cls(**json.loads(data.analytics_state.read_text()))
        except FileNotFoundError:
            return None

    def write(self, data: DataDir) -> None:
        write_json(data.analytics_state, asdict(self))


def write_json(path: Path, obj: object) -> None:
    """``path`` replaced whole (a reader sees the old file or the new one)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)

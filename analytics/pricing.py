"""The versioned pricing file (TOML): GPU prices, electricity, PUE, carbon, idle policy."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from inferledger.config import (
    SettingError,
    choice,
    number,
    read_field,
    read_toml,
    table_of,
    tables_of,
    text,
)

HOURS_PER_YEAR = 8760.0
IDLE_POLICIES = ("separate", "node", "model", "tenant")


class PricingError(SettingError):
    """The pricing file is missing something or says something impossible."""


@dataclass(frozen=True)
class GpuPrice:
    match: str
    usd_per_hour: float
    basis: str


@dataclass(frozen=True)
class ApiPrice:
    """What an API would charge for a comparable model, USD per million tokens."""

    model: str
    usd_per_1m_input: float
    usd_per_1m_output: float


@dataclass(frozen=True)
class Pricing:
    version: str
    usd_per_kwh: float
    pue: float
    gco2e_per_kwh: float
    idle_policy: str
    gpus: tuple[GpuPrice, ...] = field(default_factory=tuple)
    api_prices: tuple[ApiPrice, ...] = field(default_factory=tuple)
    source: str = ""

    def price_for(self, gpu_model: str | None) -> GpuPrice | None:
        """Longest ``match`` that is a substring of the device name, case-insensitive."""
        if not gpu_model:
            return None
        hits = [g for g in self.gpus if g.match.lower() in gpu_model.lower()]
        return max(hits, key=lambda g: len(g.match)) if hits else None


def _gpu(entry: dict, i: int, source: str) -> GpuPrice:
    where = f"{source} [[gpu]] #{i + 1}"
    match = read_field(entry, "match", text(), where)
    where = f"{source} [[gpu]] {match!r}"
    basis = read_field(entry, "basis", text(), where, "on-demand")
    if "usd_per_hour" in entry:
        usd = read_field(entry, "usd_per_hour", number(0), where)
    elif "purchase_usd" in entry and "amortization_years" in entry:
        years = read_field(entry, "amortization_years", number(0, above=True), where)
        usd = read_field(entry, "purchase_usd", number(0), where) / (years * HOURS_PER_YEAR)
    else:
        raise PricingError(f"{where}: give usd_per_hour, or purchase_usd and "
                           "amortization_years")
    return GpuPrice(match=match, usd_per_hour=usd, basis=basis)


def _api(entry: dict, i: int, source: str) -> ApiPrice:
    where = f"{source} [[api_price]] #{i + 1}"
    return ApiPrice(read_field(entry, "model", text(), where),
                    read_field(entry, "usd_per_1m_input", number(0), where),
                    read_field(entry, "usd_per_1m_output", number(0), where))


def load_pricing(path: str | Path | None = None) -> Pricing:
    """Read a pricing file (without a path, the shipped example); every field is checked,
    and a bad one is a :class:`PricingError` naming the file, the field and what is allowed."""
    source = "built-in example" if path is None else str(path)
    try:
        doc = (tomllib.loads((resources.files("analytics") / "pricing_example.toml").read_text())
               if path is None else read_toml(path, "pricing file"))
        energy, at = table_of(doc, "energy", source), f"{source} [energy]"
        return Pricing(
            version=read_field(doc, "version", text(), source),
            usd_per_kwh=read_field(energy, "usd_per_kwh", number(0), at, 0.0),
            pue=read_field(energy, "pue", number(1.0), at, 1.0),
            gco2e_per_kwh=read_field(energy, "gco2e_per_kwh", number(0), at, 0.0),
            idle_policy=read_field(table_of(doc, "idle", source), "policy",
                                   choice(*IDLE_POLICIES), f"{source} [idle]", "separate"),
            gpus=tuple(_gpu(e, i, source) for i, e in enumerate(tables_of(doc, "gpu", source))),
            api_prices=tuple(_api(e, i, source)
                             for i, e in enumerate(tables_of(doc, "api_price", source))),
            source=source,
        )
    except SettingError as e:
        raise PricingError(str(e)) from None

"""The versioned pricing file (TOML): GPU prices, electricity, PUE, carbon, idle policy."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

HOURS_PER_YEAR = 8760.0
IDLE_POLICIES = ("separate", "node", "model", "tenant")


class PricingError(ValueError):
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


def _gpu(entry: dict, i: int) -> GpuPrice:
    match = entry.get("match")
    if not isinstance(match, str) or not match:
        raise PricingError(f"[[gpu]] #{i + 1}: `match` (a device-name substring) is required")
    basis = str(entry.get("basis", "on-demand"))
    if "usd_per_hour" in entry:
        usd = float(entry["usd_per_hour"])
    elif "purchase_usd" in entry and "amortization_years" in entry:
        years = float(entry["amortization_years"])
        if years <= 0:
            raise PricingError(f"[[gpu]] {match}: amortization_years must be > 0")
        usd = float(entry["purchase_usd"]) / (years * HOURS_PER_YEAR)
    else:
        raise PricingError(
            f"[[gpu]] {match}: give usd_per_hour, or purchase_usd and amortization_years")
    if usd < 0:
        raise PricingError(f"[[gpu]] {match}: price must not be negative")
    return GpuPrice(match=match, usd_per_hour=usd, basis=basis)


def _api(entry: dict, source: str) -> ApiPrice:
    try:
        price = ApiPrice(str(entry["model"]), float(entry["usd_per_1m_input"]),
                         float(entry["usd_per_1m_output"]))
    except (KeyError, TypeError, ValueError) as e:
        raise PricingError(f"{source}: [[api_price]] needs model, usd_per_1m_input and "
                           f"usd_per_1m_output ({e})") from e
    if price.usd_per_1m_input < 0 or price.usd_per_1m_output < 0:
        raise PricingError(f"{source}: [[api_price]] {price.model}: prices must be >= 0")
    return price


def load_pricing(path: str | Path | None = None) -> Pricing:
    """Read a pricing file; without a path, the shipped example."""
    if path is None:
        text = (resources.files("analytics") / "pricing_example.toml").read_text()
        source = "built-in example"
    else:
        try:
            text = Path(path).read_text()
        except OSError as e:
            raise PricingError(f"cannot read pricing file {path}: {e}") from e
        source = str(path)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise PricingError(f"{source}: not valid TOML: {e}") from e
    if not doc.get("version"):
        raise PricingError(f"{source}: `version` is required")
    energy = doc.get("energy", {})
    policy = doc.get("idle", {}).get("policy", "separate")
    if policy not in IDLE_POLICIES:
        raise PricingError(f"{source}: idle policy {policy!r} is not one of {IDLE_POLICIES}")
    pue = float(energy.get("pue", 1.0))
    if pue < 1.0:
        raise PricingError(f"{source}: pue must be >= 1.0")
    return Pricing(
        version=str(doc["version"]),
        usd_per_kwh=float(energy.get("usd_per_kwh", 0.0)),
        pue=pue,
        gco2e_per_kwh=float(energy.get("gco2e_per_kwh", 0.0)),
        idle_policy=policy,
        gpus=tuple(_gpu(e, i) for i, e in enumerate(doc.get("gpu", []))),
        api_prices=tuple(_api(e, source) for e in doc.get("api_price", [])),
        source=source,
    )

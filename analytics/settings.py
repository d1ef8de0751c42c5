"""Analytics settings: attribution method and weights, per-model SLOs, static placement.

Read from a TOML file (``--config FILE``; the example is ``analytics/settings_example.toml``)
or built in code. Command-line flags override the file.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

from analytics.attribution import METHODS


class SettingsError(ValueError):
    """The settings file is unreadable or says something impossible."""


@dataclass(frozen=True)
class Slo:
    """Latency objectives of a model (``*``: every model without its own), in seconds.

    Definitions follow ``vllm bench serve``: TTFT from request to first content, TPOT =
    (e2e − TTFT) / (output tokens − 1) (0 for one token), e2e the whole request. A request
    is *good* when it succeeded and meets every objective that is set.
    """

    model: str = "*"
    ttft_s: float | None = None
    tpot_s: float | None = None
    e2e_s: float | None = None


@dataclass(frozen=True)
class Settings:
    """How to attribute. ``prefill_token_weight`` is the GPU work of one prompt token relative
    to one output token: prefill runs compute-bound at roughly 4× the tokens/s of batched
    decode on the same GPU (research/nvml.md §6), hence 0.25 by default."""

    method: str = "work"
    prefill_token_weight: float = 0.25
    placement: tuple[tuple[str, str | None, str], ...] = ()  # (host, model or None, gpu uuid)
    slos: tuple[Slo, ...] = field(default_factory=lambda: (Slo("*", 1.0, 0.1, 30.0),))

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise SettingsError(f"attribution method {self.method!r} is not one of {METHODS}")
        if self.prefill_token_weight < 0:
            raise SettingsError("prefill_token_weight must be >= 0")

    def with_overrides(self, **kw: object) -> Settings:
        return replace(self, **{k: v for k, v in kw.items() if v is not None})


def _positive(name: str, value: object) -> float | None:
    if value is None:
        return None
    if not isinstance(value, int | float) or value <= 0:
        raise SettingsError(f"{name} must be a positive number of seconds, not {value!r}")
    return float(value)


def load_settings(path: str | Path | None) -> Settings:
    """Settings from a TOML file; without a path, the defaults."""
    if path is None:
        return Settings()
    try:
        doc = tomllib.loads(Path(path).read_text())
    except OSError as e:
        raise SettingsError(f"cannot read settings file {path}: {e}") from e
    except tomllib.TOMLDecodeError as e:
        raise SettingsError(f"{path}: not valid TOML: {e}") from e
    att = doc.get("attribution", {})
    slos = tuple(
        Slo(model=str(s.get("model", "*")), ttft_s=_positive("ttft_s", s.get("ttft_s")),
            tpot_s=_positive("tpot_s", s.get("tpot_s")), e2e_s=_positive("e2e_s", s.get("e2e_s")))
        for s in doc.get("slo", []))
    placement = []
    for p in doc.get("placement", []):
        if not p.get("host") or not p.get("gpu_uuids"):
            raise SettingsError(f"{path}: each [[placement]] needs host and gpu_uuids")
        placement += [(str(p["host"]), p.get("model"), str(g)) for g in p["gpu_uuids"]]
    base = Settings()
    return Settings(method=str(att.get("method", base.method)),
                    prefill_token_weight=float(att.get("prefill_token_weight",
                                                       base.prefill_token_weight)),
                    placement=tuple(placement), slos=slos or base.slos)

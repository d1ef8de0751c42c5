"""Analytics settings: attribution method and weights, per-model SLOs, static placement.

Read from a TOML file (``--config FILE``; the example is ``analytics/settings_example.toml``)
or built in code. Command-line flags override the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from analytics.attribution import METHODS
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


class SettingsError(SettingError):
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
class ModelShape:
    """What a decode step of a served model reads from GPU memory: its weights once for the
    batch, and each sequence's KV cache (``kv_bytes_per_token`` × its context). ``gpu_time``
    shares a decode instant by these reads; tensor parallelism divides both alike, so only
    their ratio matters. From the model's config: weights = parameters × bytes per parameter;
    KV per token = 2 (K and V) × layers × KV heads × head dimension × bytes per value.
    ``model`` matches a request's model case-insensitively, whole or after its last ``/``
    (``meta-llama/Llama-3.1-8B-Instruct`` matches ``llama-3.1-8b-instruct``)."""

    model: str
    weight_bytes: float
    kv_bytes_per_token: float

    @property
    def weights_in_kv_tokens(self) -> float:
        """The context length whose KV read costs as much as reading the weights."""
        return self.weight_bytes / self.kv_bytes_per_token


# BF16 weights and KV cache, from each model's published config (parameters; layers × KV
# heads × head dimension): a model not listed (or set in [[model]]) shares decodes equally.
MODEL_SHAPES = (
    ModelShape("llama-3.1-8b-instruct", 8.03e9 * 2, 2 * 32 * 8 * 128 * 2),
    ModelShape("llama-3.1-70b-instruct", 70.6e9 * 2, 2 * 80 * 8 * 128 * 2),
    ModelShape("mistral-7b-instruct", 7.24e9 * 2, 2 * 32 * 8 * 128 * 2),
    ModelShape("qwen2.5-7b-instruct", 7.62e9 * 2, 2 * 28 * 4 * 128 * 2),
    ModelShape("qwen2.5-32b-instruct", 32.8e9 * 2, 2 * 64 * 8 * 128 * 2),
)


# An explicit answer id the caller sets wins; else the trace. Also common: a workflow or
# agent-run id ("agent_context.workflow_id"), or "gen_ai.conversation.id" for cost per
# conversation.
ANSWER_KEYS = ("inferledger.answer_id", "trace")


@dataclass(frozen=True)
class Settings:
    """How to attribute (``method``: analytics/attribution.py says what each does).
    ``prefill_token_weight`` (``work`` only) is the GPU work of one prompt token relative to
    one output token: prefill runs compute-bound at roughly 4× the tokens/s of batched
    decode on the same GPU, hence 0.25 by default."""

    method: str = "gpu_time"
    prefill_token_weight: float = 0.25
    # Input checks (int_gpu_intervals): an interval whose mean power exceeds the GPU's
    # power limit × this margin is quarantined (NVML averages power over ~1 s and a GPU may
    # briefly exceed its limit; 1.5× is beyond any reading of a healthy GPU) …
    power_limit_margin: float = 1.5
    # … and so is one longer than this many seconds between two samples (the agent was
    # down: the energy is real, but who used it is not known).
    max_sample_gap_s: float = 900.0
    placement: tuple[tuple[str, str | None, str], ...] = ()  # (host, model or None, gpu uuid)
    slos: tuple[Slo, ...] = field(default_factory=lambda: (Slo("*", 1.0, 0.1, 30.0),))
    models: tuple[ModelShape, ...] = MODEL_SHAPES
    # What makes requests one answer (int_answers): span attributes tried in order, on the
    # request's own span or another span of its trace; "trace" is the request's trace.
    answer_keys: tuple[str, ...] = ANSWER_KEYS

    def __post_init__(self) -> None:
        if not self.answer_keys or not all(isinstance(k, str) and k for k in self.answer_keys):
            raise SettingsError("[answers] keys must be a non-empty list of attribute names")
        if "trace" in self.answer_keys[:-1]:
            raise SettingsError('[answers] keys: "trace" matches every request, so it can '
                                "only come last")
        if self.method not in METHODS:
            raise SettingsError(f"attribution method {self.method!r} is not one of {METHODS}")
        if self.prefill_token_weight < 0:
            raise SettingsError("prefill_token_weight must be >= 0")
        if self.power_limit_margin < 1:
            raise SettingsError("power_limit_margin must be >= 1")
        if self.max_sample_gap_s <= 0:
            raise SettingsError("max_sample_gap_s must be > 0")

    def with_overrides(self, **kw: object) -> Settings:
        return replace(self, **{k: v for k, v in kw.items() if v is not None})


_SECONDS = number(0, above=True)
_BYTES = number(0, above=True)


def load_settings(path: str | Path | None) -> Settings:
    """Settings from a TOML file; without a path, the defaults. Every field is checked; a bad
    one is a :class:`SettingsError` naming the file, the field and what is allowed."""
    if path is None:
        return Settings()
    try:
        doc = read_toml(path, "settings file")
        att = table_of(doc, "attribution", str(path))
        where = f"{path} [attribution]"
        slos = []
        for i, s in enumerate(tables_of(doc, "slo", str(path))):
            w = f"{path} [[slo]] #{i + 1}"
            slos.append(Slo(model=read_field(s, "model", text(), w, "*"),
                            ttft_s=read_field(s, "ttft_s", _SECONDS, w, None),
                            tpot_s=read_field(s, "tpot_s", _SECONDS, w, None),
                            e2e_s=read_field(s, "e2e_s", _SECONDS, w, None)))
        placement = []
        for i, p in enumerate(tables_of(doc, "placement", str(path))):
            w = f"{path} [[placement]] #{i + 1}"
            host = read_field(p, "host", text(), w)
            model = read_field(p, "model", text(), w, None)
            uuids = p.get("gpu_uuids")
            if not isinstance(uuids, list) or not uuids or not all(
                    isinstance(g, str) and g for g in uuids):
                raise SettingsError(f"{w} gpu_uuids = {uuids!r} is not allowed: expected a "
                                    "non-empty list of GPU UUIDs")
            placement += [(host, model, g) for g in uuids]
        shapes = {m.model: m for m in MODEL_SHAPES}
        for i, m in enumerate(tables_of(doc, "model", str(path))):
            w = f"{path} [[model]] #{i + 1}"
            name = read_field(m, "model", text(), w).lower()
            shapes[name] = ModelShape(name, read_field(m, "weight_bytes", _BYTES, w),
                                      read_field(m, "kv_bytes_per_token", _BYTES, w))
        answers = table_of(doc, "answers", str(path))
        keys = answers.get("keys", list(ANSWER_KEYS))
        if not isinstance(keys, list) or not all(isinstance(k, str) and k for k in keys):
            raise SettingsError(f"{path} [answers] keys = {keys!r} is not allowed: expected a "
                                'list of attribute names, e.g. ["inferledger.answer_id", '
                                '"trace"]')
        checks = table_of(doc, "checks", str(path))
        cw = f"{path} [checks]"
        base = Settings()
        return Settings(
            power_limit_margin=read_field(checks, "power_limit_margin", number(1), cw,
                                          base.power_limit_margin),
            max_sample_gap_s=read_field(checks, "max_sample_gap_s", _SECONDS, cw,
                                        base.max_sample_gap_s),
            method=read_field(att, "method", choice(*METHODS), where, base.method),
            prefill_token_weight=read_field(att, "prefill_token_weight", number(0), where,
                                       base.prefill_token_weight),
            placement=tuple(placement), slos=tuple(slos) or base.slos,
            models=tuple(shapes.values()), answer_keys=tuple(keys))
    except SettingError as e:
        raise SettingsError(str(e)) from None

"""Scenarios: a simulated fleet and its workload, in one small TOML file, chosen by name.

``simulator/scenarios/<name>.toml`` holds ``[[node]]`` tables (GPU models and the engines on
them) and ``[[app]]`` tables (a tenant's app: kind, model, arrival shape, length
distributions, client behaviour). ``fleet = "<other scenario>"`` borrows another scenario's
nodes. Every field is documented in ``docs/SCENARIOS.md``; a bad file fails with the file, the
table and the field named, before anything starts.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inferledger.errors import UserError
from simulator.engine.profiles import MODEL_PROFILES
from simulator.gpu_models import GPU_MODELS
from simulator.node import EngineSpec

SCENARIO_DIR = Path(__file__).parent / "scenarios"
DEFAULT_SCENARIO = "demo"
KINDS = ("chat", "rag", "agent", "summarise", "embeddings", "batch")
DAILY_SHAPES = ("business", "evening", "flat")


@dataclass(frozen=True)
class Lengths:
    """A heavy-tailed (lognormal) token count: half the draws are below ``median``."""

    median: int
    sigma: float


@dataclass(frozen=True)
class Bursts:
    """Flash crowds: ``per_day`` on average, each ``minutes`` long at ``factor`` × the rate."""

    per_day: float
    minutes: float
    factor: float


@dataclass(frozen=True)
class App:
    tenant: str
    name: str
    kind: str
    model: str
    peak_per_min: float
    prompt: Lengths
    output: Lengths
    daily: str = "business"
    window: tuple[int, int] | None = None  # batch jobs: UTC hours [start, end)
    stream_share: float = 0.0
    abort_share: float = 0.0
    error_share: float = 0.01
    timeout_s: float | None = None
    bursts: Bursts | None = None
    retrieval_ms: Lengths | None = None
    # RAG: the share of each prompt the retrieval added (said on the retrieval span)
    context_share: float = 0.0
    # agent: LLM steps per answer, the tool call between two steps and the tokens it adds
    # to the next step's prompt (said by the client, X-InferLedger-Context-Tokens)
    steps: Lengths | None = None
    tool_ms: Lengths | None = None
    tool_tokens: Lengths | None = None
    # a client that timed out or was turned away (503) tries again, up to this many times,
    # with the same Idempotency-Key, after retry_backoff_s (doubling)
    retries: int = 0
    retry_backoff_s: float = 1.0

    @property
    def has_root_span(self) -> bool:
        """An app that traces its own answer (a root span over its steps)."""
        return self.kind in ("rag", "agent")

    @property
    def operation(self) -> str:
        """The OpenAI route this app calls, as ``gen_ai.operation.name`` names it."""
        return {"embeddings": "embeddings", "summarise": "text_completion"}.get(self.kind,
                                                                               "chat")

    @property
    def path(self) -> str:
        return {"chat": "/v1/chat/completions", "text_completion": "/v1/completions",
                "embeddings": "/v1/embeddings"}[self.operation]


@dataclass(frozen=True)
class Node:
    name: str
    gpus: tuple[str, ...]
    engines: tuple[EngineSpec, ...]  # ports are assigned when a fleet is started


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    nodes: tuple[Node, ...]
    apps: tuple[App, ...]
    source: Path = field(compare=False)

    @property
    def gpu_count(self) -> int:
        return sum(len(n.gpus) for n in self.nodes)

    def with_ports(self, port_base: int) -> tuple[Node, ...]:
        """The nodes with engine ports ``port_base + 1, + 2, …`` (the gateway takes the base)."""
        port = port_base
        nodes = []
        for n in self.nodes:
            engines = []
            for e in n.engines:
                port += 1
                engines.append(EngineSpec(e.model, e.gpus, port))
            nodes.append(Node(n.name, n.gpus, tuple(engines)))
        return tuple(nodes)


class ScenarioError(UserError):
    """The scenario named or its file is not usable; the message says where and why."""


def available() -> list[str]:
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.toml"))


def load_scenario(name_or_path: str | Path) -> Scenario:
    """A scenario by name (``simulator/scenarios/NAME.toml``) or by path to a TOML file."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = SCENARIO_DIR / f"{name_or_path}.toml"
        if not path.exists():
            raise ScenarioError(f"no scenario {str(name_or_path)!r}; "
                                f"known: {', '.join(available())}")
    try:
        doc = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ScenarioError(f"{path}: {e}") from e
    return _parse(doc, path)


def _parse(doc: dict[str, Any], path: Path) -> Scenario:
    where = str(path)
    _only(doc, {"description", "fleet", "node", "app"}, where)
    if "fleet" in doc:
        if "node" in doc:
            raise ScenarioError(f"{where}: give either fleet = \"…\" or [[node]] tables, not both")
        nodes = load_scenario(doc["fleet"]).nodes
    else:
        nodes = tuple(_node(n, f"{where} [[node]] #{i + 1}")
                      for i, n in enumerate(_list(doc, "node", where)))
    apps = tuple(_app(a, f"{where} [[app]] #{i + 1}")
                 for i, a in enumerate(_list(doc, "app", where)))
    served = {e.model for n in nodes for e in n.engines}
    for a in apps:
        if a.model not in served:
            raise ScenarioError(f"{where}: app {a.tenant}/{a.name} uses {a.model!r}, which no "
                                f"engine serves (served: {', '.join(sorted(served))})")
    names = [n.name for n in nodes]
    if len(set(names)) != len(names):
        raise ScenarioError(f"{where}: node names must be unique")
    return Scenario(path.stem, str(doc.get("description", "")), nodes, apps, path)


def _only(table: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = set(table) - allowed
    if unknown:
        raise ScenarioError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}; "
                            f"allowed: {', '.join(sorted(allowed))}")


def _list(doc: dict[str, Any], key: str, where: str) -> list[dict[str, Any]]:
    items = doc.get(key)
    if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
        raise ScenarioError(f"{where}: needs at least one [[{key}]] table")
    return items


def _get(t: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str,
         default: Any = ...) -> Any:
    if key not in t:
        if default is ...:
            raise ScenarioError(f"{where}: missing field {key!r}")
        return default
    v = t[key]
    if isinstance(v, bool) or not isinstance(v, kind):
        raise ScenarioError(f"{where}: {key} = {v!r} is not a {getattr(kind, '__name__', kind)}")
    return v


def _share(t: dict[str, Any], key: str, where: str, default: float) -> float:
    v = float(_get(t, key, (int, float), where, default))
    if not 0 <= v <= 1:
        raise ScenarioError(f"{where}: {key} = {v} is not between 0 and 1")
    return v


def _positive(t: dict[str, Any], key: str, where: str, default: Any = ...) -> Any:
    v = _get(t, key, (int, float), where, default)
    if v is not None and v <= 0:
        raise ScenarioError(f"{where}: {key} must be positive, not {v}")
    return v


def _node(t: dict[str, Any], where: str) -> Node:
    _only(t, {"name", "gpus", "engines"}, where)
    name = _get(t, "name", str, where)
    gpus = tuple(_get(t, "gpus", list, where))
    bad = [g for g in gpus if g not in GPU_MODELS]
    if not gpus or bad:
        raise ScenarioError(f"{where}: gpus {list(gpus)} must be from {sorted(GPU_MODELS)}")
    engines = []
    used: set[int] = set()
    for j, e in enumerate(_get(t, "engines", list, where)):
        ew = f"{where} engine #{j + 1}"
        if not isinstance(e, dict):
            raise ScenarioError(f"{ew}: must be {{ model = \"…\", gpus = [0] }}")
        _only(e, {"model", "gpus"}, ew)
        model = _get(e, "model", str, ew)
        if model not in MODEL_PROFILES:
            raise ScenarioError(f"{ew}: unknown model {model!r}; known: "
                                f"{', '.join(sorted(MODEL_PROFILES))}")
        idx = tuple(_get(e, "gpus", list, ew))
        if not idx or any(not isinstance(i, int) or not 0 <= i < len(gpus) for i in idx):
            raise ScenarioError(f"{ew}: gpus {list(idx)} must index this node's "
                                f"{len(gpus)} GPU(s)")
        if used & set(idx):
            raise ScenarioError(f"{ew}: GPU(s) {sorted(used & set(idx))} already hold an engine")
        used |= set(idx)
        engines.append(EngineSpec(model, idx, 0))
    return Node(name, gpus, tuple(engines))


def _lengths(t: dict[str, Any], key: str, where: str) -> Lengths | None:
    v = t.get(key)
    if v is None:
        return None
    if not isinstance(v, dict):
        raise ScenarioError(f"{where}: {key} must be {{ median = N, sigma = S }}")
    _only(v, {"median", "sigma"}, f"{where} {key}")
    return Lengths(int(_positive(v, "median", f"{where} {key}")),
                   float(_positive(v, "sigma", f"{where} {key}", 0.6)))


def _app(t: dict[str, Any], where: str) -> App:
    _only(t, {"tenant", "name", "kind", "model", "peak_per_min", "daily", "window", "prompt",
              "output", "stream_share", "abort_share", "error_share", "timeout_s", "bursts",
              "retrieval_ms", "context_share", "steps", "tool_ms", "tool_tokens", "retries",
              "retry_backoff_s"}, where)
    kind = _get(t, "kind", str, where)
    if kind not in KINDS:
        raise ScenarioError(f"{where}: kind {kind!r} is not one of {', '.join(KINDS)}")
    daily = _get(t, "daily", str, where, "business")
    if daily not in DAILY_SHAPES:
        raise ScenarioError(f"{where}: daily {daily!r} is not one of {', '.join(DAILY_SHAPES)}")
    window = t.get("window")
    if window is not None:
        if (not isinstance(window, list) or len(window) != 2
                or not all(isinstance(h, int) and 0 <= h <= 24 for h in window)
                or window[0] == window[1]):
            raise ScenarioError(f"{where}: window {window!r} must be [start_hour, end_hour] "
                                "in UTC, e.g. [1, 5]")
        window = (window[0], window[1])
    elif kind == "batch":
        raise ScenarioError(f"{where}: a batch app needs window = [start_hour, end_hour]")
    prompt = _lengths(t, "prompt", where)
    if prompt is None:
        raise ScenarioError(f"{where}: missing field 'prompt'")
    output = _lengths(t, "output", where)
    if output is None and kind != "embeddings":
        raise ScenarioError(f"{where}: missing field 'output'")
    bursts = t.get("bursts")
    if bursts is not None:
        if not isinstance(bursts, dict):
            raise ScenarioError(f"{where}: bursts must be {{ per_day, minutes, factor }}")
        bw = f"{where} bursts"
        _only(bursts, {"per_day", "minutes", "factor"}, bw)
        bursts = Bursts(float(_positive(bursts, "per_day", bw)),
                        float(_positive(bursts, "minutes", bw)),
                        float(_positive(bursts, "factor", bw)))
    retrieval = _lengths(t, "retrieval_ms", where)
    if kind == "rag" and retrieval is None:
        retrieval = Lengths(120, 0.5)
    steps, tool_ms, tool_tokens = (_lengths(t, k, where)
                                   for k in ("steps", "tool_ms", "tool_tokens"))
    if kind == "agent":
        steps, tool_ms = steps or Lengths(3, 0.4), tool_ms or Lengths(300, 0.6)
        tool_tokens = tool_tokens or Lengths(250, 0.6)
    elif steps or tool_ms or tool_tokens:
        raise ScenarioError(f"{where}: steps, tool_ms and tool_tokens are for kind = \"agent\"")
    retries = t.get("retries", 0)
    if not isinstance(retries, int) or isinstance(retries, bool) or not 0 <= retries <= 5:
        raise ScenarioError(f"{where}: retries = {retries!r} must be a whole number 0–5")
    return App(
        tenant=_get(t, "tenant", str, where), name=_get(t, "name", str, where), kind=kind,
        model=_get(t, "model", str, where),
        peak_per_min=float(_positive(t, "peak_per_min", where)),
        prompt=prompt, output=output or Lengths(1, 0.0), daily=daily, window=window,
        stream_share=_share(t, "stream_share", where, 0.0),
        abort_share=_share(t, "abort_share", where, 0.0),
        error_share=_share(t, "error_share", where, 0.01),
        timeout_s=_positive(t, "timeout_s", where, None), bursts=bursts,
        retrieval_ms=retrieval,
        context_share=_share(t, "context_share", where, 0.85 if kind == "rag" else 0.0),
        steps=steps, tool_ms=tool_ms, tool_tokens=tool_tokens, retries=retries,
        retry_backoff_s=float(_positive(t, "retry_backoff_s", where, 1.0)))

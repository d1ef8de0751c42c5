"""The wire contract (inferledger/contract.py) is the only vocabulary on the wire.

Every name a producer (middleware, gateway, node agent, simulator) writes or the analytics
SQL reads must be one the contract defines, and docs/CONTRACT.md must document every one of
them: a name added to the code alone, or to the docs alone, fails here.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from inferledger import contract

ROOT = Path(__file__).resolve().parent.parent
PRODUCERS = sorted(p for role in ("agents", "simulator", "collector")
                   for p in (ROOT / role).rglob("*.py"))
SQL = sorted((ROOT / "analytics" / "sql").rglob("*.sql"))
# Names in these namespaces are wire names wherever they appear in a producer's source.
WIRE = re.compile(r"^(inferledger|gen_ai|hw|vllm)[.:][A-Za-z0-9_.:]+$")
# Strings that name a logger, a tracer, a meter or a scope: not attributes or metrics (the
# simulator's OTLP batch writer takes the scope second: ``span(resource, scope, …)``).
NAMING_CALLS = {"getLogger": 0, "get_tracer": 0, "get_meter": 0, "InstrumentationScope": 0,
                "span": 1}
SQL_NAMES = [
    re.compile(r"(?:resource_)?attributes\['([^']+)'\]"),  # attribute lookups
    re.compile(r"metric_name\s*(?:=|<>)\s*'([^']+)'"),
    re.compile(r"\b(?:gauge|counter)\s*=\s*'([^']+)'"),
    re.compile(r"\bname\s*=\s*'([^']+)'"),  # span names
]
SQL_LISTS = re.compile(r"metric_name\s+IN\s*\(([^)]*)\)|\b(?:gauge|counter)\s+IN\s*\(([^)]*)\)")


def _python_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in NAMING_CALLS and len(node.args) > NAMING_CALLS[name]:
                skipped.add(id(node.args[NAMING_CALLS[name]]))
        elif isinstance(node, ast.Dict | ast.JoinedStr):
            # a dict's values are values (its keys are names); an f-string's pieces are no
            # names alone
            skipped.update(id(v) for v in node.values)
        elif isinstance(node, ast.Assign) and any(  # scope.name = "…"
                isinstance(t, ast.Attribute) and t.attr == "name" for t in node.targets):
            skipped.add(id(node.value))
    return {n.value for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str)
            and id(n) not in skipped and WIRE.match(n.value)}


def _sql_names(path: Path) -> set[str]:
    text = re.sub(r"--[^\n]*", "", path.read_text())  # comments say names, they don't use
    found = {m for pattern in SQL_NAMES for m in pattern.findall(text)}
    for groups in SQL_LISTS.findall(text):
        for group in groups:
            found |= set(re.findall(r"'([^']+)'", group))
    return found


def test_producers_use_only_names_the_contract_defines() -> None:
    defined = contract.defined()
    # prometheus_client adds "_total" to a counter's name (the simulated /metrics)
    unknown = {f"{p.relative_to(ROOT)}: {n}" for p in PRODUCERS for n in _python_names(p)
               if n not in defined and f"{n}_total" not in defined}
    assert not unknown, "names on the wire that inferledger/contract.py does not define:\n" \
        + "\n".join(sorted(unknown))


def test_the_sql_reads_only_names_the_contract_defines() -> None:
    defined = contract.defined()
    # Names the settings make configurable (the [answers] keys) are read as variables.
    unknown = {f"{p.relative_to(ROOT)}: {n}" for p in SQL for n in _sql_names(p)
               if n not in defined}
    assert not unknown, "names the SQL reads that inferledger/contract.py does not define:\n" \
        + "\n".join(sorted(unknown))


def test_the_scan_sees_names_where_they_are() -> None:
    """The scanners find what they are for (else the two tests above pass vacuously)."""
    mw = _python_names(ROOT / "agents" / "tracing" / "middleware.py")
    assert {"inferledger.outcome", "gen_ai.usage.output_tokens", "inferledger.ttft_s"} <= mw
    assert "inferledger.middleware" not in mw  # its logger's and tracer's name
    sql = _sql_names(ROOT / "inferledger" / "store" / "sql" / "staging" / "stg_spans.sql")
    assert {"gen_ai.latency.time_in_queue", "vllm.process_id", "llm_request"} <= sql
    gpu = _sql_names(ROOT / "inferledger" / "store" / "sql" / "staging" / "stg_gpu.sql")
    assert {"hw.energy", "inferledger.gpu.process.memory.usage"} <= gpu


def test_docs_contract_documents_every_name_and_no_other() -> None:
    doc = (ROOT / "docs" / "CONTRACT.md").read_text()
    in_doc = set(re.findall(r"^\| `([^`]+)` \|", doc, flags=re.MULTILINE))
    defined = contract.defined()
    assert defined - in_doc == set(), "defined but not documented"
    assert in_doc - defined == set(), "documented but not defined"
    for value, work_class in contract.OUTCOMES.items():
        assert f"`{value}` → `{work_class}`" in doc

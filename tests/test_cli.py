"""Every command explains itself, and the read commands work on an empty store."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest

from commands.cli import build_parser, main
from inferledger.store import DataDir, write_catalog


def _commands(parser: argparse.ArgumentParser, prefix=()) -> list[tuple[str, ...]]:
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out.append((*prefix, name))
                out += _commands(sub, (*prefix, name))
    return out


@pytest.mark.parametrize("cmd", _commands(build_parser()))
def test_help(cmd, capsys) -> None:
    with pytest.raises(SystemExit) as e:
        main([*cmd, "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    assert "usage: inferledger" in text and len(text) > 200


def test_stores_are_taken_with_data(tmp_path) -> None:
    readers = [c for c in _commands(build_parser())
               if c[0] in ("collector", "analytics", "scheduler", "dashboard", "sql", "demo")
               and c not in (("analytics",),)]
    required = {("analytics", "export"): ["--out", "costs.csv"],
                ("analytics", "backfill"): ["--since", "2026-11-01", "--until", "2026-11-02"]}
    for cmd in readers:
        args = build_parser().parse_args([*cmd, "--data", str(tmp_path), *required.get(cmd, [])])
        assert args.data == str(tmp_path), cmd


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "commands", *args], capture_output=True,
                          text=True, timeout=60)


def _empty_store(path) -> str:
    """A store as a collector leaves it when nothing has arrived yet."""
    write_catalog(DataDir.at(path))
    return str(path)


def test_summary_json_on_an_empty_store(tmp_path) -> None:
    _empty_store(tmp_path)
    out = _cli("analytics", "summary", "--json", "--data", str(tmp_path))
    assert out.returncode == 2 and "inferledger analytics run" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert _cli("analytics", "run", "--data", str(tmp_path)).returncode == 0
    out = _cli("analytics", "summary", "--json", "--data", str(tmp_path))
    assert out.returncode == 0, out.stderr
    s = json.loads(out.stdout)
    assert s["requests"] == 0 and s["conservation_max_rel_error"] == 0.0


def test_backfill_command(tmp_path) -> None:
    _empty_store(tmp_path)
    out = _cli("analytics", "backfill", "--data", str(tmp_path), "--since", "2026-11-01",
               "--until", "2026-11-03")
    assert out.returncode == 0, out.stderr
    assert "3/3 days" in out.stderr and "3 day(s)" in out.stdout
    bad = _cli("analytics", "backfill", "--data", str(tmp_path), "--since", "yesterday",
               "--until", "2026-11-03")
    assert bad.returncode == 2 and "not an ISO date" in bad.stderr


def test_sql_errors_are_reported_not_raised(tmp_path, capsys) -> None:
    _empty_store(tmp_path)
    assert main(["sql", "--data", str(tmp_path), "SELECT * FROM no_such_table"]) == 1
    assert "no_such_table" in capsys.readouterr().err

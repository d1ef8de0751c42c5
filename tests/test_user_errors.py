"""What a user gets wrong is one line naming what and where, exit 2, and nothing else happens.

Every case runs the command as a user does, in its own process."""

from __future__ import annotations

import subprocess
import sys

import pytest

from analytics.compute import ConservationError
from inferledger.errors import ProductError
from inferledger.store import DataDir, write_catalog


def _cli(*args: str, env: dict[str, str] | None = None, cwd=None
         ) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-m", "commands", *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, **(env or {})}, cwd=cwd)


def _one_line(out: subprocess.CompletedProcess, *expected: str) -> str:
    """Exit 2, one line on stderr containing every ``expected``, no traceback."""
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2, (out.returncode, out.stderr)
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    for text in expected:
        assert text in lines[0], (text, lines[0])
    return lines[0]


def _store(path) -> str:
    write_catalog(DataDir.at(path))
    return str(path)


def test_a_bad_log_level_from_the_environment(tmp_path) -> None:
    _one_line(_cli("sql", "--data", _store(tmp_path), env={"INFERLEDGER_LOG_LEVEL": "verbose"}),
              "INFERLEDGER_LOG_LEVEL", "'verbose'", "DEBUG, INFO, WARNING, ERROR")


def test_the_data_directory_comes_from_the_environment_below_the_argument(tmp_path) -> None:
    store, other = _store(tmp_path / "store"), tmp_path / "typo"
    assert _cli("sql", env={"INFERLEDGER_DATA": store}).returncode == 0
    _one_line(_cli("sql", "--data", str(other), env={"INFERLEDGER_DATA": store}), str(other))


def test_a_non_numeric_smtp_port(tmp_path) -> None:
    _one_line(_cli("report", "send", "--week", "2026-W47", "--data", _store(tmp_path),
                   env={"INFERLEDGER_SMTP_PORT": "abc", "INFERLEDGER_REPORT_TO": "a@x.io"}),
              "INFERLEDGER_SMTP_PORT = 'abc'", "an integer from 1 to 65535")


def test_a_bad_report_field_names_the_file_and_table(tmp_path) -> None:
    f = tmp_path / "settings.toml"
    f.write_text('[report]\nto = ["a@x.io"]\n[report.smtp]\nport = "five"\n')
    _one_line(_cli("report", "send", "--week", "2026-W47", "--config", str(f),
                   "--data", _store(tmp_path / "d")),
              f"{f} [report.smtp] port = 'five'", "integer")


def test_a_price_that_is_not_a_number_names_the_file_and_field(tmp_path) -> None:
    f = tmp_path / "pricing.toml"
    f.write_text('version = "v9"\n[[gpu]]\nmatch = "H100"\nusd_per_hour = "cheap"\n')
    _one_line(_cli("analytics", "run", "--pricing", str(f), "--data", _store(tmp_path / "d")),
              f"{f} [[gpu]] 'H100' usd_per_hour = 'cheap'", "a number ≥ 0")


def test_a_bad_settings_field(tmp_path) -> None:
    f = tmp_path / "settings.toml"
    f.write_text('[attribution]\nprefill_token_weight = "heavy"\n')
    _one_line(_cli("analytics", "run", "--config", str(f), "--data", _store(tmp_path / "d")),
              f"{f} [attribution] prefill_token_weight = 'heavy'", "a number")


def test_demo_with_a_bad_pricing_file_starts_nothing(tmp_path) -> None:
    f = tmp_path / "bad.toml"
    f.write_text('version = "v"\n[energy]\npue = 0.5\n')
    data = tmp_path / "data"
    _one_line(_cli("demo", "--pricing", str(f), "--data", str(data), "--no-dashboard"),
              f"{f} [energy] pue = 0.5", "≥ 1")
    assert not data.exists()  # no store, so no child was started either


def test_demo_with_an_unknown_scenario_starts_nothing(tmp_path) -> None:
    data = tmp_path / "data"
    out = _cli("demo", "--scenario", "nope", "--data", str(data), "--no-dashboard")
    _one_line(out, "no scenario 'nope'", "demo")
    assert out.stdout == "" and not data.exists()


def test_readers_never_create_a_store(tmp_path) -> None:
    typo = tmp_path / "typo"
    line = _one_line(_cli("sql", "--data", str(typo), "SELECT * FROM request_costs"),
                     f"{typo}: no such directory")
    assert "Did you mean" not in line and not typo.exists()


def _results_of_an_older_version(path, table: str = "spend_hourly") -> None:
    """Published results from before ``table`` existed: the other tables, not it."""
    import shutil

    from analytics.pipeline import run

    data = DataDir.at(path)
    run(data)
    shutil.rmtree(data.derived_table(table).resolve())  # its folder in the snapshot


@pytest.mark.parametrize("make, says", [
    (lambda p: None, "no such directory"),
    (lambda p: p.mkdir(), "is not an InferLedger store"),
    (lambda p: p.write_text("x"), "is a file, not a data directory"),
    (lambda p: write_catalog(DataDir.at(p)), "no analytics results"),
    (lambda p: _results_of_an_older_version(p), "analytics run --reprice"),
    (lambda p: _results_of_an_older_version(p, "answer_costs"), "predate answers"),
])
def test_summary_says_what_the_path_is(tmp_path, make, says) -> None:
    path = tmp_path / "d"
    make(path)
    _one_line(_cli("analytics", "summary", "--data", str(path)), says)


def test_a_conservation_failure_is_reported_as_a_bug_of_ours(tmp_path, monkeypatch,
                                                              caplog) -> None:
    import analytics.pipeline
    from commands.cli import main

    assert issubclass(ConservationError, ProductError)
    assert not issubclass(ConservationError, AssertionError)

    def broken(*_: object, **__: object) -> None:
        raise ConservationError("conservation violated: max relative error 1e-3")

    monkeypatch.setattr(analytics.pipeline, "run", broken)
    assert main(["analytics", "run", "--data", _store(tmp_path)]) == 3
    assert "a bug in InferLedger" in caplog.text


def test_the_middleware_checks_its_environment() -> None:
    from agents.tracing.config import MiddlewareConfig
    from inferledger.config import SettingError

    with pytest.raises(SettingError, match=r"INFERLEDGER_REQUEST_USAGE = 'maybe'.*true or false"):
        MiddlewareConfig.from_env({"INFERLEDGER_REQUEST_USAGE": "maybe",
                                   "INFERLEDGER_TENANT_HASH_KEY": "k"})
    with pytest.raises(SettingError, match="INFERLEDGER_OTLP_PROTOCOL = 'udp'"):
        MiddlewareConfig.from_env({"INFERLEDGER_OTLP_PROTOCOL": "udp",
                                   "INFERLEDGER_TENANT_HASH_KEY": "k"})
    cfg = MiddlewareConfig.from_env({"INFERLEDGER_REQUEST_USAGE": "false",
                                     "INFERLEDGER_TENANT_HASH_KEY": "k"})
    # no endpoint of its own: vLLM's exporter settings, and vLLM's default protocol
    assert cfg.request_usage is False and cfg.protocol == "grpc"


def test_an_unknown_attribution_method(tmp_path) -> None:
    _one_line(_cli("analytics", "run", "--data", _store(tmp_path), "--method", "equal"),
              "'equal'", "work", "time_overlap")

"""One resolver for every setting: argument → environment → file → default, checked at start.

Each setting has a *kind* (what values are allowed, said in words for the error) and up to
three sources; the first source that sets it wins and is checked, so a bad value is caught
whichever source it came from, when the command starts, with one line naming where it came
from (``--port``, ``INFERLEDGER_SMTP_PORT``, ``settings.toml [report.smtp] port``), the value
and what is allowed. Files are read with :func:`read_toml`, whose errors name the file.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inferledger.errors import UserError

_UNSET: Any = object()


class SettingError(UserError):
    """A setting's value is not one of those allowed."""


@dataclass(frozen=True)
class Kind:
    """What a setting may be: ``allowed`` in words, ``parse`` turns a raw value (a TOML value
    or an environment string) into the setting, raising ValueError or TypeError if it cannot."""

    allowed: str
    parse: Callable[[Any], Any]


def _no_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise TypeError("a boolean is not a number")
    return value


def integer(lo: int | None = None, hi: int | None = None) -> Kind:
    def parse(v: Any) -> int:
        v = _no_bool(v)
        n = int(v.strip()) if isinstance(v, str) else v
        if not isinstance(n, int) or (lo is not None and n < lo) or (hi is not None and n > hi):
            raise ValueError(v)
        return n
    bounds = (f" from {lo} to {hi}" if lo is not None and hi is not None
              else f" ≥ {lo}" if lo is not None else f" ≤ {hi}" if hi is not None else "")
    return Kind(f"an integer{bounds}", parse)


def number(lo: float | None = None, hi: float | None = None, *, above: bool = False) -> Kind:
    """A finite number within [lo, hi] (``above``: strictly greater than ``lo``)."""
    def parse(v: Any) -> float:
        v = _no_bool(v)
        if not isinstance(v, int | float | str):
            raise TypeError(v)
        x = float(v)
        if not math.isfinite(x) or (lo is not None and (x <= lo if above else x < lo)) or (
                hi is not None and x > hi):
            raise ValueError(v)
        return x
    if lo is not None and hi is not None:
        bounds = f" from {lo:g} to {hi:g}"
    elif lo is not None:
        bounds = f" {'>' if above else '≥'} {lo:g}"
    else:
        bounds = f" ≤ {hi:g}" if hi is not None else ""
    return Kind(f"a number{bounds}", parse)


PORT = integer(0, 65535)


def choice(*values: str, case_sensitive: bool = False) -> Kind:
    def parse(v: Any) -> str:
        if not isinstance(v, str):
            raise TypeError(v)
        for allowed in values:
            if v == allowed or (not case_sensitive and v.lower() == allowed.lower()):
                return allowed
        raise ValueError(v)
    return Kind("one of " + ", ".join(values), parse)


def text(nonempty: bool = True) -> Kind:
    def parse(v: Any) -> str:
        if not isinstance(v, str) or (nonempty and not v.strip()):
            raise ValueError(v)
        return v
    return Kind("a non-empty string" if nonempty else "a string", parse)


_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def _bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.strip().lower() in _TRUE + _FALSE:
        return v.strip().lower() in _TRUE
    raise ValueError(v)


BOOLEAN = Kind("true or false", _bool)


def check(kind: Kind, value: Any, name: str) -> Any:
    """``value`` as ``kind``, or a :class:`SettingError` naming ``name`` and what is allowed."""
    try:
        return kind.parse(value)
    except (TypeError, ValueError, OverflowError):
        raise SettingError(f"{name} = {value!r} is not allowed: expected {kind.allowed}") from None


def resolve(kind: Kind, *, arg: Any = None, flag: str = "", env: Mapping[str, str] | None = None,
            var: str = "", table: Mapping[str, Any] | None = None, key: str = "",
            where: str = "", default: Any = None) -> Any:
    """The setting from the first source that sets it: the command-line argument ``arg``
    (``flag`` names it), the environment variable ``var``, the file's ``table[key]`` (``where``
    names the file and table), else ``default`` (not checked: it is ours)."""
    if arg is not None:
        return check(kind, arg, flag or "argument")
    environ = os.environ if env is None else env
    if var and environ.get(var, "") != "":
        return check(kind, environ[var], var)
    if table is not None and key in table:
        return check(kind, table[key], f"{where} {key}".strip())
    return default


def read_field(table: Mapping[str, Any], key: str, kind: Kind, where: str,
          default: Any = _UNSET) -> Any:
    """A field of a file's table, checked; missing → ``default``, or an error if required."""
    if key not in table:
        if default is _UNSET:
            raise SettingError(f"{where}: missing field {key!r} ({kind.allowed})")
        return default
    return check(kind, table[key], f"{where} {key}")


def table_of(doc: Mapping[str, Any], key: str, where: str) -> dict[str, Any]:
    """A sub-table (``[key]``), empty when absent, an error when it is not a table."""
    value = doc.get(key, {})
    if not isinstance(value, dict):
        raise SettingError(f"{where}: {key} must be a table ([{key}]), not {value!r}")
    return value


def tables_of(doc: Mapping[str, Any], key: str, where: str) -> list[dict[str, Any]]:
    """An array of tables (``[[key]]``), empty when absent."""
    value = doc.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise SettingError(f"{where}: {key} must be an array of tables ([[{key}]])")
    return value


def read_toml(path: str | Path, what: str) -> dict[str, Any]:
    """A TOML file as a dict; a missing, unreadable or invalid file is one line naming it."""
    try:
        return tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise SettingError(f"{what} {path}: no such file") from None
    except IsADirectoryError:
        raise SettingError(f"{what} {path}: is a directory, not a TOML file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SettingError(f"cannot read {what} {path}: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise SettingError(f"{what} {path}: not valid TOML: {e}") from None

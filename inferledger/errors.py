"""The two kinds of failure a command can end with, told apart once, at the CLI's edge.

A :class:`UserError` is something the user gave or asked for that cannot be done as given (a
bad setting, a path that is not a store, a port or data directory another process holds):
its message is one line that says what and what to do, and the command exits 2 without a
traceback. A :class:`ProductError` is InferLedger itself getting something wrong (a broken
invariant such as conservation): it is reported as a bug, exit 3, never as the user's fault.
Anything else is unexpected and keeps its traceback.
"""

from __future__ import annotations

USER_ERROR_EXIT = 2
PRODUCT_ERROR_EXIT = 3


class UserError(Exception):
    """A one-line error about what the user gave; exit 2."""


class ProductError(Exception):
    """InferLedger broke one of its own invariants; a bug to report; exit 3."""

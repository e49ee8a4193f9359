"""When to log a counted rejection: the first few, then one in ``every``.

Bad input is counted, logged and skipped; a flood of it must not flood the
log, so each kind of rejection logs its first ``first`` occurrences and then
every ``every``-th, with the running count in the message.
"""

from __future__ import annotations


def should_log(count: int, first: int = 10, every: int = 1000) -> bool:
    """True for the ``count``-th rejection of a kind if it should be logged."""
    return count <= first or count % every == 0

"""The compiled book side (``_cside.c``) against its pure-Python reference."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from microstream.book import orderbook
from microstream.book.orderbook import PySide

try:
    from microstream.book._cside import Side as CSide
except ImportError as exc:  # pragma: no cover - a failure, not a skip
    raise AssertionError(
        "the compiled book side is not built: run `make install` (needs gcc)"
    ) from exc

# Binance-like prices: cents around 60,000, plus some deep and some tiny ones.
cents = st.integers(min_value=1, max_value=3000).map(lambda c: float(f"{60000 + c / 100:.2f}"))
odd = st.sampled_from([0.00000001, 0.1234, 1.0, 99.99, 12345678.9, 89_999_999.99])
quantities = st.one_of(
    st.just(0.0), st.integers(min_value=1, max_value=10**7).map(lambda n: n / 10_000)
)
level = st.tuples(st.one_of(cents, cents, cents, odd), quantities)
bad_level = st.sampled_from(
    [
        (math.nan, 1.0),
        (60000.0, math.nan),
        (math.inf, 1.0),
        (60000.0, math.inf),
        (-1.0, 1.0),
        (0.0, 1.0),
        (60000.0, -0.5),
        (1e10, 1.0),
    ]
)


def test_the_compiled_side_is_in_use() -> None:
    assert orderbook.COMPILED and orderbook.Side is CSide


@pytest.mark.parametrize("sign", [1, -1])
@given(
    snapshot=st.lists(level, max_size=200),
    updates=st.lists(st.lists(level, max_size=30), max_size=40),
    depth=st.integers(min_value=0, max_value=12),
)
@settings(max_examples=300, deadline=None)
def test_compiled_side_equals_reference(
    sign: int,
    snapshot: list[tuple[float, float]],
    updates: list[list[tuple[float, float]]],
    depth: int,
) -> None:
    ref, fast = PySide(sign), CSide(sign)
    ref.load(snapshot)
    fast.load(snapshot)
    assert fast.levels() == ref.levels()
    for batch in updates:
        ref.update(batch)
        fast.update(batch)
        assert len(fast) == len(ref)
        assert fast.best() == ref.best()
        assert fast.best_tick() == ref.best_tick()
        assert fast.top(depth) == ref.top(depth)
        assert fast.levels(depth) == ref.levels(depth)
    assert fast.levels() == ref.levels()
    fast.clear()
    ref.clear()
    assert fast.levels() == ref.levels() == [] and fast.best() is None is ref.best()


@pytest.mark.parametrize("sign", [1, -1])
@given(good=st.lists(level, max_size=10), bad=bad_level)
@settings(max_examples=200, deadline=None)
def test_both_sides_reject_the_same_bad_levels(
    sign: int, good: list[tuple[float, float]], bad: tuple[float, float]
) -> None:
    for side in (PySide(sign), CSide(sign)):
        with pytest.raises(ValueError):
            side.update([*good, bad])
        with pytest.raises(ValueError):
            side.load([*good, bad])


def test_compiled_side_rejects_malformed_levels() -> None:
    side = CSide(1)
    for bad in ([(1.0,)], [(1.0, 2.0, 3.0)], ["ab"], [("x", 1.0)], [None]):
        with pytest.raises((ValueError, TypeError)):
            side.update(bad)
    with pytest.raises(ValueError):
        CSide(0)
    uninitialised = CSide.__new__(CSide)
    with pytest.raises(ValueError):
        uninitialised.update([(1.0, 1.0)])
    assert len(side) == 0


def test_a_deep_side_keeps_order() -> None:
    """Thousands of levels, inserted in every order, come out sorted best first."""
    ref, fast = PySide(-1), CSide(-1)
    prices = [60000 + ((i * 7919) % 5000) / 100 for i in range(5000)]
    batch = [(p, 1.0 + i % 7) for i, p in enumerate(prices)]
    ref.update(batch)
    fast.update(batch)
    assert fast.levels() == ref.levels()
    removal = [(p, 0.0) for p in prices[::3]]
    ref.update(removal)
    fast.update(removal)
    assert fast.levels() == ref.levels() and fast.top(5) == ref.top(5)


@given(
    levels=st.lists(
        st.one_of(level, bad_level, st.tuples(st.floats(), st.floats()), st.just((1, 2.0))),
        max_size=12,
    ),
    allow_zero=st.booleans(),
)
@settings(max_examples=400, deadline=None)
def test_compiled_level_check_equals_reference(
    levels: list[tuple[float, float]], allow_zero: bool
) -> None:
    from microstream.book._cside import first_bad_level

    assert first_bad_level(levels, allow_zero) == orderbook.py_first_bad_level(levels, allow_zero)
    assert orderbook.first_bad_level is first_bad_level

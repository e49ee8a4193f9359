"""The compiled OFI (``_cside.ofi_levels``) is bit-identical to the Python reference."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from microstream.events import BookTop
from microstream.features import book_math
from microstream.features.book_math import ofi_pair, py_ofi_pair

PRICES = st.sampled_from([99.98, 99.99, 100.0, 100.01, 100.02, 0.1, 1e9])
QTYS = st.one_of(st.floats(0.0, 50.0, allow_nan=False), st.sampled_from([0.0, 1e-8, 3.5]))
LEVEL = st.tuples(st.one_of(PRICES, st.none()), st.one_of(QTYS, st.none()))


def _top(levels: list[tuple[float | None, float | None]]) -> BookTop:
    px = tuple(p for p, _ in levels)
    qty = tuple(q for _, q in levels)
    return BookTop("binance", "X", 0, 0, 1, px[:5], qty[:5], px[5:], qty[5:], True, 1)


def test_the_compiled_ofi_is_in_use() -> None:
    assert book_math._ofi_levels is not None, "run `make install` to build _cside"


@settings(max_examples=400, deadline=None)
@given(
    st.lists(LEVEL, min_size=10, max_size=10),
    st.lists(LEVEL, min_size=10, max_size=10),
    st.booleans(),
)
def test_compiled_ofi_equals_the_python_reference_bit_for_bit(
    prev: list[tuple[float | None, float | None]],
    cur: list[tuple[float | None, float | None]],
    complete: bool,
) -> None:
    if complete:  # the compiled path itself (no missing level)
        prev = [(p or 100.0, 1.0 if q is None else q) for p, q in prev]
        cur = [(p or 100.0, 1.0 if q is None else q) for p, q in cur]
    a, b = _top(prev), _top(cur)
    got, expected = ofi_pair(a, b), py_ofi_pair(a, b)
    assert [x.hex() for x in got] == [x.hex() for x in expected]
    if complete:
        assert book_math._ofi_levels is not None
        assert (
            book_math._ofi_levels(
                b.bid_px, b.bid_qty, a.bid_px, a.bid_qty, b.ask_px, b.ask_qty, a.ask_px, a.ask_qty
            )
            == got
        )

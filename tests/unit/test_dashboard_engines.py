"""Dashboard over several engines: URL lists, names with several addresses, routing.

Two real engine API servers (``microstream.api`` over live stores holding
different symbols) listen on 127.0.0.1 and 127.0.0.2 with the same port (Linux
routes all of 127.0.0.0/8 to loopback), as two engine containers behind one
Docker DNS name would. Host names are resolved by an injected resolver.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from microstream.api import EngineApi
from microstream.commands.dashboard import app_path
from microstream.dashboard import data, engines, launcher
from microstream.dashboard.synthetic import SyntheticFeed, filled_store, synthetic_health
from microstream.live_state import LiveStateStore

TIMEOUT_S = 60
NAME = "engines.test"
BTC, ETH = "binance:BTCUSDT", "binance:ETHUSDT"


# -- helpers ----------------------------------------------------------------------


def free_port() -> int:
    """A port free on both 127.0.0.1 and 127.0.0.2."""
    for _ in range(20):
        with socket.socket() as a, socket.socket() as b:
            a.bind(("127.0.0.1", 0))
            port = int(a.getsockname()[1])
            try:
                b.bind(("127.0.0.2", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no port free on both loopback addresses")


def engine_store(source: str, *symbols: str) -> LiveStateStore:
    """A store with synthetic rows of ``symbols``, its source named ``source``."""
    store, _ = filled_store(symbols, seconds=120)
    store.set_source(source, True)
    return store


def owning(store: LiveStateStore, *labels: str) -> Callable[[], dict[str, Any]]:
    """A health provider whose ``symbols`` lists only ``labels`` (the engine's partitions)."""

    def provider() -> dict[str, Any]:
        doc = synthetic_health(store)
        doc["symbols"] = {k: {"book_state": "synced", "book_valid": True} for k in labels}
        doc["partitions"] = list(range(len(labels)))
        return doc

    return provider


class Pair:
    """Engine A (BTCUSDT) on 127.0.0.1:port and engine B (ETHUSDT) on 127.0.0.2:port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.store_a = engine_store("engine-a", "BTCUSDT")
        self.store_b = engine_store("engine-b", "ETHUSDT")
        self.a = EngineApi(self.store_a, host="127.0.0.1", port=self.port)
        self.b = EngineApi(self.store_b, host="127.0.0.2", port=self.port)
        self.a.start()
        self.b.start()

    @property
    def urls(self) -> str:
        return f"{self.a.url},{self.b.url}"

    def stop(self) -> None:
        self.a.stop()
        self.b.stop()


@pytest.fixture
def pair() -> Iterator[Pair]:
    engines_ = Pair()
    try:
        yield engines_
    finally:
        engines_.stop()


@pytest.fixture
def resolver() -> Iterator[Callable[[list[str]], None]]:
    """Make ``engines.test`` resolve to the addresses given (restored afterwards)."""

    def use(addresses: list[str]) -> None:
        def resolve(host: str, port: int) -> list[str]:
            if host != NAME:
                raise socket.gaierror(f"unknown host {host}")
            return list(addresses)

        engines.set_resolver(resolve)

    try:
        yield use
    finally:
        engines.set_resolver(None)


def open_page(page: str = "live") -> AppTest:
    data.clear_cache()
    at = AppTest.from_file(str(app_path()), default_timeout=TIMEOUT_S)
    at.run()
    if page != "live":
        at.switch_page(f"views/{page}.py")
        at.run()
    return at


def rerun(at: AppTest) -> None:
    data.clear_cache()
    at.run()


def texts(at: AppTest) -> str:
    kinds = ("title", "subheader", "markdown", "caption", "error", "warning", "info")
    parts = [str(getattr(e, "value", "")) for kind in kinds for e in at.get(kind)]
    return "\n".join(parts)


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert "Traceback" not in texts(at)


def selector(at: AppTest) -> list[str]:
    if at.sidebar.selectbox:
        return list(at.sidebar.selectbox[0].options)
    return [c.value.split("**")[1] for c in at.sidebar.caption if "Symbol:" in c.value]


def shown_source(at: AppTest) -> str:
    """The source named in the Live page's subheader (``SYMBOL · exchange · source `x```)."""
    heads = [s.value for s in at.subheader if "source `" in s.value]
    assert heads, [s.value for s in at.subheader]
    return str(heads[0]).split("source `")[1].rstrip("`")


def engines_table(at: AppTest) -> list[dict[str, Any]]:
    tables = [d.value for d in at.dataframe if "configured as" in d.value.columns]
    assert tables, "no engines table on the page"
    rows: list[dict[str, Any]] = tables[0].to_dict("records")
    return rows


# -- the setting: lists and names ----------------------------------------------------


def test_split_urls_normalizes_lists() -> None:
    assert engines.split_urls(" http://a:1/ , b:2,, https://c/x/ ") == [
        "http://a:1",
        "http://b:2",
        "https://c/x",
    ]
    assert engines.normalize("http://127.0.0.1:8765/") == "http://127.0.0.1:8765"


def test_name_with_several_addresses_expands_to_one_engine_each() -> None:
    known = {
        "engine": ["10.0.0.3", "10.0.0.2", "10.0.0.3"],
        "solo": ["10.0.0.9"],
        "dual": ["fd00::9", "10.0.0.9"],  # one dual-stack engine: an A and an AAAA record
        "v6": ["fd00::6", "fd00::5"],
    }

    def resolve(host: str, port: int) -> list[str]:
        if host not in known:
            raise socket.gaierror(f"unknown host {host}")
        assert port == 8765
        return known[host]

    found = engines.expand("http://engine:8765", resolve)
    # sorted (DNS servers rotate their answers), without repeats
    assert [e.url for e in found] == ["http://10.0.0.2:8765", "http://10.0.0.3:8765"]
    assert {e.origin for e in found} == {"http://engine:8765"}
    assert [e.url for e in engines.expand("https://v6:8765/x", resolve)] == [
        "https://[fd00::5]:8765/x",
        "https://[fd00::6]:8765/x",
    ]
    # one address (per family), an IP literal, localhost, an unknown name: kept as written
    for single in ("http://solo:8765", "http://dual:8765"):
        assert [e.url for e in engines.expand(single, resolve)] == [single]
    kept = "http://127.0.0.1:8765,http://localhost:9000,http://nowhere:1"
    assert [e.url for e in engines.expand(kept, resolve)] == kept.split(",")
    # the same engine named twice is asked once
    assert len(engines.expand("http://10.0.0.3:8765,http://engine:8765", resolve)) == 2


def test_resolve_host_uses_getaddrinfo() -> None:
    assert engines.resolve_host("127.0.0.1", 80) == ["127.0.0.1"]
    assert "127.0.0.1" in engines.resolve_host("localhost", 80)
    with pytest.raises(OSError):
        engines.resolve_host("no-such-host.invalid", 80)


def test_names_are_resolved_again_periodically() -> None:
    answers = [["10.0.0.1", "10.0.0.2"], ["10.0.0.1", "10.0.0.2", "10.0.0.3"]]
    calls: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        return answers[min(len(calls), len(answers)) - 1]

    engines.set_resolver(resolve)
    try:
        first = engines.endpoints("http://engine:8765", now=100.0)
        again = engines.endpoints("http://engine:8765", now=100.0 + engines.RESOLVE_EVERY_S / 2)
        later = engines.endpoints("http://engine:8765", now=100.0 + engines.RESOLVE_EVERY_S + 1)
    finally:
        engines.set_resolver(None)
    assert len(first) == 2 and again == first and len(calls) == 2
    assert [e.url for e in later][-1] == "http://10.0.0.3:8765"


def test_route_follows_ownership_from_health() -> None:
    a, b = engines.Endpoint("http://a", "x"), engines.Endpoint("http://b", "x")

    def status(ep: engines.Endpoint, held: list[str], owned: list[str] | None) -> Any:
        symbols = [dict(zip(("exchange", "symbol"), h.split(":"), strict=True)) for h in held]
        health = None if owned is None else {"symbols": {o: {"book_valid": True} for o in owned}}
        return engines.engine_status(ep, {"source": "kafka", "symbols": symbols}, health)

    # A still holds ETH's rows after handing it to B, which has none yet: read B
    moved = engines.route([status(a, [BTC, ETH], [BTC]), status(b, [], [ETH])])
    assert moved.routes == {BTC: "http://a", ETH: "http://b"}
    # B is down: ETH is only a stale copy on A, not listed
    down = engines.route([status(a, [BTC, ETH], [BTC]), engines.engine_status(b, None, None, "x")])
    assert down.labels == [BTC] and down.stale == (ETH,) and down.reason() == "x"
    # an engine giving no per-symbol health serves what it holds
    assert engines.route([status(a, [BTC], None), status(b, [ETH], [])]).labels == [BTC]
    # one engine: everything it holds, as the one-process dashboard always did
    assert engines.route([status(a, [BTC, ETH], [BTC])]).labels == [BTC, ETH]


def test_launcher_never_starts_engines_of_a_list() -> None:
    assert not launcher.can_launch("http://127.0.0.1:8765,http://127.0.0.1:8766")
    assert launcher.can_launch("http://127.0.0.1:8765")


# -- against two real engine APIs ------------------------------------------------------


def test_comma_list_merges_symbols_and_reads_each_from_its_engine(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MICROSTREAM_API_URL", pair.urls + "/")
    data.clear_cache()
    view = engines.route(data.engine_status(e) for e in engines.endpoints(data.api_url()))
    assert [e.up for e in view.engines] == [True, True]
    assert view.routes == {BTC: pair.a.url, ETH: pair.b.url}

    at = open_page("live")
    assert_clean(at)
    assert selector(at) == [BTC, ETH]
    assert not at.warning
    assert shown_source(at) == "engine-a"
    mid_a = pair.store_a.latest("binance", "BTCUSDT")["features"]
    assert mid_a is not None
    assert {m.label: m.value for m in at.metric}["Mid"] == f"{mid_a['mid']:,.2f}"

    at.sidebar.selectbox[0].select(ETH).run()
    assert_clean(at)
    assert shown_source(at) == "engine-b"
    mid_b = pair.store_b.latest("binance", "ETHUSDT")["features"]
    assert mid_b is not None
    assert {m.label: m.value for m in at.metric}["Mid"] == f"{mid_b['mid']:,.2f}"
    assert len(at.get("plotly_chart")) >= 10  # every panel drew ETH's rows from B


def test_host_name_resolving_to_both_engines_works_the_same(
    pair: Pair, resolver: Callable[[list[str]], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    resolver(["127.0.0.2", "127.0.0.1"])
    monkeypatch.setenv("MICROSTREAM_API_URL", f"http://{NAME}:{pair.port}")
    at = open_page("health")
    assert_clean(at)
    assert selector(at) == [BTC, ETH]
    rows = engines_table(at)
    assert [r["engine"] for r in rows] == [pair.a.url, pair.b.url]  # sorted addresses
    assert {r["configured as"] for r in rows} == {f"http://{NAME}:{pair.port}"}
    assert [r["answers"] for r in rows] == ["up", "up"]
    assert [r["symbols served"] for r in rows] == [BTC, ETH]
    assert {m.label: m.value for m in at.metric}["Engines up"] == "2 / 2"
    at.switch_page("views/live.py").run()
    at.sidebar.selectbox[0].select(ETH).run()
    assert_clean(at)
    assert shown_source(at) == "engine-b"


def test_stopped_engine_is_marked_down_and_its_symbols_leave(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MICROSTREAM_API_URL", pair.urls)
    at = open_page("live")
    at.sidebar.selectbox[0].select(ETH).run()
    assert shown_source(at) == "engine-b"

    pair.b.stop()
    rerun(at)
    assert_clean(at)
    assert selector(at) == [BTC]
    assert shown_source(at) == "engine-a"  # the page goes on with what still answers
    warnings = " ".join(w.value for w in at.warning)
    assert "1 of 2 engines not answering" in warnings and pair.b.url in warnings
    assert f"last serving {ETH}" in warnings
    assert f"`{ETH}` is not served by any engine that answers" in warnings
    assert "offline since" not in warnings

    at.switch_page("views/health.py").run()
    assert_clean(at)
    rows = {r["engine"]: r for r in engines_table(at)}
    assert rows[pair.a.url]["answers"] == "up" and rows[pair.a.url]["symbols served"] == BTC
    down = rows[pair.b.url]
    assert down["answers"] == "DOWN" and ETH in down["symbols served"]
    assert "no engine answers" in down["error"]
    assert {m.label: m.value for m in at.metric}["Engines up"] == "1 / 2"

    # it comes back (same address): its symbol returns, and the page goes back to it
    pair.b = EngineApi(pair.store_b, host="127.0.0.2", port=pair.port)
    pair.b.start()
    at.switch_page("views/live.py").run()
    rerun(at)
    assert_clean(at)
    assert selector(at) == [BTC, ETH]
    assert shown_source(at) == "engine-b"
    assert not at.warning


def test_no_engine_answering_is_offline_since_without_launcher(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MICROSTREAM_API_URL", pair.urls)
    at = open_page("health")
    assert not at.warning
    pair.stop()
    rerun(at)
    assert_clean(at)
    assert any("Engine offline since" in w.value for w in at.warning)
    assert not at.button  # engines of a list are not started from the dashboard
    assert any("Several engines are configured" in i.value for i in at.info)
    assert [r["answers"] for r in engines_table(at)] == ["DOWN", "DOWN"]


def test_symbol_moving_to_another_engine_is_followed(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    # before: A holds and serves both symbols, B serves none
    SyntheticFeed(
        pair.store_a, "binance", "ETHUSDT", seed=5, start_ns=time.time_ns() - 60 * 10**9
    ).backfill(60)
    empty = LiveStateStore(source="engine-b", simulated=True)
    empty.set_health_provider(owning(empty))
    pair.b.stop()
    pair.b = EngineApi(empty, host="127.0.0.2", port=pair.port)
    pair.b.start()
    monkeypatch.setenv("MICROSTREAM_API_URL", pair.urls)
    at = open_page("live")
    at.sidebar.selectbox[0].select(ETH).run()
    assert_clean(at)
    assert shown_source(at) == "engine-a"

    # rebalance: ETH's partition goes to B, which has no rows yet; A keeps its old rows
    pair.store_a.set_health_provider(owning(pair.store_a, BTC))
    empty.set_health_provider(owning(empty, ETH))
    rerun(at)
    assert_clean(at)
    assert selector(at) == [BTC, ETH]
    assert shown_source(at) == "engine-b"  # followed at once, even before B's first rows
    assert {m.label: m.value for m in at.metric}["Mid"] == "—"

    # B's first rows arrive: the panels show them
    SyntheticFeed(
        empty, "binance", "ETHUSDT", seed=9, start_ns=time.time_ns() - 30 * 10**9
    ).backfill(30)
    rerun(at)
    assert_clean(at)
    latest = empty.latest("binance", "ETHUSDT")["features"]
    assert latest is not None
    assert {m.label: m.value for m in at.metric}["Mid"] == f"{latest['mid']:,.2f}"
    assert not at.warning

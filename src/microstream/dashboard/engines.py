"""Which engines the dashboard reads, and which engine serves each symbol.

In distributed mode several engines in one consumer group share the symbols by
partition (``docs/distributed.md``); each serves the engine API for its own
symbols only. The dashboard's API URL setting (``MICROSTREAM_API_URL``) may
therefore name several engines:

- a comma-separated list of base URLs, and/or
- a host name that resolves to several addresses (the DNS name of a scaled
  Docker Compose service, ``http://engine:8765``): every A/AAAA record becomes
  one engine. Names are resolved again every :data:`RESOLVE_EVERY_S` seconds,
  since engines come and go when the group is scaled or rebalanced.

A URL whose host is an IP address, a local name (``localhost``) or a name with
one address is kept exactly as written, so the one-engine default
(``http://127.0.0.1:8765``) behaves as it always did.

:func:`route` merges what every engine says into one symbol list, with the
engine to ask for each symbol. Everything here is plain Python (no Streamlit),
so it is unit-tested directly.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from microstream.bus.protocol import split_symbol_key, symbol_key

RESOLVE_EVERY_S = 10.0
"""Seconds a host name's addresses are reused before it is resolved again."""

NOT_EXPANDED = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
"""Names never expanded: they mean this machine, where one engine binds one address."""

Resolver = Callable[[str, int], list[str]]
"""``(host, port) -> addresses`` (IPv4/IPv6 literals); raises ``OSError`` on failure."""


def split_urls(setting: str) -> list[str]:
    """The base URLs of a comma-separated setting, stripped, without trailing ``/``.

    A URL written without a scheme (``engine:8765``) gets ``http://``.
    """
    urls = []
    for part in setting.split(","):
        url = part.strip().rstrip("/")
        if not url:
            continue
        urls.append(url if "://" in url else f"http://{url}")
    return urls


def normalize(setting: str) -> str:
    """The setting with each URL normalized by :func:`split_urls`, comma-joined."""
    return ",".join(split_urls(setting))


def resolve_host(host: str, port: int) -> list[str]:
    """Every address (A and AAAA records) of ``host``, without repeats."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _address_key(address: str) -> tuple[int, int, str]:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return (9, 0, address)
    return (ip.version, int(ip), address)


def _one_family(addresses: list[str]) -> list[str]:
    """The IPv4 addresses of a sorted list, or all of them when there are none."""
    v4 = [a for a in addresses if _address_key(a)[0] == 4]
    return v4 or addresses


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Endpoint:
    """One engine API: the base URL requests go to and the configured URL it came from."""

    url: str
    origin: str


def _with_host(url: str, address: str) -> str:
    parts = urlsplit(url)
    host = f"[{address}]" if ":" in address else address
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def expand_url(url: str, resolver: Resolver) -> list[Endpoint]:
    """``url``, or one endpoint per address when its host name has several.

    A dual-stack host has an A and an AAAA record for the same engine, so the
    IPv4 addresses are used when there are any, the IPv6 ones otherwise. They
    are sorted, so the engines keep their order when a DNS server rotates its
    answers.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    if not host or _is_ip(host) or host.lower() in NOT_EXPANDED:
        return [Endpoint(url, url)]
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        addresses = resolver(host, port)
    except (OSError, ValueError):  # unresolvable now: requests to it fail and say so
        return [Endpoint(url, url)]
    unique = _one_family(sorted(set(addresses), key=_address_key))
    if len(unique) <= 1:
        return [Endpoint(url, url)]
    return [Endpoint(_with_host(url, address), url) for address in unique]


def expand(setting: str, resolver: Resolver | None = None) -> list[Endpoint]:
    """Every engine endpoint of a setting (comma list, names expanded), without repeats."""
    resolve = resolver or _current_resolver()
    seen: set[str] = set()
    endpoints = []
    for url in split_urls(setting):
        for endpoint in expand_url(url, resolve):
            if endpoint.url not in seen:
                seen.add(endpoint.url)
                endpoints.append(endpoint)
    return endpoints


_lock = threading.Lock()
_resolver: Resolver | None = None
_cache: dict[str, tuple[float, list[Endpoint]]] = {}


def _current_resolver() -> Resolver:
    with _lock:
        return _resolver or resolve_host


def set_resolver(resolver: Resolver | None) -> None:
    """Resolve host names with ``resolver`` (tests); ``None`` restores DNS. Clears the cache."""
    global _resolver
    with _lock:
        _resolver = resolver
        _cache.clear()


def endpoints(setting: str, now: float | None = None) -> list[Endpoint]:
    """:func:`expand` of ``setting``, resolved again after :data:`RESOLVE_EVERY_S` seconds."""
    clock = time.monotonic() if now is None else now
    with _lock:
        cached = _cache.get(setting)
    if cached is not None and clock - cached[0] < RESOLVE_EVERY_S:
        return list(cached[1])
    found = expand(setting)
    with _lock:
        _cache[setting] = (clock, found)
    return list(found)


def clear_resolved() -> None:
    """Forget every resolved name (the next call resolves again)."""
    with _lock:
        _cache.clear()


# -- what each engine serves ------------------------------------------------------


def symbol_label(exchange: Any, symbol: Any) -> str:
    """``exchange:SYMBOL`` (the bus's symbol key), the label of a symbol in the selector."""
    return symbol_key(str(exchange), str(symbol))


split_label = split_symbol_key
"""``(exchange, symbol)`` of an ``exchange:SYMBOL`` label."""


@dataclass(frozen=True)
class EngineStatus:
    """What one engine answered (or that it did not).

    ``held`` are the symbols its live store has rows for (``/api/v1/symbols``);
    ``owned`` the symbols its ``/health`` document lists under ``symbols`` — the
    ones it runs a pipeline for now — or ``None`` when the document has no such
    mapping. A distributed engine keeps the rows of a symbol it gave away to
    another engine, so ``held`` alone does not say who serves a symbol.
    """

    endpoint: Endpoint
    up: bool
    error: str | None = None
    source: str | None = None
    simulated: bool = False
    held: tuple[str, ...] = ()
    owned: tuple[str, ...] | None = None
    book_valid: Mapping[str, bool] = field(default_factory=dict)
    health: Mapping[str, Any] | None = None

    @property
    def url(self) -> str:
        """The engine's base URL."""
        return self.endpoint.url


def engine_status(
    endpoint: Endpoint, symbols_doc: Any, health_doc: Any, error: str | None = None
) -> EngineStatus:
    """An :class:`EngineStatus` from the two documents (``symbols_doc`` ``None``: down)."""
    if not isinstance(symbols_doc, Mapping):
        return EngineStatus(endpoint, up=False, error=error or "no symbol list")
    entries = symbols_doc.get("symbols")
    held = tuple(
        symbol_label(e.get("exchange"), e.get("symbol"))
        for e in (entries if isinstance(entries, list) else [])
        if isinstance(e, Mapping)
    )
    health = health_doc if isinstance(health_doc, Mapping) else None
    per_symbol = health.get("symbols") if health is not None else None
    owned = None
    valid: dict[str, bool] = {}
    if isinstance(per_symbol, Mapping):
        owned = tuple(str(key) for key in per_symbol)
        for key, info in per_symbol.items():
            if isinstance(info, Mapping) and isinstance(info.get("book_valid"), bool):
                valid[str(key)] = bool(info["book_valid"])
    return EngineStatus(
        endpoint,
        up=True,
        source=str(symbols_doc.get("source", "unknown")),
        simulated=bool(symbols_doc.get("simulated"))
        or (health is not None and health.get("simulated") is True),
        held=held,
        owned=owned,
        book_valid=valid,
        health=dict(health) if health is not None else None,
    )


@dataclass(frozen=True)
class Routing:
    """Every engine's status and, per symbol label, the engine that serves it."""

    engines: tuple[EngineStatus, ...]
    routes: Mapping[str, str]
    stale: tuple[str, ...] = ()

    @property
    def labels(self) -> list[str]:
        """The symbols served by an engine that answers, sorted."""
        return sorted(self.routes)

    @property
    def up(self) -> list[EngineStatus]:
        """The engines that answered."""
        return [e for e in self.engines if e.up]

    @property
    def down(self) -> list[EngineStatus]:
        """The engines that did not answer."""
        return [e for e in self.engines if not e.up]

    @property
    def several(self) -> bool:
        """Whether the setting names (or resolves to) more than one engine."""
        return len(self.engines) > 1

    def engine_of(self, label: str) -> EngineStatus | None:
        """The engine serving ``label`` (``None`` if none does)."""
        url = self.routes.get(label)
        return next((e for e in self.engines if e.url == url), None)

    def served_by(self, url: str) -> list[str]:
        """The labels routed to the engine at ``url``, sorted."""
        return sorted(label for label, target in self.routes.items() if target == url)

    @property
    def simulated(self) -> bool:
        """Whether any engine that answers runs on simulated data."""
        return any(e.simulated for e in self.up)

    @property
    def source(self) -> str:
        """The sources of the engines that answer (``"sim"``, ``"kafka"``...)."""
        sources = sorted({e.source or "unknown" for e in self.up})
        return ", ".join(sources) if sources else "unknown"

    def reason(self) -> str:
        """Why no engine answers: each engine's error."""
        return "; ".join(e.error or f"no answer at {e.url}" for e in self.down)


def _owner(label: str, owners: list[EngineStatus]) -> EngineStatus:
    """The owner to read: one that holds rows, then one whose book is valid, then the first."""

    def rank(engine: EngineStatus) -> tuple[bool, bool]:
        return (label not in engine.held, not engine.book_valid.get(label, False))

    return min(owners, key=rank)  # min keeps the first of equals: engine order


def route(statuses: Iterable[EngineStatus]) -> Routing:
    """Merge what every engine serves into one symbol list with one engine per symbol.

    A symbol is listed once some engine that answers holds rows for it. It is
    read from an engine whose ``/health`` lists it (the engine running its
    pipeline now), even before that engine has its first rows (a symbol that
    just moved follows its new engine); failing that, from an engine that holds
    it and gives no per-symbol health. A symbol held only by engines whose
    health no longer lists it (they handed it over to an engine that is down
    or not yet assigned) is not listed, but reported in ``stale``. With a
    single engine, every symbol it holds is read from it, as always.
    """
    engines = tuple(statuses)
    up = [e for e in engines if e.up]
    held = sorted({label for e in up for label in e.held})
    if len(engines) == 1:
        return Routing(engines=engines, routes={label: engines[0].url for label in held})
    routes: dict[str, str] = {}
    stale: list[str] = []
    for label in held:
        owners = [e for e in up if e.owned is not None and label in e.owned]
        if owners:
            routes[label] = _owner(label, owners).url
            continue
        plain = [e for e in up if e.owned is None and label in e.held]
        if plain:
            routes[label] = plain[0].url
        else:
            stale.append(label)
    return Routing(engines=engines, routes=routes, stale=tuple(stale))

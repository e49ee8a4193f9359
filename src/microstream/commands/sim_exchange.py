"""``microstream sim-exchange``: the loopback Binance exchange fed by the market simulator.

It serves a :class:`~microstream.sim.sim_feed.SimFeed` with
:class:`~microstream.sim.exchange.LoopbackExchange` on 127.0.0.1 and prints the
URLs to point a client at (``BINANCE_WS_URL`` / ``BINANCE_REST_URL``). Fault
drills can be scheduled from the command line; every fault is also available
at run time over the admin HTTP API (``POST /_admin/fault``, see
docs/simulator.md).
"""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``sim-exchange`` sub-command."""
    parser = subparsers.add_parser(
        "sim-exchange",
        help="serve a simulated Binance spot market on loopback (websocket + REST)",
        description=(
            "Run the market simulator behind a loopback Binance exchange. "
            "SIMULATED DATA: prices and regimes are generated, not real. "
            "Faults can be scheduled with the --*-every options or injected at run time "
            "with POST /_admin/fault (see docs/simulator.md)."
        ),
    )
    parser.add_argument("--port", type=int, default=9443, help="listen port (0 = any free port)")
    parser.add_argument("--host", default="127.0.0.1", help="listen address (loopback)")
    parser.add_argument("--seed", type=int, default=7, help="simulator seed")
    parser.add_argument(
        "--wait-for-client",
        action="store_true",
        help="start the market when the first client subscribes (it then sees it from the start)",
    )
    parser.add_argument(
        "--start-ms",
        type=int,
        default=None,
        help=(
            "exchange time of the first frame, Unix ms (default: now). The same --seed and "
            "--start-ms give the same frames, byte for byte"
        ),
    )
    parser.add_argument(
        "--symbols",
        nargs="+",
        default=["BTCUSDT"],
        help="symbols, space- or comma-separated (default BTCUSDT)",
    )
    parser.add_argument(
        "--speed", default="1", help="simulated seconds per wall second, or 'max' (default 1)"
    )
    parser.add_argument("--duration", type=float, default=None, help="stop after SECONDS")
    parser.add_argument(
        "--truth-out",
        default=None,
        help="append the hidden regime (sim_truth) as CSV 'ts_ns,symbol,regime' lines to this file",
    )
    drills = parser.add_argument_group("fault drills (also at run time: POST /_admin/fault)")
    drills.add_argument("--ping-interval", type=float, default=20.0, help="server ping period (s)")
    drills.add_argument(
        "--pong-timeout", type=float, default=60.0, help="close a client silent this long (s)"
    )
    drills.add_argument(
        "--max-lifetime", type=float, default=None, help="close every connection after SECONDS"
    )
    drills.add_argument(
        "--weight-limit", type=int, default=None, help="answer 429 above this REST weight/minute"
    )
    drills.add_argument(
        "--drop-every", type=float, default=None, help="abort all connections every SECONDS"
    )
    drills.add_argument(
        "--stall-every", type=float, default=None, help="silence all connections every SECONDS"
    )
    drills.add_argument(
        "--skip-depth-every",
        type=float,
        default=None,
        help="leave one depth event out of the stream every SECONDS (a sequence gap)",
    )
    drills.add_argument(
        "--malformed-every",
        type=float,
        default=None,
        help="send one malformed frame every SECONDS",
    )
    drills.add_argument("--rest-errors", type=int, default=0, help="fail the first N REST calls")
    drills.add_argument(
        "--rest-error-status", type=int, default=429, help="status of those failures (429 or 418)"
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    import asyncio
    import contextlib

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))
    return 0


class TruthWriter:
    """Appends ``sim_truth`` rows as CSV lines (``ts_ns,symbol,regime``), flushed per row."""

    def __init__(self, path: str) -> None:
        from microstream.errors import ConfigError

        try:
            self._fh = open(path, "a", encoding="utf-8")  # noqa: SIM115 (closed by close())
        except OSError as exc:
            raise ConfigError(f"cannot open --truth-out {path}: {exc}") from exc

    def __call__(self, row: Any) -> None:
        self._fh.write(f"{row.values['ts']},{row.symbol},{row.values['regime']}\n")
        self._fh.flush()

    def close(self) -> None:
        """Close the file."""
        self._fh.close()


def drill_schedule(args: argparse.Namespace) -> list[tuple[float, dict[str, Any]]]:
    """The periodic fault drills asked for: ``(period_s, admin fault body)``."""
    drills: list[tuple[float, dict[str, Any]]] = []
    for period, body in (
        (args.drop_every, {"fault": "drop_connections"}),
        (args.stall_every, {"fault": "stall_connections"}),
        (args.skip_depth_every, {"fault": "skip_depth", "count": 1}),
        (args.malformed_every, {"fault": "malformed", "count": 1}),
    ):
        if period is not None and period > 0:
            drills.append((float(period), body))
    return drills


async def _serve(args: argparse.Namespace) -> None:
    import asyncio
    import logging

    from microstream.errors import ConfigError
    from microstream.sim.exchange import LoopbackExchange
    from microstream.sim.sim_feed import SimFeed

    log = logging.getLogger("microstream.sim_exchange")
    symbols = [s.strip().upper() for arg in args.symbols for s in str(arg).split(",") if s.strip()]
    if not symbols:
        raise ConfigError("no symbols to simulate")
    truth = TruthWriter(args.truth_out) if args.truth_out else None
    from microstream.replay import parse_speed

    feed = SimFeed(
        symbols,
        seed=args.seed,
        speed=parse_speed(args.speed),
        start_ms=args.start_ms,
        on_truth=truth,
    )
    feed.prepare()
    exchange = LoopbackExchange(
        feed,
        args.host,
        args.port,
        ping_interval_s=args.ping_interval,
        pong_timeout_s=args.pong_timeout,
        max_lifetime_s=args.max_lifetime,
        weight_limit=args.weight_limit,
        wait_for_client=args.wait_for_client,
    )
    if args.rest_errors > 0:
        exchange.rest_errors(args.rest_errors, args.rest_error_status, 1.0)
    async with exchange:
        print("*** SIMULATED DATA: a generated market, not Binance ***", flush=True)
        print(
            f"BINANCE_WS_URL={exchange.ws_url} BINANCE_REST_URL={exchange.rest_url}",
            flush=True,
        )
        print(
            f"symbols={','.join(symbols)} seed={args.seed} "
            f"admin: GET {exchange.rest_url}/_admin/state, POST {exchange.rest_url}/_admin/fault",
            flush=True,
        )
        tasks = [
            asyncio.create_task(_drill(exchange, period, body, log))
            for period, body in drill_schedule(args)
        ]
        try:
            if args.duration is not None:
                await asyncio.wait_for(exchange.pump_done.wait(), timeout=args.duration)
            else:
                await exchange.pump_done.wait()
        except TimeoutError:
            pass
        finally:
            for task in tasks:
                task.cancel()
            if truth is not None:
                truth.close()


async def _drill(exchange: Any, period: float, body: dict[str, Any], log: Any) -> None:
    import asyncio

    while True:
        await asyncio.sleep(period)
        result = await exchange.apply_fault(dict(body))
        log.info("fault drill %s -> %s", body["fault"], result)

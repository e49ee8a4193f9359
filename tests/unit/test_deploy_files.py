"""The deployment files stay true to the code.

* every environment variable the code reads is listed in ``.env.example``;
* every command of ``docker-compose.yml`` parses with ``microstream``'s own
  argument parser (``${VAR:-default}`` taken at its default), and the compose
  variables it interpolates are in ``.env.example`` too;
* the engine and ingest health checks ask the ports the services listen on.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from conftest import REPO_ROOT
from microstream.cli import build_parser

ENV_NAME = re.compile(
    r"\"((?:MICROSTREAM|KAFKA|BINANCE)_[A-Z0-9_]+)\"|env_[a-z]+\(\s*\"([A-Z][A-Z0-9_]+)\""
)
INTERPOLATION = re.compile(r"\$\{([A-Z][A-Z0-9_]*)(?::-([^}]*))?\}")


def env_example_names() -> set[str]:
    text = (REPO_ROOT / ".env.example").read_text()
    return set(re.findall(r"^#?([A-Z][A-Z0-9_]+)=", text, flags=re.MULTILINE))


def code_env_names() -> set[str]:
    names: set[str] = set()
    for path in (REPO_ROOT / "src" / "microstream").rglob("*.py"):
        for quoted, called in ENV_NAME.findall(path.read_text()):
            names.add(quoted or called)
    return names


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    return data


def test_every_variable_the_code_reads_is_in_env_example() -> None:
    code = code_env_names()
    assert {"KAFKA_BOOTSTRAP_SERVERS", "MICROSTREAM_KAFKA_DOWN_AFTER_S", "SYMBOL"} <= code
    missing = sorted(code - env_example_names())
    assert not missing, f"read by the code but not in .env.example: {missing}"


def test_compose_commands_parse_with_the_cli() -> None:
    services = compose()["services"]
    listed = env_example_names()
    parser = build_parser()
    for name in ("ingest", "engine", "dashboard"):
        command = [
            INTERPOLATION.sub(lambda m: m.group(2) or "", str(part))
            for part in services[name]["command"]
        ]
        args = parser.parse_args(command)
        assert callable(args.handler), name
        for part in services[name]["command"]:
            for variable, _default in INTERPOLATION.findall(str(part)):
                assert variable in listed, f"{name} interpolates {variable}, not in .env.example"


def test_health_checks_ask_the_ports_the_services_serve() -> None:
    services = compose()["services"]
    parser = build_parser()
    ingest = parser.parse_args(
        [INTERPOLATION.sub(lambda m: m.group(2) or "", p) for p in services["ingest"]["command"]]
    )
    assert f"127.0.0.1:{ingest.health_port}/health" in " ".join(
        services["ingest"]["healthcheck"]["test"]
    )
    # the engine API port: MICROSTREAM_API_PORT, default 8765 (Dockerfile sets it too)
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert "MICROSTREAM_API_PORT=8765" in dockerfile
    assert "127.0.0.1:8765/health" in " ".join(services["engine"]["healthcheck"]["test"])
    env_file = compose()["x-microstream"]["env_file"]
    assert env_file == [{"path": ".env", "required": False}]  # Docker Compose >= 2.24
    for doc in ("README.md", "docs/distributed.md"):
        assert "Docker Compose 2.24 or later" in Path(REPO_ROOT / doc).read_text(), doc

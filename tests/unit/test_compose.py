"""compose.yaml and the Dockerfile name only settings the code accepts, with valid values.

Neither can run on this machine (no image registry, no Docker), so what can be checked without
them is checked here: environments, commands, healthchecks, volumes, the image's user.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from sqlalchemy.engine import make_url

from bot.cli import build_parser
from engine.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
BOTS = {name: s for name, s in SERVICES.items() if "entrypoint" not in s and "build" in s}
SETTINGS = {name.upper() for name in Settings.model_fields}
# Read by libraries, not by Settings: the model hub (stay offline) and Chroma's telemetry.
NOT_SETTINGS = {"HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "ANONYMIZED_TELEMETRY"}
SECRETS = {"TELEGRAM_BOT_TOKEN", "WEBHOOK_SECRET", "POSTGRES_PASSWORD"}
VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?::?(?P<kind>[-?])(?P<word>[^}]*))?\}")


def interpolate(value: object) -> str:
    """A value as compose would pass it: `${X:-default}` → default, `${X:?...}` → a stand-in."""

    def one(match: re.Match[str]) -> str:
        if match["kind"] == "-":
            return match["word"]
        return f"stand-in-for-{match['name'].lower()}"

    return VARIABLE.sub(one, str(value))


def settings_of(environment: Mapping[str, object]) -> Settings:
    """The Settings a process with `environment` would get (no `.env`, nothing else)."""
    values = {key.lower(): interpolate(value) for key, value in environment.items()}
    values = {key: value for key, value in values.items() if key.upper() in SETTINGS}
    return Settings(_env_file=None, **values)  # type: ignore[call-arg, arg-type]


def dockerfile() -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (KEYWORD, arguments), continuation lines joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def dockerfile_env() -> dict[str, str]:
    """Every `ENV KEY=value` of the Dockerfile."""
    pairs = [
        word.split("=", 1)
        for key, args in dockerfile()
        if key == "ENV"
        for word in shlex.split(args)
    ]
    return {key: value for key, value in pairs}


def port_of(mapping: str) -> str:
    """The container port of a compose port entry ("127.0.0.1:9100:9100" → "9100")."""
    return str(mapping).rsplit(":", 1)[-1]


def test_compose_yaml_follows_the_compose_specification() -> None:
    schema = ["--builtin-schema", "vendor.compose-spec"]
    checked = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", *schema, str(ROOT / "compose.yaml")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_there_are_bot_services_and_their_commands_parse() -> None:
    assert set(BOTS) == {"bot", "bot-webhook"}
    parser = build_parser()
    modes = {name: parser.parse_args(service["command"]) for name, service in BOTS.items()}
    assert {args.command for args in modes.values()} == {"run"}
    assert (modes["bot"].webhook, modes["bot-webhook"].webhook) == (False, True)


@pytest.mark.parametrize("name", sorted(BOTS))
def test_every_environment_key_is_a_setting_and_every_value_valid(name: str) -> None:
    environment = BOTS[name]["environment"]
    unknown = set(environment) - SETTINGS - NOT_SETTINGS
    assert not unknown, f"{name}: not settings the code reads: {sorted(unknown)}"
    settings = settings_of(environment)
    assert settings.log_format == "json"
    assert settings.metrics_host == "0.0.0.0"
    assert settings.metrics_port is not None
    for secret in SECRETS & set(environment):  # required from the operator, never written here
        assert re.fullmatch(r"\$\{\w+:\?[^}]+\}", environment[secret]), secret


@pytest.mark.parametrize("name", sorted(BOTS))
def test_the_bots_reach_postgres_and_chroma_as_the_services_define_them(name: str) -> None:
    settings = settings_of(BOTS[name]["environment"])
    database = make_url(settings.database_url)
    postgres = SERVICES["postgres"]["environment"]
    assert database.drivername == "postgresql+asyncpg"
    assert (database.host, database.port) == ("postgres", 5432)
    assert (database.username, database.database) == (
        postgres["POSTGRES_USER"],
        postgres["POSTGRES_DB"],
    )
    assert database.password == interpolate(postgres["POSTGRES_PASSWORD"])
    assert settings.chroma_url is not None
    chroma = urlsplit(settings.chroma_url)
    command = SERVICES["chroma"]["command"]
    assert chroma.hostname == "chroma"
    assert str(chroma.port) == command[command.index("--port") + 1]
    assert command[command.index("--host") + 1] == "0.0.0.0"
    assert {"postgres", "chroma"} <= set(BOTS[name]["depends_on"])


@pytest.mark.parametrize("name", sorted(BOTS))
def test_the_bots_healthcheck_asks_healthz_on_the_metrics_port(name: str) -> None:
    service = BOTS[name]
    settings = settings_of(service["environment"])
    check = " ".join(service["healthcheck"]["test"])
    assert "/healthz" in check
    assert "METRICS_PORT" in check
    published = [port_of(p) for p in service.get("ports", []) + service.get("expose", [])]
    assert str(settings.metrics_port) in published
    if "--webhook" in service["command"]:
        assert str(settings.webhook_port) in published
        assert settings.webhook_url is not None
        assert settings.webhook_secret is not None


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_service_has_a_healthcheck(name: str) -> None:
    check = SERVICES[name]["healthcheck"]
    assert check["test"][0] == "CMD"
    assert len(check["test"]) > 1


def test_the_stores_keep_their_data_in_declared_volumes() -> None:
    declared = set(COMPOSE["volumes"])
    used = {
        volume.split(":", 1)[0]
        for service in SERVICES.values()
        for volume in service.get("volumes", [])
    }
    named = {source for source in used if not source.startswith((".", "/"))}
    assert named == declared
    assert "postgres-data:/var/lib/postgresql/data" in SERVICES["postgres"]["volumes"]
    chroma = SERVICES["chroma"]
    path = chroma["command"][chroma["command"].index("--path") + 1]
    assert f"chroma-data:{path}" in chroma["volumes"]


def test_the_image_is_cpu_only_offline_and_runs_as_a_user() -> None:
    steps = dockerfile()
    assert steps[0] == ("FROM", "python:3.11-slim")
    users = [args for key, args in steps if key == "USER"]
    assert users
    assert users[-1] not in ("root", "0")
    runs = [args for key, args in steps if key == "RUN"]
    torch = next(i for i, run in enumerate(runs) if "torch==" in run)
    package = next(i for i, run in enumerate(runs) if "pip install /tmp/src" in run)
    assert torch < package
    assert "download.pytorch.org/whl/cpu" in "".join(args for key, args in steps if key == "ARG")
    assert "[dev]" not in runs[package]
    copied = " ".join(args for key, args in steps if key == "COPY")
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for pattern in config["tool"]["setuptools"]["packages"]["find"]["include"]:
        assert f" {pattern.rstrip('*')} " in f" {copied} "


def test_the_image_env_is_valid_settings_and_its_healthcheck_asks_healthz() -> None:
    environment = dockerfile_env()
    assert environment["HF_HUB_OFFLINE"] == "1"
    unknown = set(environment) - SETTINGS - NOT_SETTINGS - {"PYTHONUNBUFFERED"}
    assert {key for key in unknown if not key.startswith("PIP_")} == set()
    settings = settings_of(environment)
    steps = dockerfile()
    exposed = " ".join(args for key, args in steps if key == "EXPOSE").split()
    assert str(settings.metrics_port) in exposed
    assert str(settings.webhook_port) in exposed
    (check,) = [args for key, args in steps if key == "HEALTHCHECK"]
    assert "/healthz" in check
    assert "METRICS_PORT" in check
    assert "curl" not in check


def test_dockerignore_keeps_secrets_and_stores_out_of_the_build() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".env", ".venv", "data", ".git"} <= set(ignored)

"""EVENT_LOOP picks the loop every `memorybot` command runs on: uvloop unless asyncio is asked."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import pytest
import uvloop

from bot import cli
from engine.settings import Settings


@pytest.mark.parametrize(("name", "expected"), [("uvloop", uvloop.Loop), ("asyncio", None)])
def test_a_command_runs_on_the_loop_event_loop_names(
    monkeypatch: pytest.MonkeyPatch, name: str, expected: type | None
) -> None:
    seen: list[asyncio.AbstractEventLoop] = []

    async def command(_settings: Any, _args: argparse.Namespace) -> int:
        seen.append(asyncio.get_running_loop())
        return 3

    parser = argparse.ArgumentParser()
    parser.set_defaults(handler=command)
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    monkeypatch.setattr(cli, "configure_logging", lambda *_: None)
    monkeypatch.setenv("EVENT_LOOP", name)
    assert cli.main([]) == 3
    if expected is None:
        assert not isinstance(seen[0], uvloop.Loop)
    else:
        assert isinstance(seen[0], expected)
    assert seen[0].is_closed()


def test_the_default_is_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVENT_LOOP", raising=False)
    assert Settings(_env_file=None).event_loop == "uvloop"  # type: ignore[call-arg]

"""`.env.example` documents every setting, and its values are the defaults."""

from __future__ import annotations

from pathlib import Path

from engine.settings import Settings

EXAMPLE = Path(__file__).resolve().parents[2] / ".env.example"


def example_values() -> dict[str, str]:
    lines = [line for line in EXAMPLE.read_text().splitlines() if line and line[0] != "#"]
    return dict(line.split("=", 1) for line in lines)


def test_every_setting_is_in_env_example_and_nothing_else() -> None:
    assert set(example_values()) == {name.upper() for name in Settings.model_fields}


def test_every_setting_has_a_comment_line_above_it() -> None:
    lines = EXAMPLE.read_text().splitlines()
    for index, line in enumerate(lines):
        if line and line[0] != "#":
            assert lines[index - 1].startswith("#"), line


def test_env_example_loads_as_the_defaults() -> None:
    loaded = Settings(_env_file=EXAMPLE)  # type: ignore[call-arg]
    assert loaded == Settings(_env_file=None)  # type: ignore[call-arg]
    assert loaded.telegram_bot_token is None
    assert loaded.chroma_url is None

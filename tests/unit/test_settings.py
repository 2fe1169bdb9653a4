"""engine.settings: defaults, parsing of env values, and one-line error messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from engine.settings import Settings, describe_error

ENV_NAMES = (
    "ADMIN_USER_IDS",
    "DATABASE_URL",
    "CHROMA_URL",
    "CHROMA_PATH",
    "CHROMA_COLLECTION",
    "CHROMA_SHARDS",
    "TELEGRAM_BOT_TOKEN",
    "LOG_LEVEL",
    "MAX_MEMORY_CHARS",
    "RECALL_TOP_K",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No setting leaks in from the shell running the tests."""
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)


def make(**overrides: Any) -> Settings:
    return Settings(_env_file=None, **overrides)  # type: ignore[call-arg]


def error_for(**overrides: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        make(**overrides)
    return describe_error(caught.value)


def assert_one_line_naming(message: str, name: str) -> None:
    assert "\n" not in message
    assert message.startswith(f"invalid setting {name}: ")


def test_defaults_need_no_environment() -> None:
    settings = make()
    assert settings.database_url == "sqlite+aiosqlite:///./data/memorybot.db"
    assert settings.chroma_path == Path("./data/chroma")
    assert settings.chroma_url is None
    assert settings.chroma_collection == "memories"
    assert settings.chroma_shards == 4
    assert settings.admin_user_ids == ()
    assert settings.max_memory_chars == 4000
    assert settings.recall_top_k == 5
    assert settings.log_level == "INFO"
    assert settings.telegram_bot_token is None


def test_settings_are_frozen() -> None:
    settings = make()
    with pytest.raises(ValidationError):
        settings.recall_top_k = 7


def test_admin_ids_from_env_are_split_on_commas_and_stripped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ADMIN_USER_IDS", "1, 2,3")
    assert make().admin_user_ids == (1, 2, 3)


def test_single_admin_id_from_env_and_empty_parts_are_ignored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ADMIN_USER_IDS", " 42 ,, ")
    assert make().admin_user_ids == (42,)


def test_admin_id_given_as_int_becomes_a_tuple() -> None:
    assert make(admin_user_ids=7).admin_user_ids == (7,)


def test_non_numeric_admin_id_is_one_line_naming_admin_user_ids(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ADMIN_USER_IDS", "1,alice")
    with pytest.raises(ValidationError) as caught:
        make()
    message = describe_error(caught.value)
    assert_one_line_naming(message, "ADMIN_USER_IDS")
    assert "'alice'" in message


@pytest.mark.parametrize(
    ("url", "why"),
    [("not a url", "cannot parse"), ("mysql://x", "not supported")],
)
def test_bad_database_url_is_one_clear_line(url: str, why: str) -> None:
    message = error_for(database_url=url)
    assert_one_line_naming(message, "DATABASE_URL")
    assert why in message


@pytest.mark.parametrize(
    "url", ["sqlite+aiosqlite:///tmp/x.db", "postgresql+asyncpg://u@h:5432/db"]
)
def test_supported_database_urls_are_accepted(url: str) -> None:
    assert make(database_url=url).database_url == url


@pytest.mark.parametrize("url", ["ftp://host:8000", "localhost:8000", "http://h/path"])
def test_bad_chroma_url_is_one_line_naming_chroma_url(url: str) -> None:
    message = error_for(chroma_url=url)
    assert_one_line_naming(message, "CHROMA_URL")
    assert "http(s)://host:port" in message


@pytest.mark.parametrize("url", ["http://localhost:8000", "https://chroma.example/"])
def test_good_chroma_url_is_kept(url: str) -> None:
    assert make(chroma_url=url).chroma_url == url


def test_empty_chroma_url_means_embedded_store(monkeypatch: pytest.MonkeyPatch) -> None:
    assert make(chroma_url="").chroma_url is None
    monkeypatch.setenv("CHROMA_URL", "")
    assert make().chroma_url is None


@pytest.mark.parametrize("name", ["ab", "-abc", "abc-", "a b c", "x" * 43])
def test_bad_chroma_collection_is_one_line_naming_it(name: str) -> None:
    message = error_for(chroma_collection=name)
    assert_one_line_naming(message, "CHROMA_COLLECTION")
    assert "3-42" in message


@pytest.mark.parametrize("name", ["abc", "my.memories_v2", "x" * 42])
def test_good_chroma_collection_is_kept(name: str) -> None:
    assert make(chroma_collection=name).chroma_collection == name


@pytest.mark.parametrize(
    "overrides",
    [{"chroma_collection": "abc\n"}, {"chroma_url": "http://localhost:8000\n"}],
)
def test_trailing_newline_is_refused(overrides: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        make(**overrides)


def test_out_of_range_number_names_the_setting() -> None:
    message = error_for(chroma_shards=0)
    assert_one_line_naming(message, "CHROMA_SHARDS")

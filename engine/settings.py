"""All settings in one place, read from the environment or `.env`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

SUPPORTED_DRIVERS = ("sqlite+aiosqlite", "postgresql+asyncpg")
_COLLECTION_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9._-]{1,40}[a-zA-Z0-9]")


class Settings(BaseSettings):
    """Every knob of memorybot; names match `.env.example`."""

    model_config = SettingsConfigDict(
        env_file=".env", extra="ignore", frozen=True, env_ignore_empty=True
    )

    telegram_bot_token: SecretStr | None = None
    telegram_api_base_url: str = "https://api.telegram.org/bot"
    telegram_max_rate: int = Field(default=30, ge=0, le=1000)
    database_url: str = "sqlite+aiosqlite:///./data/memorybot.db"
    chroma_path: Path = Path("./data/chroma")
    chroma_url: str | None = None
    chroma_collection: str = "memories"
    chroma_shards: int = Field(default=4, ge=1, le=1024)  # for new indexes (index_shards)
    embedding_model: str = "all-MiniLM-L6-v2"
    embed_batch_size: int = Field(default=64, ge=1, le=1024)
    embed_batch_wait_ms: float = Field(default=1.0, ge=0, le=100)
    # auto: the backend the index was built with; a new index (or a reindex) gets onnx-int8
    embedding_backend: Literal["auto", "onnx-int8", "onnx", "torch"] = "auto"
    model_cache_path: Path = Path("./data/models")
    embed_threads: int = Field(default=1, ge=0, le=64)  # onnxruntime intra-op; 0: one per core
    admin_user_ids: Annotated[tuple[int, ...], NoDecode] = ()
    max_memory_chars: int = Field(default=4000, ge=1, le=100_000)
    recall_top_k: int = Field(default=5, ge=1, le=50)
    recall_min_similarity: float = Field(default=0.25, ge=-1, le=1)
    bulk_chunk_size: int = Field(default=256, ge=1, le=5000)
    sweep_interval_s: int = Field(default=300, ge=1)
    sweep_grace_s: int = Field(default=600, ge=0)
    expiry_interval_s: int = Field(default=60, ge=1)
    expiry_notify: bool = False
    broadcast_rate: float = Field(default=25.0, ge=0, le=1000)
    broadcast_lease_s: float = Field(default=30.0, ge=3, le=3600)
    leader_check_s: float = Field(default=2.0, gt=0, le=60)
    quota_daily_ops: int = Field(default=1000, ge=0)
    quota_max_memories: int = Field(default=10_000, ge=0)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"  # measured both ways (benchmarks.md)
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    metrics_host: str = "127.0.0.1"
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    webhook_port: int = Field(default=8443, ge=1, le=65535)
    update_deadline_s: float = Field(default=30.0, gt=0, le=600)
    inbox_parallel_chats: int = Field(default=64, ge=1, le=1024)
    breaker_failures: int = Field(default=3, ge=1, le=100)
    breaker_probe_s: float = Field(default=2.0, gt=0, le=300)
    delay_notice_s: float = Field(default=5.0, ge=0, le=3600)
    shutdown_grace_s: float = Field(default=20.0, ge=0, le=600)

    @field_validator("admin_user_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        if isinstance(value, str):
            parts = [part.strip() for part in value.split(",") if part.strip()]
            for part in parts:
                if not part.lstrip("-").isdigit():
                    raise ValueError(f"{part!r} is not a numeric Telegram user id")
            return tuple(int(part) for part in parts)
        if isinstance(value, int):
            return (value,)
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError(f"cannot parse {value!r} as a database URL") from None
        if url.drivername not in SUPPORTED_DRIVERS:
            raise ValueError(
                f"driver {url.drivername!r} is not supported; use one of {SUPPORTED_DRIVERS}"
            )
        return value

    @field_validator("chroma_url")
    @classmethod
    def _check_chroma_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not re.fullmatch(r"https?://[^/:\s]+(:\d+)?/?", value):
            raise ValueError(f"{value!r} is not an http(s)://host:port URL")
        return value

    @field_validator("chroma_collection")
    @classmethod
    def _check_collection(cls, value: str) -> str:
        if not _COLLECTION_NAME.fullmatch(value):
            raise ValueError(
                "use 3-42 letters, digits, '.', '_' or '-', starting with a letter/digit"
            )
        return value


def describe_error(error: ValidationError) -> str:
    """One line naming the first bad setting and why it is bad."""
    first = error.errors()[0]
    name = str(first["loc"][0]).upper() if first["loc"] else "settings"
    message = str(first["msg"]).removeprefix("Value error, ")
    return f"invalid setting {name}: {message}"


def load_settings(**overrides: object) -> Settings:
    """Read settings from env and `.env`; keyword overrides win (used by tests and the CLI)."""
    return Settings(**overrides)  # type: ignore[arg-type]

"""LOG_FORMAT: json gives one JSON object per line; neither format leaks texts above DEBUG."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from telegram.error import Forbidden

from bot.cli import QUIET_LOGGERS, configure_logging
from bot.logformat import JsonFormatter, TextFormatter, make_formatter
from bot.logsafe import REDACTED

SECRET = "alice's vault code is 4711"
FIELDS = {"time", "level", "logger", "message"}


def emit(formatter: logging.Formatter, log: Any) -> str:
    """Everything `log(logger)` writes through a handler using `formatter`."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    logger = logging.getLogger("memorybot.test_log_format")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        log(logger)
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


def parse_lines(output: str) -> list[dict[str, Any]]:
    """Every line of `output` as JSON, failing on any line that is not an object with FIELDS."""
    assert output.endswith("\n")
    entries = [json.loads(line) for line in output.split("\n")[:-1]]
    for entry in entries:
        assert isinstance(entry, dict)
        assert set(entry) >= FIELDS
    return entries


def caught(fail: Callable[[], object]) -> BaseException:
    """The exception `fail()` raises, with its traceback."""
    try:
        fail()
    except Exception as error:
        return error
    raise AssertionError("expected an exception")


def raise_key_error() -> None:
    """A lookup that fails quoting the text it looked up."""
    raise KeyError(SECRET)


def save_secret() -> None:
    """Fails quoting a text, after another failure that quoted it too."""
    try:
        raise_key_error()
    except KeyError as inner:
        raise ValueError(f"could not save {SECRET!r}") from inner


def fail_with_secret() -> BaseException:
    """An untrusted error quoting a text, caused by another one quoting it too."""
    return caught(save_secret)


def blocked() -> None:
    """Fails the way the Bot API does when a user blocked the bot."""
    raise Forbidden("Forbidden: bot was blocked by the user")


def test_every_record_is_one_json_line_with_the_fields() -> None:
    before = datetime.now(UTC)

    def log(logger: logging.Logger) -> None:
        logger.info("engine open db=%s chroma=%s", "sqlite", "embedded")
        logger.warning("two\nlines and a \u2028 separator, caf\u00e9 \U0001f9e0")
        logger.debug("debug too")

    output = emit(JsonFormatter(reveal=False), log)
    entries = parse_lines(output)
    assert output.isascii()  # no raw U+2028 or other character a splitter could break on
    assert [e["level"] for e in entries] == ["INFO", "WARNING", "DEBUG"]
    assert {e["logger"] for e in entries} == {"memorybot.test_log_format"}
    assert entries[0]["message"] == "engine open db=sqlite chroma=embedded"
    assert entries[1]["message"] == "two\nlines and a \u2028 separator, caf\u00e9 \U0001f9e0"
    for entry in entries:
        stamp = datetime.fromisoformat(entry["time"])
        assert stamp.utcoffset() == timedelta(0)
        assert before - timedelta(seconds=1) <= stamp <= datetime.now(UTC) + timedelta(seconds=1)
        assert "exception" not in entry


def test_an_exception_stays_on_its_line_with_untrusted_messages_hidden() -> None:
    error = fail_with_secret()
    output = emit(
        JsonFormatter(reveal=False), lambda log: log.error("update failed", exc_info=error)
    )
    (entry,) = parse_lines(output)
    assert entry["message"] == "update failed"
    trace = entry["exception"]
    assert "Traceback (most recent call last)" in trace
    assert "KeyError" in trace
    assert "ValueError" in trace
    assert REDACTED in trace
    assert SECRET not in output
    assert "4711" not in output


def test_trusted_messages_stay_visible() -> None:
    error = caught(blocked)
    output = emit(JsonFormatter(reveal=False), lambda log: log.warning("send", exc_info=error))
    (entry,) = parse_lines(output)
    assert "Forbidden: bot was blocked by the user" in entry["exception"]


def test_log_level_debug_shows_the_full_traceback() -> None:
    error = fail_with_secret()
    output = emit(make_formatter("json", "DEBUG"), lambda log: log.error("boom", exc_info=error))
    (entry,) = parse_lines(output)
    assert "4711" in entry["exception"]  # DEBUG is where texts may appear


def test_the_text_format_hides_them_too_and_caches_nothing() -> None:
    error = fail_with_secret()
    record = logging.LogRecord(
        "memorybot.bot",
        logging.ERROR,
        __file__,
        1,
        "update failed",
        None,
        (type(error), error, error.__traceback__),
    )
    formatter = make_formatter("text", "INFO")
    assert isinstance(formatter, TextFormatter)
    first, *rest = formatter.format(record).splitlines()
    assert first.split(" ", 2)[2] == "ERROR memorybot.bot update failed"
    assert rest[0] == "Traceback (most recent call last):"
    assert REDACTED in rest[-1]
    assert "4711" not in "\n".join(rest)
    assert record.exc_info is not None  # handlers after this one still get the exception
    assert record.exc_text is None  # and no redacted (or full) text cached for them
    assert "4711" in logging.Formatter().format(record)  # what plain logging would print


@pytest.fixture
def restored_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    quiet = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, value in quiet.items():
        logging.getLogger(name).setLevel(value)


@pytest.mark.usefixtures("restored_logging")
def test_configure_logging_json_writes_json_lines_to_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("INFO", "json")
    logging.getLogger("memorybot.engine").info("engine open db=%s", "sqlite")
    logging.getLogger("memorybot.engine").debug("not at INFO")
    logging.getLogger("httpx").info("quiet library")
    logging.getLogger("memorybot.bot").error("update failed", exc_info=fail_with_secret())
    entries = parse_lines(capsys.readouterr().err)
    assert [(e["logger"], e["level"]) for e in entries] == [
        ("memorybot.engine", "INFO"),
        ("memorybot.bot", "ERROR"),
    ]
    assert "4711" not in entries[1]["exception"]

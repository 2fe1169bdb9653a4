"""Log lines for people (`LOG_FORMAT=text`) or for log shippers (`json`: one object per line).

Both formats keep the rule that no message text reaches the logs above DEBUG, tracebacks
included: unless the log level is DEBUG, a logged exception is shown as `redacted_trace` shows
it (frames, types, and only the messages whose wording is known to quote nothing).
"""

from __future__ import annotations

import json
import logging
import traceback
from datetime import UTC, datetime
from typing import Literal

from bot.logsafe import redacted_trace

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def exception_text(record: logging.LogRecord, *, reveal: bool) -> str | None:
    """The traceback of the record's exception, its untrusted messages hidden unless `reveal`."""
    if not record.exc_info or record.exc_info[1] is None:
        return None
    error = record.exc_info[1]
    if reveal:
        return "".join(traceback.format_exception(error)).rstrip("\n")
    return redacted_trace(error)


class TextFormatter(logging.Formatter):
    """`time LEVEL logger message`, then the (redacted) traceback on the following lines."""

    def __init__(self, *, reveal: bool) -> None:
        super().__init__(TEXT_FORMAT)
        self.reveal = reveal

    def format(self, record: logging.LogRecord) -> str:
        """The line, without letting `logging` print (and cache) the unredacted traceback."""
        trace = exception_text(record, reveal=self.reveal)
        saved = record.exc_info, record.exc_text
        record.exc_info, record.exc_text = None, None
        try:
            line = super().format(record)
        finally:
            record.exc_info, record.exc_text = saved
        return f"{line}\n{trace}" if trace else line


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (ISO-8601, UTC), level, logger, message[, exception]."""

    def __init__(self, *, reveal: bool) -> None:
        super().__init__()
        self.reveal = reveal

    def format(self, record: logging.LogRecord) -> str:
        """The record as a single line of ASCII JSON (newlines inside values are escaped)."""
        entry: dict[str, str] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        trace = exception_text(record, reveal=self.reveal)
        if trace is not None:
            entry["exception"] = trace
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=True)


def make_formatter(log_format: LogFormat, level: str) -> logging.Formatter:
    """The formatter for `LOG_FORMAT`; full tracebacks only when `LOG_LEVEL` is DEBUG."""
    reveal = level == "DEBUG"
    if log_format == "json":
        return JsonFormatter(reveal=reveal)
    return TextFormatter(reveal=reveal)

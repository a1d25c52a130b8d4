"""JSON log lines for the service, uvicorn included."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

AUDIT_FIELD = "audit_entries"
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any extras.

    A record carrying `audit_entries` (a list of dicts) becomes one line per
    entry, so a batch of predictions costs one log call but still yields one
    audit line per prediction.
    """

    def format(self, record: logging.LogRecord) -> str:
        """Render the record as JSON line(s)."""
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        batch = getattr(record, AUDIT_FIELD, None)
        if isinstance(batch, list):
            return "\n".join(
                json.dumps({**entry, **item}, default=str) for item in batch
            )
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def logging_config(level: str) -> dict[str, Any]:
    """dictConfig for the app and uvicorn."""
    handler = {"class": "logging.StreamHandler", "formatter": "json"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"stderr": handler},
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {
            "uvicorn": {"level": level},
            "uvicorn.error": {"level": level},
            "uvicorn.access": {"level": level},
        },
    }

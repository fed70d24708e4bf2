"""A progress bar on a terminal for rounds that last more than a second; silent otherwise."""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import Any, Optional

DELAY = 1.0


class RoundProgress:
    """Bytes moved and speed for one section's round, shown only on a terminal after DELAY."""

    def __init__(self, section: str, enabled: Optional[bool] = None) -> None:
        self.section = section
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.started = time.monotonic()
        self._progress: Optional[object] = None
        self._task: Any = None  # rich's TaskID
        self.moved = 0

    def __call__(self, nbytes: int) -> None:
        self.moved += nbytes
        if not self.enabled:
            return
        if self._progress is None:
            if time.monotonic() - self.started < DELAY:
                return
            self._start()
        from rich.progress import Progress

        assert isinstance(self._progress, Progress) and self._task is not None
        self._progress.update(self._task, completed=self.moved)

    def _start(self) -> None:
        from rich.console import Console
        from rich.progress import (
            DownloadColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TransferSpeedColumn,
        )

        progress = Progress(
            SpinnerColumn(),
            TextColumn(f"[bold]{self.section}[/bold]"),
            DownloadColumn(),
            TransferSpeedColumn(),
            transient=True,
            console=Console(stderr=True),
        )
        progress.start()
        self._task = progress.add_task(self.section, total=None)
        self._progress = progress

    def __enter__(self) -> RoundProgress:
        return self

    def __exit__(
        self,
        kind: Optional[type[BaseException]],
        value: Optional[BaseException],
        trace: Optional[TracebackType],
    ) -> None:
        if self._progress is not None:
            from rich.progress import Progress

            assert isinstance(self._progress, Progress)
            self._progress.stop()

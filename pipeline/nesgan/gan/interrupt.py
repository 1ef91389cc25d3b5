"""Ctrl-C and SIGTERM during `nesgan train`: finish the step, checkpoint, then stop.

The first SIGINT or SIGTERM only sets a flag (and says so on stderr); the training loop sees it
at the end of the step it is in, writes a checkpoint exactly as at a checkpoint step (atomic:
temp file, fsync, rename) and raises `TrainingInterrupted`, which the CLI turns into a line
saying how to continue (`--resume`) and exit status 128 + the signal (130 for Ctrl-C, 143 for
SIGTERM), as shells report a process a signal stopped. A second signal stops at once:
KeyboardInterrupt from wherever the process is (a checkpoint being written is abandoned, its
temp file removed, the previous one untouched).

Only a single-process run installs the handlers: under torchrun every rank would have to stop
at the same step, and torchrun has its own signal handling.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

EXIT_STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143}  # 128 + signal number


class TrainingInterrupted(Exception):
    """Training stopped on a signal after checkpointing `step` into `run`."""

    def __init__(self, run: Path, step: int, signum: int):
        self.run, self.step, self.signum = Path(run), step, signum
        super().__init__(f"stopped by {signal.Signals(signum).name} at step {step}")

    @property
    def exit_status(self) -> int:
        return EXIT_STATUS.get(self.signum, 128 + self.signum)

    def advice(self) -> str:
        return (f"stopped at step {self.step}: checkpoint saved in "
                f"{self.run / 'checkpoints' / 'last.pt'}; continue with\n"
                f"  nesgan train --run {self.run} --resume")


class GracefulStop:
    """Signal handlers for one training loop; `requested` is the first signal's number."""

    def __init__(self, enabled: bool = True):
        self.requested: int | None = None
        self._previous: dict[int, object] = {}
        if enabled and threading.current_thread() is threading.main_thread():
            for sig in EXIT_STATUS:
                self._previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum: int, _frame) -> None:
        if self.requested is not None:  # the second one: now
            self.restore()
            raise KeyboardInterrupt
        self.requested = signum
        print(f"\nnesgan: {signal.Signals(signum).name}: finishing this step and saving a "
              "checkpoint (Ctrl-C again stops at once)", file=sys.stderr, flush=True)

    def check(self, run: str | Path, step: int) -> None:
        """At the end of a step (after its checkpoint): raise when a stop was requested."""
        if self.requested is not None:
            raise TrainingInterrupted(Path(run), step, self.requested)

    def restore(self) -> None:
        """Put the handlers back as they were (idempotent)."""
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

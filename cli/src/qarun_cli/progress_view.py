"""What the local runner prints: its messages, supervisor events and the progress line.

On a terminal the progress line redraws in place (carriage return) and every other
message starts on a fresh line; into a file or a pipe the line is printed every few
seconds, so that a log of a long run stays short.
"""

from __future__ import annotations

from typing import TextIO

from qarun_cli import report
from qarun_core.summary import RunSummary

# Seconds between two progress lines when the output is not a terminal.
LINE_EVERY = 5.0


def progress_line(summary: RunSummary, total: int, rate: float, elapsed: float) -> str:
    width = 24
    done = report.results(summary)
    filled = int(width * min(1.0, done / total)) if total else 0
    bar = "#" * filled + "." * (width - filled)
    p = summary.progress
    return (
        f"[{bar}] {done}/{total} done  sent {p.sent}  answered {p.answered}  "
        f"validated {p.validated}  exhausted {p.exhausted}  failed {p.failed}  "
        f"retries {summary.retries}  {rate:.0f}/s  {elapsed:.0f}s"
    )


class ProgressView:
    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tty = out.isatty()
        self.last_line = float("-inf")  # when the last progress line was printed
        self.mid_line = False  # a progress line is drawn and not yet ended

    def say(self, text: str) -> None:
        """A message on a line of its own."""
        if self.mid_line:
            print(file=self.out)
            self.mid_line = False
        print(text, file=self.out, flush=True)

    def progress(self, line: str, now: float, final: bool = False) -> None:
        if self.tty:
            print("\r" + line, end="", file=self.out, flush=True)
            self.mid_line = True
        elif final or now - self.last_line >= LINE_EVERY:
            print(line, file=self.out, flush=True)
            self.last_line = now

"""Progress of a long loop: a tqdm bar on a terminal, plain lines in a log file.

A carriage-return bar sent to a file (a demo's log.txt, a pod job's log, nohup.out) is one long
line of overwritten states. When the stream is not a TTY, `bar` returns a `LineProgress` instead:
one full line every `every_s` seconds and one at the end ("games: 120/400 (30%), 2.1 game/s, 2m13s
left"). Both have tqdm's `n`, `update`, `set_postfix` and `close`.
"""

from __future__ import annotations

import sys
import time


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def bar(total: int | None, *, initial: int = 0, desc: str = "", unit: str = "it", every_s: float = 30.0,
        file=None, **tqdm_kwargs):
    """A tqdm bar when `file` (default stderr) is a terminal, else plain progress lines."""
    file = sys.stderr if file is None else file
    if _isatty(file):
        from tqdm import tqdm

        return tqdm(total=total, initial=initial, desc=desc or None, unit=unit, file=file, **tqdm_kwargs)
    return LineProgress(total, initial=initial, desc=desc, unit=unit, every_s=every_s, file=file)


def iterate(items, total: int | None = None, **kwargs):
    """Yield `items`, counting them on a `bar(total, **kwargs)`."""
    progress = bar(total, **kwargs)
    try:
        for item in items:
            yield item
            progress.update(1)
    finally:
        progress.close()


class LineProgress:
    """tqdm's interface, printed as whole lines: at most one every `every_s` seconds, and at close."""

    def __init__(self, total: int | None, *, initial: int = 0, desc: str = "", unit: str = "it",
                 every_s: float = 30.0, file=None):
        self.total, self.n, self.initial, self.desc, self.unit = total, initial, initial, desc or unit, unit
        self.every_s, self.file, self.postfix = every_s, file, {}
        self.start = self.last = time.monotonic()
        self.printed_n = None

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.last >= self.every_s:
            self.last = now
            self._print(now)

    def set_postfix(self, postfix=None, refresh: bool = True, **kwargs) -> None:
        self.postfix = dict(postfix or {}, **kwargs)

    def close(self) -> None:
        if self.printed_n != self.n:
            self._print(time.monotonic())

    def line(self, now: float | None = None) -> str:
        """The progress as one line: done/total (share), rate, time left, then the postfix."""
        elapsed = (time.monotonic() if now is None else now) - self.start
        done = self.n - self.initial
        rate = done / elapsed if elapsed > 0 else 0.0
        parts = [f"{self.n}/{self.total} ({100 * self.n / self.total:.0f}%)" if self.total else f"{self.n}"]
        if done:
            parts.append(f"{rate:,.2f} {self.unit}/s" if rate < 100 else f"{rate:,.0f} {self.unit}/s")
            if self.total and self.n < self.total:
                parts.append(f"{_duration((self.total - self.n) / rate)} left")
        parts += [f"{k}={v}" for k, v in self.postfix.items()]
        return f"{self.desc}: " + ", ".join(parts)

    def _print(self, now: float) -> None:
        print(self.line(now), file=self.file, flush=True)
        self.printed_n = self.n


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, m, s = seconds // 3600, seconds // 60 % 60, seconds % 60
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"

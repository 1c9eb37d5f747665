"""Progress display: a rich live bar (iteration, losses, samples/s, ETA) on a terminal, plain log lines otherwise."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table


def _fmt(row: dict[str, Any]) -> str:
    parts = []
    for k, v in row.items():
        if k in ("stage", "step") or v is None:
            continue
        parts.append(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}")
    return "  ".join(parts)


_active: list["Reporter"] = []  # the reporters whose display is open (innermost last)


def active_reporter() -> "Reporter | None":
    """The progress display in use, so that deeper code (pre-training) can add its bar to it rather than open a second
    live display."""
    return _active[-1] if _active else None


def format_duration(seconds: float) -> str:
    """``1 h 05 min``, ``12 min``, ``40 s``."""
    seconds = max(0.0, seconds)
    if seconds >= 3600:
        return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"
    if seconds >= 60:
        return f"{int(round(seconds / 60))} min"
    return f"{int(round(seconds))} s"


class Reporter:
    def __init__(self, console: Console | None = None) -> None:
        from . import distributed

        # in a distributed run only rank 0 shows progress, log lines and the result table
        quiet = not distributed.world().main
        self.console = console or Console(stderr=True, quiet=quiet)
        self._table_console = console or Console(quiet=quiet)  # the result: stdout unless the caller chose a console
        self.live = self.console.is_terminal
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TimeRemainingColumn(), TextColumn("{task.fields[info]}"), console=self.console, disable=not self.live,
        )

    def __enter__(self) -> "Reporter":
        self.progress.__enter__()
        _active.append(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self in _active:
            _active.remove(self)
        self.progress.__exit__(*exc)

    def log(self, msg: str) -> None:
        self.console.log(msg) if self.live else self.console.print(msg, highlight=False)

    def task(self, name: str, total: int, completed: int = 0) -> int:
        if not self.live and total:
            self.console.print(f"{name}: {total} steps", highlight=False)
        return self.progress.add_task(name, total=total, completed=completed, info="")

    def update(self, task: int, step: int, row: dict[str, Any] | None) -> None:
        info = _fmt(row) if row else None
        if info is None:
            self.progress.update(task, completed=step)
        else:
            self.progress.update(task, completed=step, info=info)
            if not self.live:
                self.console.print(f"  {row.get('stage', '')} step {step}: {info}", highlight=False)

    def done(self, task: int) -> None:
        self.progress.update(task, visible=self.live)

    def table(self, table: dict[str, dict[str, float]]) -> None:
        """The before/after table: MPJPE, PA-MPJPE (articulation alone) and the root-orientation error apart, on
        stdout (or on the console the run was given)."""
        t = Table(title="Estimator error on held-out poses: before -> after fine-tuning")
        for col in ("split", "MPJPE (mm)", "change", "PA-MPJPE (mm)", "root orientation (deg)"):
            t.add_column(col, justify="right" if col != "split" else "left")
        for split, r in table.items():
            change = (r["mpjpe_after"] - r["mpjpe_before"]) / max(r["mpjpe_before"], 1e-9) * 100
            t.add_row(
                split, f"{r['mpjpe_before']:.1f} -> {r['mpjpe_after']:.1f}", f"{change:+.1f}%",
                f"{r['pa_mpjpe_before']:.1f} -> {r['pa_mpjpe_after']:.1f}",
                f"{r['rot_deg_before']:.1f} -> {r['rot_deg_after']:.1f}",
            )
        self._table_console.print(t)

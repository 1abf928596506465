"""The live progress display of ``kiln build`` and ``kiln test`` on a terminal: one more monitor.

It reads the same events as every other sink (:mod:`kiln.monitor`) and draws, with Rich:

- the stage list (parent, each component, validate, outputs, evidence, tests, catalog) with each
  stage's status and elapsed time, and, for a rebuild of a known recipe, the last build's time per
  stage and in total with what is left of it (:mod:`kiln.cli.estimate`);
- under the running stage, its innermost running step and what the tools say: packages unpacked and
  configured of the total and archive bytes downloaded (mmdebstrap, ``apt-get`` in steps), the bytes
  of layers being written, the boot stages a VM's console has shown.

Warnings and errors (and step output with ``-v``) are printed above the display. When stderr is not
a terminal (CI logs) or with ``--json``, :func:`progress_monitor` gives the plain line output of
:class:`~kiln.monitor.ConsoleMonitor` instead. The orchestrator knows nothing of this module.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from kiln.cli.estimate import Estimate
from kiln.cli.progress_lines import BootProgress, PackageProgress
from kiln.monitor import ConsoleMonitor, Event, Monitor
from kiln.units import human_size

OK = ("success", "cached", "skipped", "passed")
BAR_WIDTH = 24


@dataclass
class _Stage:
    scope: str
    message: str
    started: float
    status: str = "running"
    duration: float | None = None
    row: bool = False  # a line of the stage list (a top-level stage)


@dataclass
class _Bytes:
    """A long operation's bytes: a layer being written, a disk being converted."""

    done: int = 0
    total: int = 0
    scope: str = ""


@dataclass
class _State:
    title: str = ""
    started: float | None = None
    total: float | None = None  # the build's duration, once it ended
    rows: list[_Stage] = field(default_factory=list)
    open: list[_Stage] = field(default_factory=list)
    packages: PackageProgress = field(default_factory=PackageProgress)
    boot: BootProgress | None = None
    work: dict[str, _Bytes] = field(default_factory=dict)


def _clock(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


class ProgressMonitor(Monitor):
    """A Rich display of the running build, redrawn as events arrive (see the module doc)."""

    def __init__(
        self,
        console: Console,
        *,
        verbose: bool = False,
        estimate: Estimate | None = None,
        clock: Callable[[], float] = time.monotonic,
        live: bool = True,
    ) -> None:
        self.console = console
        self.verbose = verbose
        self.estimate = estimate
        self.clock = clock
        self.state = _State()
        self._lock = threading.RLock()
        self._live = Live(self, console=console, refresh_per_second=4, transient=False) if live else None
        if self._live is not None:
            self._live.start()

    # -- events ---------------------------------------------------------------------------------
    def emit(self, event: Event) -> None:
        # Lines are printed after the state lock is released: printing makes Live redraw, and its
        # refresh thread may be waiting for this lock inside __rich__ while holding its own.
        with self._lock:
            self._pending: list[str] = []
            handler = getattr(self, f"_on_{event.kind}", None)
            if handler is not None:
                handler(event)
            pending, self._pending = self._pending, []
        for text in pending:
            self.console.print(text, highlight=False, soft_wrap=True)

    def _on_start(self, event: Event) -> None:
        state, now = self.state, self.clock()
        if event.scope == "build" and not state.open:
            state.title, state.started = event.message, now
            state.open.append(_Stage(event.scope, event.message, now))
            return
        top = not state.open or (len(state.open) == 1 and state.open[0].scope == "build")
        stage = _Stage(event.scope, event.message, now, row=top)
        state.open.append(stage)
        if top:
            state.rows.append(stage)
            # layers are written in the background across stages; anything else ended with its stage
            state.work = {k: v for k, v in state.work.items() if v.scope == "layer" and v.done < v.total}
        if event.scope in ("parent", "step", "phase") or top:
            state.packages = PackageProgress()
        if event.scope == "verify" or (event.scope == "test" and top):
            state.boot = None

    def _on_end(self, event: Event) -> None:
        state = self.state
        for index in range(len(state.open) - 1, -1, -1):  # the innermost open stage of that name
            stage = state.open[index]
            if stage.message == event.message and stage.scope == event.scope:
                del state.open[index:]
                stage.status = event.status or "done"
                stage.duration = self.clock() - stage.started if event.duration is None else event.duration
                if stage.scope == "build" and index == 0:
                    state.total = stage.duration
                return

    def _on_info(self, event: Event) -> None:
        if event.status == "cached":  # a cached component, validate or test: a finished row
            name = event.message.split(":", 1)[0]
            if event.component and not name.startswith("component "):
                name = f"component {event.component}"
            self.state.rows.append(_Stage("cached", name, self.clock(), "cached", 0.0, row=True))
        else:
            self._live_print(escape(event.message))

    def _on_warning(self, event: Event) -> None:
        self._live_print(f"[yellow]warning:[/] {escape(event.message)}")

    def _on_error(self, event: Event) -> None:
        self._live_print(f"[red]error:[/] {escape(event.message)}")

    def _on_output(self, event: Event) -> None:
        state = self.state
        if event.scope == "vm":
            if state.boot is None:
                state.boot = BootProgress()
            state.boot.feed(event.message)
        else:
            state.packages.feed(event.message)
        if self.verbose:
            self._live_print(f"[dim]│ {escape(event.message)}[/]")

    def _on_progress(self, event: Event) -> None:
        done, total = event.data.get("done"), event.data.get("total")
        if isinstance(done, int) and isinstance(total, int):
            self.state.work[event.message] = _Bytes(done, total, event.scope)

    def _live_print(self, text: str) -> None:
        """A line above the display (printed by ``emit`` once the lock is released)."""
        self._pending.append(text)

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    # -- drawing --------------------------------------------------------------------------------
    def __rich__(self) -> RenderableType:
        with self._lock:
            return self.render()

    def render(self) -> RenderableType:
        """The display as it stands (the tests print it to a console of a fixed width)."""
        state, now = self.state, self.clock()
        table = Table.grid(padding=(0, 1))
        table.add_column(width=1)
        table.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
        table.add_column(justify="right", no_wrap=True)
        table.add_column(justify="right", no_wrap=True)
        table.add_column(justify="right", no_wrap=True, style="dim")
        for stage in state.rows:
            table.add_row(*self._row(stage, now))
        parts: list[RenderableType] = [table]
        if any(stage.status == "running" for stage in state.rows):
            parts += self._details(now)  # stages run one after the other: the running one is last
        if state.title:
            parts.append(self._summary(now))
        return Group(*parts)

    def _row(self, stage: _Stage, now: float) -> tuple[RenderableType, ...]:
        icon = {"running": "[cyan]▸[/]", "failed": "[red]✗[/]"}.get(
            stage.status, "[green]✓[/]" if stage.status in OK else "[yellow]•[/]"
        )
        seconds = stage.duration if stage.duration is not None else now - stage.started
        took = "" if stage.status == "cached" else f"{seconds:.1f}s"
        last = self.estimate.stages.get(stage.message) if self.estimate else None
        colour = "green" if stage.status in OK else ("red" if stage.status == "failed" else "cyan")
        return (
            Text.from_markup(icon),
            Text(stage.message),
            Text(stage.status, style=colour),
            Text(took),
            Text(f"last {last:.1f}s" if last is not None else ""),
        )

    def _details(self, now: float) -> list[RenderableType]:
        state = self.state
        lines: list[RenderableType] = []
        inner = [s for s in state.open if not s.row and s.scope != "build"]
        if inner:
            stage = inner[-1]
            lines.append(Text(f"  {stage.message}  {now - stage.started:.1f}s", style="dim"))
        pkg = state.packages
        if pkg.activity and state.open and state.open[-1].scope == "parent":
            lines.append(Text(f"  mmdebstrap: {pkg.activity}", style="dim"))
        if pkg.download_total and pkg.downloaded < pkg.download_total:
            text = f"{human_size(pkg.downloaded)} of {human_size(pkg.download_total)}"
            lines.append(self._bar("download", pkg.downloaded, pkg.download_total, text))
        if pkg.total:
            done = min(pkg.unpacked, pkg.total) + min(pkg.configured, pkg.total)
            text = f"{pkg.unpacked}/{pkg.total} unpacked, {pkg.configured}/{pkg.total} configured"
            lines.append(self._bar("packages", done, 2 * pkg.total, text))
        for name, work in state.work.items():
            if work.total and work.done < work.total:
                text = f"{human_size(work.done)} of {human_size(work.total)}"
                lines.append(self._bar(name, work.done, work.total, text))
        if state.boot is not None and state.boot.stage:
            seen = " > ".join(state.boot.stages_seen)
            target = f" · {state.boot.target}" if state.boot.target else ""
            lines.append(Text(f"  boot: {seen}{target}", no_wrap=True, overflow="ellipsis"))
        return lines

    def _bar(self, label: str, done: int, total: int, text: str) -> RenderableType:
        grid = Table.grid(padding=(0, 1))
        grid.add_row(
            Text(f"  {label}", no_wrap=True, overflow="ellipsis"),
            ProgressBar(total=max(total, 1), completed=done, width=BAR_WIDTH),
            Text(text, no_wrap=True),
        )
        return grid

    def _summary(self, now: float) -> RenderableType:
        state = self.state
        running = state.total is None
        elapsed = state.total if state.total is not None else now - (state.started or now)
        text = Text(state.title, style="bold")
        text.append(f"  {_clock(elapsed)} {'elapsed' if running else 'in total'}")
        if self.estimate is not None:
            text.append(f"  last build {_clock(self.estimate.total)}", style="dim")
            if running:
                left = self.estimate.total - elapsed
                text.append(f"  about {_clock(left)} left" if left > 0 else "  longer than last time")
        return text


def progress_monitor(
    console: Console, *, verbose: bool, json_output: bool, estimate: Estimate | None = None
) -> Monitor:
    """The live display on a terminal; plain lines when stderr is not one (CI logs) or with --json."""
    if json_output or not console.is_terminal or console.is_dumb_terminal:
        return ConsoleMonitor(console, verbose=verbose)
    return ProgressMonitor(console, verbose=verbose, estimate=estimate)

"""The app's long jobs — rescan and preview — as cancellable workers with a progress bar.

A mixin of the app class.  The jobs themselves (:mod:`lutnav.tui.jobs`) know
nothing of Textual; here their progress becomes the status line, their end a
notification and a refreshed view, and ``esc`` their cancellation.  It also
watches for the library folder disappearing under the app.
"""

from __future__ import annotations

import sqlite3

from rich.text import Text
from textual import work
from textual.widgets import ProgressBar, Static
from textual.worker import get_current_worker

from catalog.errors import CatalogError

from . import jobs
from .entry_table import EntryTable


class Background:
    """Mixed into the App; needs ``self.lib`` and ``reload(keep)``."""

    _gone = False  # the library folder disappeared while open

    def _busy(self, text: str, total: float | None = None, done: float = 0) -> None:
        self.query_one("#status").add_class("-busy")
        self.query_one("#status-text", Static).update(Text(text))
        self.query_one(ProgressBar).update(total=total, progress=done)

    def _idle(self) -> None:
        self.query_one("#status").remove_class("-busy")

    def cancel_jobs(self) -> bool:
        """Cancel a running scan or preview; False when none runs."""
        running = [w for w in self.workers if w.group in ("scan", "preview") and w.is_running]
        for w in running:
            w.cancel()
        return bool(running)

    @work(thread=True, exclusive=True, group="scan")
    def rescan(self, keep: str | None = None, quiet: bool = False) -> None:
        worker = get_current_worker()
        self.call_from_thread(self._busy, "scanning…")
        try:
            summary = jobs.scan(self.lib.root, lambda p: self.call_from_thread(self._scan_step, p),
                                cancel=lambda: worker.is_cancelled)
        except (CatalogError, OSError, sqlite3.Error) as err:
            self.call_from_thread(self._job_failed, f"scan failed: {err}")
            return
        self.call_from_thread(self._scan_done, summary, keep, quiet)

    def _scan_step(self, step) -> None:
        label = f"scanning: {step.phase} {step.done}/{step.total or '?'} {step.item}"
        self._busy(label, step.total or None, step.done)

    def _scan_done(self, summary, keep: str | None, quiet: bool) -> None:
        self._idle()
        self.reload(keep=keep)
        if not quiet or summary.cancelled:
            what = "cancelled" if summary.cancelled else "scanned"
            self.notify(f"{what}: {summary.total} entries, {summary.added} added, "
                        f"{summary.updated} updated, {summary.removed} removed", timeout=4)

    @work(thread=True, exclusive=True, group="preview")
    def preview(self, specs: list[str]) -> None:
        worker = get_current_worker()
        self.call_from_thread(self._busy, f"preview: {' + '.join(specs)} — loading the model…")
        try:
            paths = jobs.preview(self.lib.root, specs,
                                 lambda step: self.call_from_thread(
                                     self._busy, f"preview: {step.item}", step.total, step.done),
                                 cancel=lambda: worker.is_cancelled)
        except Exception as err:  # noqa: BLE001 — whatever the heavy stack raises becomes a message
            self.call_from_thread(self._job_failed, f"preview failed: {err}")
            return
        self.call_from_thread(self._preview_done, paths)

    def _preview_done(self, paths) -> None:
        self._idle()
        if paths is None:
            self.notify("preview cancelled", timeout=3)
            return
        self.notify("preview written: " + ", ".join(str(p) for p in paths), timeout=8)
        current = self.query_one(EntryTable).current
        self.reload(keep=current.path if current else None)

    def _job_failed(self, message: str) -> None:
        self._idle()
        self.notify(message, severity="error", timeout=8)

    # --- trouble -----------------------------------------------------------------

    def _check_library(self) -> None:
        if not self._gone and not self.lib.root.is_dir():
            self._trouble(f"the library folder {self.lib.root} is gone — what is shown is the last "
                          "index; rescans and card saves are off. q quits.")
            self._gone = True

    def _refuse_if_gone(self) -> bool:
        self._check_library()
        if self._gone:
            self.notify("the library folder is gone", severity="error")
        return self._gone

    def _trouble(self, message: str) -> None:
        banner = self.query_one("#banner", Static)
        banner.update(Text(message))
        banner.add_class("-shown")

    def on_entry_table_failed(self, event: EntryTable.Failed) -> None:
        self._trouble(f"the index cannot be read: {event.error}")

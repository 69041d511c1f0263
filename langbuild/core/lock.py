"""langbuild.lock: what each step last produced, and from what.

Per step the lock records the fingerprint it ran with (code version + settings + fingerprints of
the steps it reads), the size and hash of every output file, its status and timings. The file is
machine-written, replaced atomically, and only after a step has fully succeeded.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from .atomic import atomic_write_json
from .errors import LangbuildError

LOCK_NAME = "langbuild.lock"
LOCK_VERSION = 1


class Lock:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.data: dict[str, Any] = {"version": LOCK_VERSION, "steps": {}}
        if self.path.exists():
            self.data = self._read()

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise LangbuildError(
                f"{self.path} is corrupt: delete it to re-run every step (your outputs stay on disk)"
            ) from None
        if not isinstance(data, dict) or not isinstance(data.get("steps"), dict):
            raise LangbuildError(f"{self.path} has an unknown layout: delete it to re-run every step")
        return data

    def entry(self, step: str) -> dict[str, Any] | None:
        return self.data["steps"].get(step)

    def record_success(self, step: str, fingerprint: str, outputs: dict, seconds: float, summary: dict) -> None:
        self.data["steps"][step] = {
            "status": "done",
            "fingerprint": fingerprint,
            "outputs": outputs,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "seconds": round(seconds, 2),
            "summary": summary,
        }
        self.save()

    def mark_replacing(self, step: str) -> None:
        """Forget the step's fingerprint before its folder is swapped; record_success restores it."""
        entry = self.data["steps"].get(step)
        if entry and entry.get("fingerprint"):
            entry["fingerprint"] = None
            self.save()

    def record_failure(self, step: str, fingerprint: str, message: str) -> None:
        """Keep the last good record (its outputs are still on disk) and note the failed attempt."""
        entry = dict(self.data["steps"].get(step) or {})
        entry["failed"] = {
            "fingerprint": fingerprint,
            "message": message,
            "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        self.data["steps"][step] = entry
        self.save()

    def save(self) -> None:
        atomic_write_json(self.path, self.data)

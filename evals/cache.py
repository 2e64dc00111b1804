"""Disk cache of model responses, keyed by the whole request and the model.

A repeated run costs no model calls. SQLite (stdlib) gives one file, atomic
writes and fast point lookups; commits are batched because a lost entry only
costs a repeated call, while records (not the cache) are the source of truth.
Only responses are stored: no headers, so no API key.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import orjson

from evals.runner import Response

COMMIT_EVERY_S = 1.0


def default_cache_dir() -> Path:
    return Path(os.environ.get("EVALS_CACHE_DIR") or "~/.cache/evals").expanduser()


class ResponseCache:
    def __init__(self, directory: Path | None = None):
        directory = Path(directory or default_cache_dir())
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / "responses.sqlite"
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, value BLOB)")
        self._pending: list[tuple[str, bytes]] = []
        self._last_commit = time.monotonic()

    def get(self, key: str) -> Response | None:
        """``key``: ``Request.cache_key(identity)``, computed once per request by the caller."""
        row = self._db.execute("SELECT value FROM responses WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        response = Response.from_json(orjson.loads(row[0]))
        response.cached = True
        return response

    def put(self, key: str, response: Response) -> None:
        self._pending.append((key, orjson.dumps(response.to_json())))
        if time.monotonic() - self._last_commit > COMMIT_EVERY_S:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR REPLACE INTO responses VALUES (?, ?)", self._pending)
            self._db.execute("COMMIT")
            self._pending.clear()
        self._last_commit = time.monotonic()

    def close(self) -> None:
        self.flush()
        self._db.close()

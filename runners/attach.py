"""Response ids of provider-side requests still running, kept on disk across a kill.

A background request (the Responses API's ``background: true``) is paid for when it
is created, not when it is read. The runner writes its id here the moment the
provider returns it, keyed by the request's cache key, and deletes it once the
response is finished and read. A run killed in between (kill -9, a lost machine)
and resumed asks for the same request again; the runner then finds the id here and
polls it instead of creating, and paying for, a second one.

SQLite in autocommit mode: each insert is on disk when ``add`` returns, so only a
kill between the provider's answer and that insert loses an id. Ids claimed by this
process are not handed out twice, so two identical requests in one run (the same
prompt under two sample ids) never read the same response; two processes sharing
one journal for the same requests at once can (give each its own ``attach_dir``).
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path


class ResponseJournal:
    def __init__(self, directory: Path):
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / "pending_responses.sqlite"
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS pending "
                         "(id TEXT PRIMARY KEY, key TEXT NOT NULL, created REAL NOT NULL)")
        self._db.execute("CREATE INDEX IF NOT EXISTS pending_key ON pending (key)")
        self._claimed: set[str] = set()

    def claim(self, key: str) -> str | None:
        """The oldest stored id for ``key`` that this process is not already reading."""
        rows = self._db.execute("SELECT id FROM pending WHERE key = ? ORDER BY created",
                                (key,)).fetchall()
        for (response_id,) in rows:
            if response_id not in self._claimed:
                self._claimed.add(response_id)
                return response_id
        return None

    def add(self, key: str, response_id: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO pending VALUES (?, ?, ?)",
                         (response_id, key, time.time()))
        self._claimed.add(response_id)

    def release(self, response_id: str) -> None:
        """Stop reading it, but keep it: a retry or a resumed run attaches again."""
        self._claimed.discard(response_id)

    def drop(self, response_id: str) -> None:
        """It is finished (read, failed, or gone on the provider's side)."""
        self._db.execute("DELETE FROM pending WHERE id = ?", (response_id,))
        self._claimed.discard(response_id)

    def pending(self) -> int:
        return self._db.execute("SELECT count(*) FROM pending").fetchone()[0]

    def close(self) -> None:
        self._db.close()

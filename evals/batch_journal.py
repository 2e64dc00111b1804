"""The journal of a batch run (``RUN_DIR/batches.sqlite``): the run's batches and the
custom_id of every request in them, written before anything is sent, so that a run
killed at any point resumes without losing or sending twice (evals/batch.py)."""

from __future__ import annotations

import secrets
import sqlite3
import time
from pathlib import Path
from typing import Any, Iterable

import orjson

JOURNAL_FILE = "batches.sqlite"
# Provider states, normalised: work not started or running, then the terminal ones.
RUNNING = ("pending", "running", "finalizing", "cancelling")
TERMINAL = ("ended", "failed", "expired", "cancelled")



class BatchJournal:
    """The batches of one run and the custom_id of every request in them, on disk.

    SQLite with ``synchronous=FULL``: each transaction is on disk when it returns."""

    def __init__(self, run_dir: Path):
        run_dir.mkdir(parents=True, exist_ok=True)
        self.path = run_dir / JOURNAL_FILE
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS batches (name TEXT PRIMARY KEY, seq INTEGER, "
            "model TEXT, state TEXT, remote_id TEXT, remote_state TEXT, counts TEXT, "
            "created REAL, sent REAL, ended REAL, estimate REAL, requests INTEGER)")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS items (batch TEXT, custom_id TEXT, task TEXT, "
            "model TEXT, setting TEXT, sample_id TEXT, gen INTEGER, state TEXT, "
            "PRIMARY KEY (batch, custom_id))")
        self._db.execute("CREATE INDEX IF NOT EXISTS items_id ON items (custom_id)")

    def _tx(self, statements: Iterable[tuple[str, tuple]]) -> None:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for sql, args in statements:
                self._db.execute(sql, args)
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def prepare(self, model: str, items: list[tuple[str, tuple]], estimate: float) -> str:
        """A new batch of ``items`` ((custom_id, (task, model, setting, sample_id, gen)));
        its name is what the provider will know it by."""
        seq = (self._db.execute("SELECT max(seq) FROM batches").fetchone()[0] or 0) + 1
        name = f"evals-{seq:05d}-{secrets.token_hex(4)}"
        self._tx([("INSERT INTO batches VALUES (?, ?, ?, 'prepared', NULL, NULL, NULL, ?, "
                   "NULL, NULL, ?, ?)", (name, seq, model, time.time(), estimate, len(items)))]
                 + [("INSERT INTO items VALUES (?, ?, ?, ?, ?, ?, ?, 'open')",
                     (name, cid, *key)) for cid, key in items])
        return name

    def set(self, name: str, **fields: Any) -> None:
        if "counts" in fields:
            fields["counts"] = orjson.dumps(fields["counts"]).decode()
        columns = ", ".join(f"{k} = ?" for k in fields)
        self._tx([(f"UPDATE batches SET {columns} WHERE name = ?", (*fields.values(), name))])

    def mark(self, name: str, states: dict[str, str]) -> None:
        """Item states after their results were recorded (one transaction)."""
        self._tx([("UPDATE items SET state = ? WHERE batch = ? AND custom_id = ?",
                   (state, name, cid)) for cid, state in states.items()])

    def batches(self, *, open_only: bool = True) -> list[dict[str, Any]]:
        where = " WHERE state != 'collected'" if open_only else ""
        cursor = self._db.execute(f"SELECT * FROM batches{where} ORDER BY seq")
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]

    def items(self, name: str, state: str | None = "open") -> list[tuple]:
        sql = "SELECT custom_id, task, model, setting, sample_id, gen FROM items WHERE batch = ?"
        args: tuple = (name,)
        if state is not None:
            sql, args = sql + " AND state = ?", (name, state)
        return self._db.execute(sql, args).fetchall()

    def in_flight(self) -> set[str]:
        """custom_ids waiting in a batch not yet collected."""
        return {row[0] for row in self._db.execute(
            "SELECT i.custom_id FROM items i JOIN batches b ON i.batch = b.name "
            "WHERE b.state != 'collected' AND i.state = 'open'")}

    def attempts(self, cid: str) -> int:
        return self._db.execute("SELECT count(*) FROM items WHERE custom_id = ?",
                                (cid,)).fetchone()[0]

    def remote_ids(self) -> set[str]:
        return {r[0] for r in self._db.execute(
            "SELECT remote_id FROM batches WHERE remote_id IS NOT NULL")}

    def close(self) -> None:
        self._db.close()

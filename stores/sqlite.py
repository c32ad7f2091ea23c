"""The transactional store: the single source of truth for knowd.

SQLite (WAL mode) holds documents, facts, every fact's history, the operations
log, the model calls behind each decision, the durable inbox and connector
cursors. Everything an ingest changes is written inside one transaction
(`Store.transaction()`), so a process killed at any point leaves the store as it
was before the document or fully after it.

The vector index (stores/vector.py) is derived data: facts touched by a commit
are queued in `index_queue` inside the same transaction and pushed to Chroma
afterwards, so a crash between the two only delays indexing.
"""
from __future__ import annotations

import json
import re
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from stores.types import Document, Fact, FactKey, HistoryEntry, Operation, content_hash, key_norm, utcnow

SCHEMA_VERSION = 3  # 2: fact_keys; 3: operations.actor

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    url TEXT, author TEXT, published_at TEXT, read_at TEXT NOT NULL,
    title TEXT, text TEXT NOT NULL, meta TEXT NOT NULL DEFAULT '{}',
    content_hash TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',      -- pending | done | failed | reverted
    error TEXT, attempts INTEGER NOT NULL DEFAULT 0,
    ingested_at TEXT
);
CREATE TABLE IF NOT EXISTS facts (
    id TEXT PRIMARY KEY,
    text TEXT NOT NULL,
    norm TEXT NOT NULL,                           -- normalised text, for exact duplicates
    subject TEXT NOT NULL DEFAULT '', relation TEXT NOT NULL DEFAULT '',
    object TEXT NOT NULL DEFAULT '',
    supersedes TEXT REFERENCES facts(id),
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS facts_subject ON facts(subject COLLATE NOCASE);
CREATE INDEX IF NOT EXISTS facts_norm ON facts(norm);
CREATE TABLE IF NOT EXISTS fact_keys (          -- which question each fact answers (graphs/keys.py)
    fact_id TEXT NOT NULL REFERENCES facts(id),
    subject TEXT NOT NULL, relation TEXT NOT NULL, object TEXT NOT NULL DEFAULT '',
    subject_norm TEXT NOT NULL, object_norm TEXT NOT NULL DEFAULT '',
    negated INTEGER NOT NULL DEFAULT 0, past INTEGER NOT NULL DEFAULT 0, definite INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (fact_id, relation, subject_norm, object_norm)
);
CREATE INDEX IF NOT EXISTS keys_subject ON fact_keys(subject_norm, relation);
CREATE INDEX IF NOT EXISTS keys_object ON fact_keys(object_norm, relation);
CREATE TABLE IF NOT EXISTS fact_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    fact_id TEXT NOT NULL REFERENCES facts(id),
    time TEXT NOT NULL, truth INTEGER NOT NULL,
    doc_id TEXT, op TEXT NOT NULL, op_id INTEGER,
    recorded_at TEXT NOT NULL,
    reverted INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS history_fact ON fact_history(fact_id, time);
CREATE INDEX IF NOT EXISTS history_doc ON fact_history(doc_id);
CREATE TABLE IF NOT EXISTS model_calls (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id TEXT, step TEXT NOT NULL, model TEXT,
    prompt TEXT NOT NULL, output TEXT, error TEXT,
    prompt_tokens INTEGER, completion_tokens INTEGER, seconds REAL,
    time TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS calls_doc ON model_calls(doc_id);
CREATE TABLE IF NOT EXISTS operations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id TEXT, fact_id TEXT, op TEXT NOT NULL,
    before TEXT, after TEXT, time TEXT NOT NULL,
    model_io_ref INTEGER REFERENCES model_calls(id),
    detail TEXT, reverted INTEGER NOT NULL DEFAULT 0,
    actor TEXT                                    -- the token name behind a person's action (agent/security.py)
);
CREATE INDEX IF NOT EXISTS ops_doc ON operations(doc_id);
CREATE TABLE IF NOT EXISTS index_queue (fact_id TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS inbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id TEXT NOT NULL, content_hash TEXT NOT NULL,
    connector TEXT, payload TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'queued',        -- queued | done | failed
    attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at TEXT,
    error TEXT, created_at TEXT NOT NULL, finished_at TEXT,
    UNIQUE (doc_id, content_hash)
);
CREATE INDEX IF NOT EXISTS inbox_status ON inbox(status, next_attempt_at);
CREATE TABLE IF NOT EXISTS cursors (
    connector TEXT PRIMARY KEY, state TEXT NOT NULL, updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS connector_status (   -- written by the daemon, read by `knowd status`
    connector TEXT PRIMARY KEY, kind TEXT,
    last_poll_at TEXT, last_ok_at TEXT, last_error TEXT, last_error_at TEXT,
    consecutive_failures INTEGER NOT NULL DEFAULT 0, polls INTEGER NOT NULL DEFAULT 0,
    items_seen INTEGER NOT NULL DEFAULT 0, items_new INTEGER NOT NULL DEFAULT 0,
    next_poll_at TEXT, updated_at TEXT NOT NULL
);
CREATE VIRTUAL TABLE IF NOT EXISTS facts_fts USING fts5(
    text, subject, content='facts', content_rowid='rowid', tokenize='porter unicode61'
);
CREATE TRIGGER IF NOT EXISTS facts_ai AFTER INSERT ON facts BEGIN
    INSERT INTO facts_fts(rowid, text, subject) VALUES (new.rowid, new.text, new.subject);
END;
CREATE TRIGGER IF NOT EXISTS facts_ad AFTER DELETE ON facts BEGIN
    INSERT INTO facts_fts(facts_fts, rowid, text, subject) VALUES ('delete', old.rowid, old.text, old.subject);
END;
"""

_TIME_FMT = "%Y-%m-%dT%H:%M:%S.%fZ"


def fmt_time(t: datetime | None) -> str | None:
    """UTC, fixed width, so that string order is time order in SQL."""
    if t is None:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return t.astimezone(timezone.utc).strftime(_TIME_FMT)


def parse_time(s: str | None) -> datetime | None:
    if s is None:
        return None
    return datetime.strptime(s, _TIME_FMT).replace(tzinfo=timezone.utc)


def normalise_fact(text: str) -> str:
    """Lower-case, collapse spaces, drop trailing punctuation: exact-duplicate key."""
    return re.sub(r"\s+", " ", text.strip().lower()).rstrip(" .!;")


def fact_id_for(text: str) -> str:
    return "f_" + content_hash(normalise_fact(text))[:16]


class Store:
    """SQLite-backed source of truth. One instance per process; thread-safe writes."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(
            str(self.path), isolation_level=None, check_same_thread=False, timeout=30
        )
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")  # durability over speed: an ack means on disk
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._depth = 0
        self._conn.executescript(_SCHEMA)
        self._migrate()
        self._conn.execute(
            """INSERT INTO meta(key, value) VALUES ('schema_version', ?) ON CONFLICT(key) DO UPDATE
               SET value=excluded.value WHERE CAST(value AS INTEGER) < CAST(excluded.value AS INTEGER)""",
            (str(SCHEMA_VERSION),),
        )

    def _migrate(self) -> None:
        """Columns added after a store was created (CREATE TABLE IF NOT EXISTS keeps old tables)."""
        cols = {r[1] for r in self._conn.execute("PRAGMA table_info(operations)")}
        if "actor" not in cols:
            self._conn.execute("ALTER TABLE operations ADD COLUMN actor TEXT")

    def close(self) -> None:
        self._conn.close()

    # ------------------------------------------------------------------ transactions
    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT; nested calls join the outer transaction."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self._conn
                finally:
                    self._depth -= 1
                return
            self._conn.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            else:
                self._conn.execute("COMMIT")
            finally:
                self._depth = 0

    def _q(self, sql: str, args: tuple | list = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, args).fetchall()

    # ------------------------------------------------------------------ documents
    def put_document(self, doc: Document, status: str = "pending") -> None:
        """Insert or refresh a document row (text may be updated by a new version)."""
        with self.transaction() as c:
            c.execute(
                """INSERT INTO documents(id, source, url, author, published_at, read_at, title, text,
                       meta, content_hash, status, ingested_at)
                   VALUES (?,?,?,?,?,?,?,?,?,?,?,?)
                   ON CONFLICT(id) DO UPDATE SET text=excluded.text, title=excluded.title,
                       meta=excluded.meta, content_hash=excluded.content_hash, status=excluded.status,
                       error=CASE WHEN excluded.status='done' THEN NULL ELSE error END,
                       ingested_at=CASE WHEN excluded.status='done' THEN excluded.ingested_at ELSE ingested_at END""",
                (
                    doc.id, doc.source, doc.url, doc.author, fmt_time(doc.published_at),
                    fmt_time(doc.read_at), doc.title, doc.text, json.dumps(doc.meta, default=str),
                    doc.content_hash, status, fmt_time(utcnow()) if status == "done" else None,
                ),
            )

    def get_document(self, doc_id: str) -> Document | None:
        rows = self._q("SELECT * FROM documents WHERE id=?", (doc_id,))
        return _row_to_doc(rows[0]) if rows else None

    def document_status(self, doc_id: str) -> dict[str, Any] | None:
        rows = self._q(
            "SELECT id, status, error, attempts, ingested_at, content_hash FROM documents WHERE id=?",
            (doc_id,),
        )
        return dict(rows[0]) if rows else None

    def set_document_status(self, doc_id: str, status: str, error: str | None = None) -> None:
        with self.transaction() as c:
            c.execute(
                """UPDATE documents SET status=?, error=?, attempts=attempts + (? = 'failed'),
                       ingested_at=CASE WHEN ?='done' THEN ? ELSE ingested_at END WHERE id=?""",
                (status, error, status, status, fmt_time(utcnow()), doc_id),
            )

    def list_documents(self, status: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        sql = "SELECT id, source, title, published_at, status, error, attempts FROM documents"
        args: list[Any] = []
        if status:
            sql += " WHERE status=?"
            args.append(status)
        sql += " ORDER BY COALESCE(published_at, read_at) DESC LIMIT ?"
        args.append(limit)
        return [dict(r) for r in self._q(sql, args)]

    # ------------------------------------------------------------------ facts
    def _history(self, fact_ids: list[str]) -> dict[str, list[HistoryEntry]]:
        out: dict[str, list[HistoryEntry]] = {f: [] for f in fact_ids}
        for chunk in _chunks(fact_ids, 500):
            marks = ",".join("?" * len(chunk))
            for r in self._q(
                f"SELECT * FROM fact_history WHERE fact_id IN ({marks}) ORDER BY time, id", chunk
            ):
                out[r["fact_id"]].append(
                    HistoryEntry(
                        time=parse_time(r["time"]), truth=bool(r["truth"]), doc_id=r["doc_id"],
                        op=r["op"], op_id=r["op_id"], reverted=bool(r["reverted"]),
                    )
                )
        return out

    def _keys(self, fact_ids: list[str]) -> dict[str, list[FactKey]]:
        out: dict[str, list[FactKey]] = {f: [] for f in fact_ids}
        for chunk in _chunks(fact_ids, 500):
            marks = ",".join("?" * len(chunk))
            for r in self._q(f"SELECT * FROM fact_keys WHERE fact_id IN ({marks}) ORDER BY rowid", chunk):
                out[r["fact_id"]].append(FactKey(
                    r["subject"], r["relation"], r["object"], bool(r["negated"]), bool(r["past"]), bool(r["definite"])
                ))
        return out

    def _facts_from_rows(self, rows: list[sqlite3.Row]) -> list[Fact]:
        ids = [r["id"] for r in rows]
        hist, keys = self._history(ids), self._keys(ids)
        return [
            Fact(
                id=r["id"], text=r["text"], subject=r["subject"], relation=r["relation"],
                object=r["object"], supersedes=r["supersedes"], created_at=parse_time(r["created_at"]),
                history=hist[r["id"]], keys=keys[r["id"]],
            )
            for r in rows
        ]

    def get_facts(self, ids: list[str]) -> list[Fact]:
        """Facts by id, in the order asked; unknown ids are skipped."""
        rows: dict[str, sqlite3.Row] = {}
        for chunk in _chunks(list(dict.fromkeys(ids)), 500):
            marks = ",".join("?" * len(chunk))
            for r in self._q(f"SELECT * FROM facts WHERE id IN ({marks})", chunk):
                rows[r["id"]] = r
        facts = {f.id: f for f in self._facts_from_rows(list(rows.values()))}
        return [facts[i] for i in ids if i in facts]

    def get_fact(self, fact_id: str) -> Fact | None:
        got = self.get_facts([fact_id])
        return got[0] if got else None

    def list_facts(
        self, current_only: bool = True, as_of: datetime | None = None, limit: int | None = None
    ) -> list[Fact]:
        """All facts; `current_only` keeps those true now (or at `as_of`)."""
        facts = self._facts_from_rows(self._q("SELECT * FROM facts ORDER BY created_at, id"))
        if current_only or as_of is not None:
            facts = [f for f in facts if f.truth_at(as_of) is True]
        return facts[:limit] if limit else facts

    def facts_superseding(self, fact_id: str) -> list[Fact]:
        """The facts that replaced `fact_id` (their `supersedes` names it)."""
        return self._facts_from_rows(self._q("SELECT * FROM facts WHERE supersedes=? ORDER BY created_at", (fact_id,)))

    def count_facts(self) -> dict[str, int]:
        facts = self.list_facts(current_only=False)
        cur = sum(1 for f in facts if f.is_current)
        return {"total": len(facts), "current": cur, "not_current": len(facts) - cur}

    def facts_by_subject(self, subjects: list[str], limit: int = 20) -> list[Fact]:
        """Facts whose subject or object names one of `subjects` (case-insensitive)."""
        subjects = [s.strip() for s in subjects if s and s.strip()]
        if not subjects:
            return []
        marks = ",".join("?" * len(subjects))
        low = [s.lower() for s in subjects]
        rows = self._q(
            f"""SELECT * FROM facts WHERE lower(subject) IN ({marks}) OR lower(object) IN ({marks})
                ORDER BY created_at DESC LIMIT ?""",
            [*low, *low, limit],
        )
        return self._facts_from_rows(rows)

    # ------------------------------------------------------------------ keys (slot lookups)
    def facts_by_key(
        self, *, relation: str | None = None, subject: str | None = None, obj: str | None = None,
        limit: int = 500,
    ) -> list[Fact]:
        """Facts with a key of this relation and subject and/or object (compared by
        `key_norm`), newest first. Truth is not filtered here: callers ask it at their time."""
        where, args = [], []
        if subject is not None:
            where.append("fact_keys.subject_norm=?")
            args.append(key_norm(subject))
        if obj is not None:
            where.append("fact_keys.object_norm=?")
            args.append(key_norm(obj))
        if relation is not None:
            where.append("fact_keys.relation=?")
            args.append(relation)
        if not where:
            raise ValueError("facts_by_key needs a relation, subject or object")
        rows = self._q(
            f"""SELECT DISTINCT facts.* FROM fact_keys JOIN facts ON facts.id = fact_keys.fact_id
                WHERE {" AND ".join(where)} ORDER BY facts.created_at DESC LIMIT ?""",
            [*args, limit],
        )
        return self._facts_from_rows(rows)

    def facts_mentioning(self, name: str, limit: int = 200) -> list[Fact]:
        """Facts whose text has `name` as a phrase (FTS5) or whose key names it."""
        words = re.findall(r"\w+", name.lower())
        if not words:
            return []
        phrase = '"' + " ".join(words) + '"'
        rows = self._q(
            """SELECT facts.* FROM facts_fts JOIN facts ON facts.rowid = facts_fts.rowid
               WHERE facts_fts MATCH ? ORDER BY facts.created_at DESC LIMIT ?""",
            (phrase, limit),
        )
        n = key_norm(name)
        rows += self._q(
            """SELECT DISTINCT facts.* FROM fact_keys JOIN facts ON facts.id = fact_keys.fact_id
               WHERE subject_norm=? OR object_norm=? LIMIT ?""",
            (n, n, limit),
        )
        seen: dict[str, sqlite3.Row] = {}
        for r in rows:
            seen.setdefault(r["id"], r)
        return self._facts_from_rows(list(seen.values()))

    def key_names(self) -> dict[str, int]:
        """Every capitalised subject and object the keys name ('Northwind Logistics'), with
        how many keys name it: the names a new document's short forms resolve to."""
        out: dict[str, int] = {}
        for r in self._q(
            """SELECT name, count(*) AS n FROM (SELECT subject AS name FROM fact_keys UNION ALL
               SELECT object AS name FROM fact_keys) WHERE name != '' GROUP BY name"""
        ):
            if r["name"][:1].isupper():
                out[r["name"]] = int(r["n"])
        return out

    def find_by_norm(self, text: str) -> Fact | None:
        rows = self._q("SELECT * FROM facts WHERE norm=?", (normalise_fact(text),))
        return self._facts_from_rows(rows)[0] if rows else None

    def search_fts(self, query: str, limit: int = 20) -> list[tuple[str, float]]:
        """BM25 over fact text (FTS5). Returns (fact_id, bm25) best first; lower bm25 is better."""
        terms = re.findall(r"\w+", query.lower())
        if not terms:
            return []
        match = " OR ".join(f'"{t}"' for t in terms)
        rows = self._q(
            """SELECT facts.id AS id, bm25(facts_fts) AS score FROM facts_fts
               JOIN facts ON facts.rowid = facts_fts.rowid
               WHERE facts_fts MATCH ? ORDER BY score LIMIT ?""",
            (match, limit),
        )
        return [(r["id"], r["score"]) for r in rows]

    def facts_changed_since(self, since: datetime | None) -> list[Fact]:
        """Facts with a live history entry recorded after `since` (None = all facts)."""
        if since is None:
            return self.list_facts(current_only=False)
        rows = self._q(
            """SELECT DISTINCT facts.* FROM facts JOIN fact_history h ON h.fact_id = facts.id
               WHERE h.recorded_at > ? AND h.reverted = 0""",
            (fmt_time(since),),
        )
        return self._facts_from_rows(rows)

    # writes below must run inside a transaction (the ingest commit holds one)
    def insert_fact(
        self, c: sqlite3.Connection, text: str, subject: str = "", relation: str = "",
        obj: str = "", supersedes: str | None = None, keys: list[FactKey] | None = None,
    ) -> str:
        """Create the fact row if new; returns its id (same text ⇒ same id). `keys` are
        added to the fact's keys (a fact stated again keeps the keys it had)."""
        fid = fact_id_for(text)
        c.execute(
            """INSERT OR IGNORE INTO facts(id, text, norm, subject, relation, object, supersedes, created_at)
               VALUES (?,?,?,?,?,?,?,?)""",
            (fid, text.strip(), normalise_fact(text), subject, relation, obj, supersedes, fmt_time(utcnow())),
        )
        for k in keys or []:
            c.execute(
                """INSERT OR IGNORE INTO fact_keys(fact_id, subject, relation, object, subject_norm, object_norm,
                       negated, past, definite) VALUES (?,?,?,?,?,?,?,?,?)""",
                (fid, k.subject, k.relation, k.object, key_norm(k.subject), key_norm(k.object),
                 int(k.negated), int(k.past), int(k.definite)),
            )
        return fid

    def add_history(
        self, c: sqlite3.Connection, fact_id: str, time: datetime, truth: bool,
        doc_id: str | None, op: str, op_id: int | None,
    ) -> None:
        c.execute(
            """INSERT INTO fact_history(fact_id, time, truth, doc_id, op, op_id, recorded_at)
               VALUES (?,?,?,?,?,?,?)""",
            (fact_id, fmt_time(time), int(truth), doc_id, op, op_id, fmt_time(utcnow())),
        )
        c.execute("INSERT OR IGNORE INTO index_queue(fact_id) VALUES (?)", (fact_id,))

    # ------------------------------------------------------------------ operations & model calls
    def log_model_call(
        self, c: sqlite3.Connection | None, *, doc_id: str | None, step: str, model: str,
        prompt: str, output: str | None, error: str | None, prompt_tokens: int,
        completion_tokens: int, seconds: float,
    ) -> int:
        args = (
            doc_id, step, model, prompt, output, error, prompt_tokens, completion_tokens,
            seconds, fmt_time(utcnow()),
        )
        sql = """INSERT INTO model_calls(doc_id, step, model, prompt, output, error, prompt_tokens,
                     completion_tokens, seconds, time) VALUES (?,?,?,?,?,?,?,?,?,?)"""
        if c is not None:
            return int(c.execute(sql, args).lastrowid)
        with self.transaction() as c2:
            return int(c2.execute(sql, args).lastrowid)

    def log_operation(self, c: sqlite3.Connection, op: Operation) -> int:
        cur = c.execute(
            """INSERT INTO operations(doc_id, fact_id, op, before, after, time, model_io_ref, detail, actor)
               VALUES (?,?,?,?,?,?,?,?,?)""",
            (op.doc_id, op.fact_id, op.op, op.before, op.after, fmt_time(op.time), op.model_io_ref, op.detail,
             op.actor),
        )
        return int(cur.lastrowid)

    def log_action(self, actor: str | None, op: str, detail: str, doc_id: str | None = None) -> int:
        """Record a person's action that changes no fact (a retry, a connector edit, an adapter
        shipped) in the operations log, with the token name behind it."""
        with self.transaction() as c:
            return self.log_operation(c, Operation(doc_id, None, op, None, None, utcnow(), detail=detail[:2000],
                                                   actor=actor))

    def actions(self, limit: int = 100) -> list[Operation]:
        """The newest actions of people (operations with an actor), newest first."""
        rows = self._q("SELECT * FROM operations WHERE actor IS NOT NULL ORDER BY id DESC LIMIT ?", (limit,))
        return [_row_to_op(r) for r in rows]

    def operations(self, doc_id: str | None = None, limit: int = 1000) -> list[Operation]:
        sql = "SELECT * FROM operations"
        args: list[Any] = []
        if doc_id is not None:
            sql += " WHERE doc_id=?"
            args.append(doc_id)
        sql += " ORDER BY id LIMIT ?"
        args.append(limit)
        return [_row_to_op(r) for r in self._q(sql, args)]

    def model_call(self, call_id: int) -> dict[str, Any] | None:
        rows = self._q("SELECT * FROM model_calls WHERE id=?", (call_id,))
        return dict(rows[0]) if rows else None

    def model_calls(self, doc_id: str) -> list[dict[str, Any]]:
        return [dict(r) for r in self._q("SELECT * FROM model_calls WHERE doc_id=? ORDER BY id", (doc_id,))]

    def usage(self) -> dict[str, Any]:
        r = self._q(
            """SELECT count(*) AS calls, coalesce(sum(prompt_tokens),0) AS prompt_tokens,
                      coalesce(sum(completion_tokens),0) AS completion_tokens,
                      coalesce(sum(seconds),0) AS seconds FROM model_calls"""
        )[0]
        return dict(r)

    # ------------------------------------------------------------------ revert
    def revert_document(self, doc_id: str, actor: str | None = None) -> int:
        """Undo every change a document made: its history entries and operations are marked
        reverted (kept for the record), which restores each fact's previous truth.
        Returns the number of history entries reverted."""
        with self.transaction() as c:
            if not c.execute("SELECT 1 FROM documents WHERE id=?", (doc_id,)).fetchone():
                raise KeyError(doc_id)
            touched = [r[0] for r in c.execute(
                "SELECT DISTINCT fact_id FROM fact_history WHERE doc_id=? AND reverted=0", (doc_id,))]
            n = c.execute(
                "UPDATE fact_history SET reverted=1 WHERE doc_id=? AND reverted=0", (doc_id,)
            ).rowcount
            c.execute("UPDATE operations SET reverted=1 WHERE doc_id=? AND op != 'revert' AND actor IS NULL", (doc_id,))
            self.log_operation(
                c, Operation(doc_id=doc_id, fact_id=None, op="revert", before=None, after=None,
                             time=utcnow(), detail=f"{n} history entries on {len(touched)} facts reverted",
                             actor=actor),
            )
            c.execute("UPDATE documents SET status='reverted' WHERE id=?", (doc_id,))
            c.executemany("INSERT OR IGNORE INTO index_queue(fact_id) VALUES (?)", [(f,) for f in touched])
        return n

    # ------------------------------------------------------------------ index queue
    def pending_index(self, limit: int = 1000) -> list[str]:
        return [r[0] for r in self._q("SELECT fact_id FROM index_queue LIMIT ?", (limit,))]

    def clear_index_queue(self, fact_ids: list[str]) -> None:
        with self.transaction() as c:
            c.executemany("DELETE FROM index_queue WHERE fact_id=?", [(f,) for f in fact_ids])

    # ------------------------------------------------------------------ inbox & cursors
    def enqueue(self, c: sqlite3.Connection, doc: Document, connector: str | None) -> bool:
        """Add a document version to the inbox; False if this exact version was seen before."""
        payload = json.dumps(document_to_json(doc))
        cur = c.execute(
            """INSERT OR IGNORE INTO inbox(doc_id, content_hash, connector, payload, created_at)
               VALUES (?,?,?,?,?)""",
            (doc.id, doc.content_hash, connector, payload, fmt_time(utcnow())),
        )
        return cur.rowcount == 1

    def enqueue_batch(
        self, docs: list[Document], connector: str | None, cursor_state: dict | None = None
    ) -> int:
        """Write documents to the inbox and advance the connector cursor in ONE transaction."""
        with self.transaction() as c:
            n = sum(self.enqueue(c, d, connector) for d in docs)
            if connector is not None and cursor_state is not None:
                c.execute(
                    """INSERT INTO cursors(connector, state, updated_at) VALUES (?,?,?)
                       ON CONFLICT(connector) DO UPDATE SET state=excluded.state, updated_at=excluded.updated_at""",
                    (connector, json.dumps(cursor_state), fmt_time(utcnow())),
                )
        return n

    def cursor(self, connector: str) -> dict:
        rows = self._q("SELECT state FROM cursors WHERE connector=?", (connector,))
        return json.loads(rows[0]["state"]) if rows else {}

    def next_inbox_item(self, now: datetime | None = None) -> tuple[int, Document, int] | None:
        """Oldest queued (or failed and due for retry) item: (inbox id, document, attempts)."""
        now_s = fmt_time(now or utcnow())
        rows = self._q(
            """SELECT id, payload, attempts FROM inbox
               WHERE status='queued' OR (status='failed' AND next_attempt_at <= ?)
               ORDER BY id LIMIT 1""",
            (now_s,),
        )
        if not rows:
            return None
        r = rows[0]
        return int(r["id"]), document_from_json(json.loads(r["payload"])), int(r["attempts"])

    def next_inbox_item_by_time(self, now: datetime | None = None) -> tuple[int, Document, int] | None:
        """Like `next_inbox_item`, but the due item whose document is oldest (published, else
        read), so that documents from several connectors revise facts in the order things
        happened rather than the order the sources were polled. Ties go to the oldest item."""
        now_s = fmt_time(now or utcnow())
        rows = self._q(
            """SELECT id, payload, attempts FROM inbox
               WHERE status='queued' OR (status='failed' AND next_attempt_at <= ?)
               ORDER BY COALESCE(json_extract(payload, '$.published_at'), json_extract(payload, '$.read_at')), id
               LIMIT 1""",
            (now_s,),
        )
        if not rows:
            return None
        r = rows[0]
        return int(r["id"]), document_from_json(json.loads(r["payload"])), int(r["attempts"])

    def finish_inbox_item(
        self, c: sqlite3.Connection, item_id: int, ok: bool, error: str | None = None,
        retry_at: datetime | None = None,
    ) -> None:
        c.execute(
            """UPDATE inbox SET status=?, error=?, attempts=attempts+1, next_attempt_at=?, finished_at=?
               WHERE id=?""",
            ("done" if ok else "failed", error, fmt_time(retry_at), fmt_time(utcnow()), item_id),
        )

    def inbox_counts(self) -> dict[str, int]:
        return {r["status"]: r["n"] for r in self._q("SELECT status, count(*) AS n FROM inbox GROUP BY status")}

    def inbox_items(self, status: str, limit: int = 20) -> list[dict[str, Any]]:
        """Inbox rows in one status, newest first, without their payload (for `knowd status`)."""
        rows = self._q(
            """SELECT id, doc_id, connector, status, attempts, next_attempt_at, error, created_at, finished_at
               FROM inbox WHERE status=? ORDER BY id DESC LIMIT ?""",
            (status, limit),
        )
        return [dict(r) for r in rows]

    def inbox_item(self, item_id: int) -> dict[str, Any] | None:
        """One inbox row without its payload, or None."""
        rows = self._q(
            """SELECT id, doc_id, connector, status, attempts, next_attempt_at, error, created_at, finished_at
               FROM inbox WHERE id=?""",
            (item_id,),
        )
        return dict(rows[0]) if rows else None

    def retry_inbox_item(self, item_id: int) -> bool:
        """Queue a failed inbox item again now (the review console's Retry). Its attempts and
        last error are kept; the worker takes it like any queued item. False if the item
        does not exist or is not failed."""
        with self.transaction() as c:
            n = c.execute(
                "UPDATE inbox SET status='queued', next_attempt_at=NULL WHERE id=? AND status='failed'", (item_id,)
            ).rowcount
        return n == 1

    # ------------------------------------------------------------------ connector status
    _STATUS_COLUMNS = (
        "kind", "last_poll_at", "last_ok_at", "last_error", "last_error_at", "consecutive_failures",
        "polls", "items_seen", "items_new", "next_poll_at",
    )

    def set_connector_status(self, connector: str, **values: Any) -> None:
        """Upsert some columns of a connector's status row; datetimes are stored as UTC text."""
        bad = set(values) - set(self._STATUS_COLUMNS)
        if bad:
            raise ValueError(f"unknown connector status column(s): {sorted(bad)}")
        vals = {k: fmt_time(v) if isinstance(v, datetime) else v for k, v in values.items()}
        vals["updated_at"] = fmt_time(utcnow())
        cols = list(vals)
        sets = ", ".join(f"{k}=excluded.{k}" for k in cols)
        with self.transaction() as c:
            c.execute(
                f"""INSERT INTO connector_status(connector, {", ".join(cols)}) VALUES (?{", ?" * len(cols)})
                    ON CONFLICT(connector) DO UPDATE SET {sets}""",
                (connector, *vals.values()),
            )

    def connector_statuses(self) -> dict[str, dict[str, Any]]:
        """connector name -> its status row (times as datetimes)."""
        out: dict[str, dict[str, Any]] = {}
        for r in self._q("SELECT * FROM connector_status ORDER BY connector"):
            d = dict(r)
            for k in ("last_poll_at", "last_ok_at", "last_error_at", "next_poll_at", "updated_at"):
                d[k] = parse_time(d[k])
            out[d.pop("connector")] = d
        return out

    def meta_get(self, key: str) -> str | None:
        rows = self._q("SELECT value FROM meta WHERE key=?", (key,))
        return rows[0]["value"] if rows else None

    def meta_set(self, key: str, value: str) -> None:
        with self.transaction() as c:
            c.execute(
                "INSERT INTO meta(key, value) VALUES (?,?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                (key, value),
            )


def document_to_json(doc: Document) -> dict[str, Any]:
    d = asdict(doc)
    d["published_at"] = fmt_time(doc.published_at)
    d["read_at"] = fmt_time(doc.read_at)
    return d


def document_from_json(d: dict[str, Any]) -> Document:
    d = dict(d)
    for k in ("published_at", "read_at"):
        v = d.get(k)
        if isinstance(v, str):
            d[k] = _parse_any_time(v)
    if d.get("read_at") is None:
        d.pop("read_at", None)
    return Document(**d)


def _parse_any_time(s: str) -> datetime:
    try:
        return parse_time(s)  # type: ignore[return-value]
    except ValueError:
        t = datetime.fromisoformat(s.replace("Z", "+00:00"))
        return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def _row_to_op(r: sqlite3.Row) -> Operation:
    return Operation(
        id=r["id"], doc_id=r["doc_id"], fact_id=r["fact_id"], op=r["op"], before=r["before"], after=r["after"],
        time=parse_time(r["time"]), model_io_ref=r["model_io_ref"], detail=r["detail"],
        reverted=bool(r["reverted"]), actor=r["actor"],
    )


def _row_to_doc(r: sqlite3.Row) -> Document:
    return Document(
        id=r["id"], source=r["source"], url=r["url"], author=r["author"],
        published_at=parse_time(r["published_at"]), read_at=parse_time(r["read_at"]),
        title=r["title"], text=r["text"], meta=json.loads(r["meta"] or "{}"),
    )


def _chunks(xs: list, n: int) -> Iterator[list]:
    for i in range(0, len(xs), n):
        yield xs[i : i + n]

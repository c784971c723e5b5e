"""The bulk write path of imports: event rows straight to the driver, COPY on PostgreSQL.

Why not SQLAlchemy Core's `insert(...).values(dicts)`: per row it builds a dict, runs bind processors and
(for JSON) a serializer call, which cost more than the database's own work (profile in docs/benchmarks.md,
"Scale: bulk import"). Here rows are plain tuples (`EventRows`: EVENT_COLUMNS less the optional ones no event of
the batch has), already serialised:

- MariaDB: one `executemany` of `INSERT ... ON DUPLICATE KEY UPDATE id = id` (PyMySQL turns it into multi-row
  INSERTs) after the caller looked the batch's dedupe keys up.
- SQLite: one `executemany` of `INSERT ... ON CONFLICT DO NOTHING` (one prepared statement) without a look-up
  first: its row count, and if need be the table's last rows, say which were stored (`_sqlite_events`).
- PostgreSQL (batches of COPY_MIN_ROWS events or more; smaller ones as on MariaDB, with ON CONFLICT DO NOTHING):
  binary `COPY` straight into events inside a savepoint; a batch colliding with a stored event (same dedupe key
  or event_id) rolls back to it and goes through a temporary staging table (psycopg 3 `cursor.copy`) and ONE
  `INSERT ... SELECT ... ORDER BY pos ON CONFLICT DO NOTHING RETURNING dedupe_key`: the database skips the
  collisions and the keys returned say which rows were stored.

Everything runs on the caller's connection, inside its transaction: a failed batch rolls back whole.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shoprec.storage import tables as T

EVENT_COLUMNS = ("platform_id", "user_id", "item_id", "event_type", "value", "timestamp", "session_id", "context",
                 "text", "dedupe_key", "event_id")
"""The order of the values in an event row given to `insert_events` (context: JSON text or None)."""
OPTIONAL_COLUMNS = frozenset({"value", "session_id", "context", "text", "event_id"})
"""Columns left out of a batch's rows where every event of it has none (the database stores NULL): fewer values
for the driver to bind per row (docs/benchmarks.md, "Scale: bulk import")."""
EventRow = tuple[Any, ...]
STAGE = "shoprec_stage_events"
COPY_MIN_ROWS = 1000
CHUNK = 2000  # values per IN (...) list: below every driver's parameter limit
SQLITE_CACHE_KIB = 524_288  # page cache of a bulk-loading SQLite connection (the default 2 MiB thrashes on
# the events' indexes once they outgrow it). 512 MiB holds the pages a transaction of 500,000 events dirties in
# the two indexes in random order up to ~10M events; a smaller cache spills them to the WAL before the commit
SQLITE_CHECKPOINT_PAGES = 10_000  # WAL pages (~40 MB) between a bulk-loading connection's checkpoints


@dataclass
class EventBatch:
    """Events as columns (what `PlatformRepo.add_event_batch` writes): the columnar import builds one without
    a record per event; `from_records` turns records into one, so both paths share one writer."""

    user_id: list[str] = field(default_factory=list)
    item_id: list[str] = field(default_factory=list)
    event_type: list[str] = field(default_factory=list)
    timestamp: list[float] = field(default_factory=list)
    value: list[float | None] = field(default_factory=list)
    session_id: list[str | None] = field(default_factory=list)
    context: list[dict[str, Any] | None] = field(default_factory=list)
    text: list[str | None] = field(default_factory=list)
    event_id: list[str | None] = field(default_factory=list)
    dedupe_key: list[str] = field(default_factory=list)  # `dedupe_keys(self)` computed ahead (the import's reader
    # process), or empty: then the writer computes them. Whoever changes a column the key hashes empties it

    @classmethod
    def from_records(cls, events: Sequence[Any]) -> EventBatch:
        """From EventRecords (shoprec.data.records)."""
        return cls([e.user_id for e in events], [e.item_id for e in events], [str(e.event_type) for e in events],
                   [e.timestamp for e in events], [e.value for e in events], [e.session_id for e in events],
                   [e.context for e in events], [e.text for e in events], [e.event_id for e in events])

    def __len__(self) -> int:
        return len(self.user_id)

    def part(self, start: int, stop: int) -> EventBatch:
        return EventBatch(*(getattr(self, f)[start:stop] for f in self.__dataclass_fields__))


@dataclass
class EventRows:
    """Event rows for `insert_events`: `columns` (EVENT_COLUMNS in order, less optional ones absent from every
    row) and the rows' values in that order."""

    columns: tuple[str, ...]
    rows: list[EventRow]

    @classmethod
    def of(cls, values: dict[str, Sequence[Any]]) -> EventRows:
        """From columns of values (every name of EVENT_COLUMNS); an optional column of Nones only is left out."""
        columns = tuple(c for c in EVENT_COLUMNS
                        if c not in OPTIONAL_COLUMNS or values[c].count(None) != len(values[c]))
        return cls(columns, list(zip(*(values[c] for c in columns), strict=True)))

    def __len__(self) -> int:
        return len(self.rows)

    def keys(self) -> set[str]:
        """The rows' dedupe keys."""
        at = self.columns.index("dedupe_key")
        return {str(row[at]) for row in self.rows}


def dedupe_keys(batch: EventBatch) -> list[str]:
    """The dedupe key of every event of `batch`: the same text as `shoprec.storage.repo.dedupe_key` gives for
    one event (BLAKE2b-128 of user, item, type, repr(timestamp), repr(value) or "", session or "", joined by
    \\x1f), a column at a time instead of a call per event."""
    blake = hashlib.blake2b
    times = map(repr, map(float, batch.timestamp))
    values = ["" if v is None else repr(float(v)) for v in batch.value]
    sessions = [s or "" for s in batch.session_id]
    return [blake("\x1f".join(parts).encode(), digest_size=16).hexdigest()
            for parts in zip(batch.user_id, batch.item_id, batch.event_type, times, values, sessions, strict=True)]


def dialect(conn: Connection) -> str:
    return conn.dialect.name


def _names(conn: Connection, names: Sequence[str]) -> str:
    """Column names quoted for the dialect (`timestamp` and `text` are keywords in some)."""
    quote = conn.dialect.identifier_preparer.quote
    return ", ".join(quote(n) for n in names)


def _marks(conn: Connection, n: int) -> str:
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    return ", ".join([mark] * n)


def prepare(conn: Connection) -> None:
    """Settings of a bulk-loading connection: a larger SQLite page cache, and the WAL copied back into the
    database file every SQLITE_CHECKPOINT_PAGES pages rather than SQLite's 1,000 (fewer checkpoints, each with
    its fsync, while batches of 50,000 events each write thousands of pages). Durability settings are left as
    they are: a committed batch is in the WAL either way, so a killed import loses none."""
    if dialect(conn) == "sqlite":
        conn.exec_driver_sql(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
        conn.exec_driver_sql(f"PRAGMA wal_autocheckpoint={SQLITE_CHECKPOINT_PAGES}")


def release(conn: Connection) -> None:
    """Undo `prepare` on a connection going back to the pool: SQLite's default page cache and checkpoints, and
    the cache's memory handed back (up to SQLITE_CACHE_KIB after a large import)."""
    if dialect(conn) == "sqlite":
        conn.exec_driver_sql("PRAGMA cache_size=-2000")
        conn.exec_driver_sql("PRAGMA wal_autocheckpoint=1000")
        conn.exec_driver_sql("PRAGMA shrink_memory")


def existing(conn: Connection, platform_id: int, column: str, values: Collection[str]) -> set[str]:
    """Which of `values` of events.`column` (event_id) are stored for the platform."""
    return {str(v) for (v,) in _lookup(conn, T.events.name, platform_id, column, [column], values)}


def stored_keys(conn: Connection, platform_id: int, events: Collection[tuple[float, str]]) -> set[str]:
    """The dedupe keys of the `events`, given as (timestamp, dedupe key), that are stored for the platform. Each
    is a search of the unique index (platform_id, timestamp, dedupe_key) (migration 0014): PostgreSQL joins the
    pairs as two array parameters; SQLite as a VALUES list read first (CROSS JOIN: the index is searched once per
    pair, never scanned); MariaDB as a row IN list (which it turns into such a join itself)."""
    ordered = sorted({(float(ts), key) for ts, key in events})
    if not ordered:
        return set()
    table, ts = T.events.name, _names(conn, ["timestamp"])
    if dialect(conn) == "postgresql":
        rows = conn.exec_driver_sql(
            f"SELECT e.dedupe_key FROM unnest(%s::float8[], %s::text[]) AS k(ts, dk) JOIN {table} AS e "
            f"ON e.platform_id = %s AND e.{ts} = k.ts AND e.dedupe_key = k.dk",
            ([t for t, _ in ordered], [k for _, k in ordered], platform_id))
        return {str(k) for (k,) in rows}
    found: set[str] = set()
    for start in range(0, len(ordered), CHUNK):
        part = ordered[start:start + CHUNK]
        pairs = ", ".join([f"({_marks(conn, 2)})"] * len(part))
        flat = [v for pair in part for v in pair]
        if dialect(conn) == "sqlite":
            sql = (f"SELECT e.dedupe_key FROM (VALUES {pairs}) AS k CROSS JOIN {table} AS e "
                   f"WHERE e.platform_id = ? AND e.{ts} = k.column1 AND e.dedupe_key = k.column2")
            params = (*flat, platform_id)
        else:
            sql = f"SELECT dedupe_key FROM {table} WHERE platform_id = %s AND ({ts}, dedupe_key) IN ({pairs})"
            params = (platform_id, *flat)
        found.update(str(k) for (k,) in conn.exec_driver_sql(sql, params))
    return found


def keys_of(conn: Connection, table: str, platform_id: int, external_ids: Collection[str]) -> dict[str, int]:
    """external id -> key of the platform's rows of `table` (users or items) among `external_ids`."""
    rows = _lookup(conn, table, platform_id, "external_id", ["external_id", "id"], external_ids)
    return {str(ext): int(key) for ext, key in rows}


def _lookup(conn: Connection, table: str, platform_id: int, column: str, select: list[str],
            values: Collection[str]) -> Iterator[Any]:
    """The platform's rows of `table` whose `column` is among `values` (columns `select`). PostgreSQL: one
    statement with the values as one array parameter (`= ANY(%s)`: no query text of thousands of placeholders
    for the driver to parse); elsewhere driver-level `IN` lists of CHUNK values."""
    ordered = sorted(set(values))
    if not ordered:
        return
    names, where = _names(conn, select), _names(conn, [column])
    if dialect(conn) == "postgresql":
        yield from conn.exec_driver_sql(f"SELECT {names} FROM {table} WHERE platform_id = %s AND {where} = ANY(%s)",
                                        (platform_id, ordered))
        return
    for start in range(0, len(ordered), CHUNK):
        part = ordered[start:start + CHUNK]
        sql = (f"SELECT {names} FROM {table} WHERE platform_id = {_marks(conn, 1)} "
               f"AND {where} IN ({_marks(conn, len(part))})")
        yield from conn.exec_driver_sql(sql, (platform_id, *part))


def uses_copy(conn: Connection, n_rows: int) -> bool:
    """Whether `insert_events` of `n_rows` rows goes through COPY (PostgreSQL, from COPY_MIN_ROWS rows: a REST
    request of a few events keeps the plain INSERT, without a staging table)."""
    return dialect(conn) == "postgresql" and n_rows >= COPY_MIN_ROWS


def reports_stored(conn: Connection, n_rows: int) -> bool:
    """Whether `insert_events(conn, rows, report=True)` says which of `n_rows` rows it stored, so that the caller
    need not look the dedupe keys up before: COPY on PostgreSQL, and SQLite (see `_sqlite_events`) unless a
    recent batch on this connection collided (a re-import: there looking the keys up first is cheaper than
    INSERTs that collide; the next RETRY batches do, then the INSERT is tried again)."""
    if uses_copy(conn, n_rows):
        return True
    if dialect(conn) != "sqlite":
        return False
    skip = int(conn.info.get(LOOKUP_FIRST, 0))
    if skip:
        conn.info[LOOKUP_FIRST] = skip - 1
        return False
    return True


def insert_events(conn: Connection, rows: EventRows, report: bool = False) -> set[str] | None:
    """Insert event rows skipping those that collide with a stored event. `report` (see `reports_stored`):
    returns the dedupe keys of the rows stored; otherwise None (the caller looked the stored keys up before)."""
    if report and dialect(conn) == "postgresql":
        return _copy_events(conn, rows) if rows else set()
    if not rows:
        return None if not report else set()
    if report and dialect(conn) == "sqlite":
        return _sqlite_events(conn, rows)
    cols = _names(conn, rows.columns)
    values = _marks(conn, len(rows.columns))
    if dialect(conn) in ("sqlite", "postgresql"):
        sql = f"INSERT INTO {T.events.name} ({cols}) VALUES ({values}) ON CONFLICT DO NOTHING"
    else:
        sql = f"INSERT INTO {T.events.name} ({cols}) VALUES ({values}) ON DUPLICATE KEY UPDATE id = id"
    conn.exec_driver_sql(sql, rows.rows)
    return None


RETRY = 8  # batches that take the collision-proof path after one collided (see reports_stored, _copy_events)
LOOKUP_FIRST = "shoprec_lookup_first"  # Connection.info keys: batches left to do so on this connection
COPY_STAGED = "shoprec_copy_staged"


def _sqlite_events(conn: Connection, rows: EventRows) -> set[str]:
    """SQLite: INSERT ... ON CONFLICT DO NOTHING without looking the keys up first. The row count says whether
    every row was stored (the usual case of an import) or none (a re-import); otherwise the rows stored are the
    table's last `rowcount` by id: this transaction holds SQLite's one write lock from its INSERT on, and each
    new row's id is the largest plus one."""
    cols = _names(conn, rows.columns)
    sql = (f"INSERT INTO {T.events.name} ({cols}) VALUES ({_marks(conn, len(rows.columns))}) "
           "ON CONFLICT DO NOTHING")
    n = conn.exec_driver_sql(sql, rows.rows).rowcount
    if n == len(rows):
        return rows.keys()
    conn.info[LOOKUP_FIRST] = RETRY
    if n <= 0:
        return set()
    found = conn.exec_driver_sql(f"SELECT dedupe_key FROM {T.events.name} ORDER BY id DESC LIMIT ?", (n,))
    return {str(k) for (k,) in found}


def _copy_events(conn: Connection, rows: EventRows) -> set[str]:
    """PostgreSQL: COPY straight into events (in a savepoint) while batches do not collide with stored events;
    when one does (a re-import), that batch and the next RETRY on this connection use the staging table."""
    skip = int(conn.info.get(COPY_STAGED, 0))
    if skip == 0:
        try:
            with conn.begin_nested():
                _copy(conn, T.events.name, rows, numbered=False)
            return rows.keys()
        except sa.exc.DBAPIError as exc:
            if not _is_unique_violation(exc.orig):
                raise
        conn.info[COPY_STAGED] = RETRY
    else:
        conn.info[COPY_STAGED] = skip - 1
    return _staged_events(conn, rows)


COPY_TYPES = dict(zip(EVENT_COLUMNS, ("int4", "int4", "int4", "text", "float8", "float8", "text", "text", "text",
                                      "text", "text"), strict=True))
"""The binary COPY types of EVENT_COLUMNS (text for every string column: the server reads the bytes with the
column's own input, so the JSON context arrives as its JSON text)."""


def _copy(conn: Connection, table: str, rows: EventRows, numbered: bool) -> None:
    """Binary COPY of rows (with their position first, as `pos`, when `numbered`) into `table`: the numbers
    travel as their 4 and 8 bytes, neither printed by the client nor parsed by the server."""
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    types = [COPY_TYPES[c] for c in rows.columns]
    names = _names(conn, rows.columns)
    statement = f"COPY {table} ({'pos, ' if numbered else ''}{names}) FROM STDIN (FORMAT BINARY)"
    try:
        with cursor.copy(statement) as copy:
            copy.set_types(["int4", *types] if numbered else types)
            if numbered:
                for pos, row in enumerate(rows.rows):
                    copy.write_row((pos, *row))
            else:
                for row in rows.rows:
                    copy.write_row(row)
    except Exception as exc:  # a driver error: the same wrapping as SQLAlchemy's own statements
        if not _is_driver_error(exc):
            raise
        raise sa.exc.DBAPIError(statement, None, exc) from exc
    finally:
        cursor.close()


def _staged_events(conn: Connection, rows: EventRows) -> set[str]:
    """COPY into the session's staging table (the columns left out of `rows` stay NULL), then one
    INSERT ... SELECT that skips collisions."""
    cols = _names(conn, EVENT_COLUMNS)
    conn.exec_driver_sql(
        f"CREATE TEMP TABLE IF NOT EXISTS {STAGE} (pos int4, "
        + ", ".join(f'"{c}" {COPY_TYPES[c]}' for c in EVENT_COLUMNS) + ") ON COMMIT DELETE ROWS")
    _copy(conn, STAGE, rows, numbered=True)
    select = ", ".join('"context"::json' if c == "context" else f'"{c}"' for c in EVENT_COLUMNS)
    result = conn.exec_driver_sql(
        f"INSERT INTO {T.events.name} ({cols}) SELECT {select} FROM {STAGE} ORDER BY pos "
        "ON CONFLICT DO NOTHING RETURNING dedupe_key")
    stored = {str(k) for (k,) in result}
    conn.exec_driver_sql(f"TRUNCATE {STAGE}")  # the next batch of this transaction starts empty
    return stored


def _is_unique_violation(exc: BaseException | None) -> bool:
    return getattr(exc, "sqlstate", None) == "23505"


def _is_driver_error(exc: BaseException) -> bool:
    try:
        import psycopg
    except ImportError:  # pragma: no cover - PostgreSQL URLs need psycopg
        return False
    return isinstance(exc, psycopg.Error)


def event_chunks(conn: Connection, platform_id: int, event_types: Collection[str] | None = None,
                 chunk: int = 200_000) -> Iterator[list[tuple[Any, ...]]]:
    """(user key, item key, event type, value, timestamp) of the platform's events in insertion order, in
    lists of at most `chunk` plain driver tuples: the snapshot's read (no per-row Result objects; streamed
    from the server through a server-side cursor where the driver has one, so memory holds one chunk)."""
    cols = _names(conn, ["user_id", "item_id", "event_type", "value", "timestamp"])
    # SQLite: `+platform_id` keeps the planner off the (platform_id, timestamp, dedupe_key) index, so it reads the table
    # in id order instead of sorting every row by id afterwards
    scope = "+platform_id" if dialect(conn) == "sqlite" else "platform_id"
    sql = f"SELECT {cols} FROM {T.events.name} WHERE {scope} = {_marks(conn, 1)}"
    params: list[Any] = [platform_id]
    if event_types is not None:
        types = sorted(event_types)
        if not types:
            return
        sql += f" AND event_type IN ({_marks(conn, len(types))})"
        params += types
    sql += " ORDER BY id"
    raw = conn.connection.driver_connection
    name = dialect(conn)
    if name == "postgresql":
        cursor = raw.cursor(name="shoprec_snapshot")  # type: ignore[union-attr]
    elif name in ("mysql", "mariadb"):
        import pymysql.cursors

        cursor = raw.cursor(pymysql.cursors.SSCursor)  # type: ignore[union-attr]
    else:
        cursor = raw.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(sql, params)
        while True:
            rows = cursor.fetchmany(chunk)
            if not rows:
                return
            yield rows
    finally:
        cursor.close()


PG_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
PG_ROW = np.dtype([("n", ">i2"), ("lu", ">i4"), ("user", ">i4"), ("li", ">i4"), ("item", ">i4"), ("lt", ">i4"),
                   ("type", ">i2"), ("lv", ">i4"), ("value", ">f8"), ("ls", ">i4"), ("ts", ">f8")])


def copy_event_arrays(conn: Connection, platform_id: int, codes: dict[str, int],
                      event_types: Collection[str] | None = None,
                      chunk: int = 1_000_000) -> Iterator[dict[str, np.ndarray]]:
    """PostgreSQL: the snapshot's event columns through `COPY ... TO STDOUT (FORMAT binary)` of fixed-width fields
    (int4 keys, the type as its int2 code, value NaN when NULL, float8 time), parsed by numpy without a Python
    object per row. Yields chunks of {user_key, item_key, event_type, value, timestamp}; a stored type missing
    from `codes` comes back as -1 (the caller then takes the row path, which names it)."""
    cases = " ".join(f"WHEN '{name}' THEN {code}" for name, code in codes.items())
    where = f"platform_id = {int(platform_id)}"
    if event_types is not None:
        where += " AND event_type IN (" + ", ".join(f"'{t}'" for t in sorted(event_types) if t in codes) + ")" \
            if any(t in codes for t in event_types) else " AND false"
    query = (f"SELECT user_id, item_id, (CASE event_type {cases} ELSE -1 END)::int2, "
             f"coalesce(value, 'NaN'::float8), {_names(conn, ['timestamp'])} FROM {T.events.name} "
             f"WHERE {where} ORDER BY id")
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    buffer = bytearray()
    header = True
    try:
        with cursor.copy(f"COPY ({query}) TO STDOUT (FORMAT binary)") as copy:
            for data in copy:
                buffer += data
                if header and len(buffer) >= 19:
                    if bytes(buffer[:11]) != PG_SIGNATURE:  # pragma: no cover - the server's format
                        raise ValueError("unexpected COPY binary header")
                    skip = 19 + int.from_bytes(buffer[15:19], "big")
                    del buffer[:skip]
                    header = False
                if not header and len(buffer) >= chunk * PG_ROW.itemsize:
                    yield _pg_rows(buffer, len(buffer) // PG_ROW.itemsize)
        if len(buffer) >= PG_ROW.itemsize:
            yield _pg_rows(buffer, len(buffer) // PG_ROW.itemsize)
    finally:
        cursor.close()


def _pg_rows(buffer: bytearray, n: int) -> dict[str, np.ndarray]:
    """Parse (and remove) the first n fixed-width binary COPY tuples of `buffer`."""
    rows = np.frombuffer(bytes(buffer[:n * PG_ROW.itemsize]), dtype=PG_ROW, count=n)
    del buffer[:n * PG_ROW.itemsize]
    return {"user_key": rows["user"].astype(np.int64), "item_key": rows["item"].astype(np.int64),
            "event_type": rows["type"].astype(np.int8), "value": rows["value"].astype(np.float32),
            "timestamp": np.floor(rows["ts"]).astype(np.int64)}

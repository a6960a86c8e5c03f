//! Herald's schema on PostgreSQL, as numbered migrations applied in order at start.
//!
//! Every instance runs [`migrate`] when it starts; a session-level advisory lock makes the
//! instances that start together take turns, so each migration runs once and none sees a
//! half-made schema. A migration is never edited once released: changes are new migrations.

use postgres::Client;

use crate::clock;
use crate::store::{StoreError, StoreResult};

/// The advisory lock key the migrations are run under ("herald" in ASCII).
const MIGRATION_LOCK: i64 = 0x6865_7261_6c64;

const MIGRATIONS: &[&str] = &[
    // 1: every feature's tables, the event log and presence.
    "
CREATE TABLE herald_identity (
    one      boolean PRIMARY KEY DEFAULT true CHECK (one),
    identity bigint NOT NULL
);
-- The database's identity is the epoch of every cursor: a cursor from another database (or
-- one that was recreated) leads to a resync, never to a wrong replay.
INSERT INTO herald_identity (identity) VALUES (floor(random() * 281474976710655)::bigint + 1);

CREATE TABLE clients (
    client_id  uuid PRIMARY KEY,
    session_id uuid NOT NULL,
    last_seen  bigint NOT NULL
);
CREATE INDEX clients_last_seen ON clients (last_seen);
-- Keys every instance must share (the one tab ids are signed with).
CREATE TABLE secrets (
    name  text PRIMARY KEY,
    value bytea NOT NULL
);

CREATE TABLE board (
    id      integer PRIMARY KEY CHECK (id = 1),
    message text NOT NULL,
    set_at  bigint NOT NULL
);

CREATE TABLE notifications (
    id         bigserial PRIMARY KEY,
    kind       text NOT NULL,
    title      text NOT NULL,
    body       text NOT NULL,
    created_at bigint NOT NULL
);

-- `seq` orders offers newest first; `id` is the public id, which a client may choose.
CREATE TABLE offers (
    seq         bigserial PRIMARY KEY,
    id          bigint NOT NULL UNIQUE,
    description text NOT NULL,
    value_cents bigint NOT NULL CHECK (value_cents >= 0),
    created_at  bigint NOT NULL,
    updated_at  bigint NOT NULL
);
-- The highest id ever stored, so a server-assigned id is never one a deleted offer had.
CREATE TABLE offer_ids (
    one  integer PRIMARY KEY CHECK (one = 1),
    high bigint NOT NULL
);

-- `runner` is the instance that owns the job; `lease_until` (Unix ms) how long that holds
-- without renewal: past it, another instance takes the job over.
CREATE TABLE jobs (
    id          bigserial PRIMARY KEY,
    state       text NOT NULL,
    total       integer NOT NULL,
    moved       integer NOT NULL,
    interval_ms integer NOT NULL,
    fail_at     integer,
    error       text,
    runner      bigint NOT NULL,
    lease_until bigint NOT NULL DEFAULT 0,
    created_at  bigint NOT NULL,
    updated_at  bigint NOT NULL
);
CREATE INDEX jobs_state ON jobs (state, id);

-- `instance` is the instance running the import: its upload is on that instance's connection,
-- so when the instance is gone the import is interrupted.
CREATE TABLE imports (
    id          bigserial PRIMARY KEY,
    client_id   uuid NOT NULL,
    instance    bigint NOT NULL,
    file_name   text NOT NULL,
    header      text NOT NULL,
    status      text NOT NULL,
    live_rows   bigint NOT NULL,
    total_bytes bigint,
    bytes       bigint NOT NULL,
    rows        bigint NOT NULL,
    rejected    bigint NOT NULL,
    started_at  bigint NOT NULL,
    finished_at bigint,
    message     text
);
CREATE INDEX imports_client ON imports (client_id, id);
CREATE TABLE import_rows (
    import_id bigint NOT NULL,
    n         bigint NOT NULL,
    cells     text NOT NULL,
    PRIMARY KEY (import_id, n)
);
CREATE TABLE import_rejects (
    import_id bigint NOT NULL,
    row       bigint NOT NULL,
    reason    text NOT NULL,
    PRIMARY KEY (import_id, row)
);

-- The event log (the outbox): what each change announces, stored in the change's own
-- transaction and numbered in commit order (see outbox.rs). `audience` is NULL for every tab,
-- or the one tab a private message is for. `html` is the page's rendering; `topic`, `event`
-- and `json` are the JSON stream's rendering of the same change, when it has one.
CREATE TABLE events (
    seq        bigint PRIMARY KEY,
    audience   uuid,
    html       text,
    topic      text,
    event      text,
    json       text,
    created_at bigint NOT NULL
);
CREATE SEQUENCE events_seq OWNED BY events.seq;
CREATE INDEX events_audience ON events (audience, seq) WHERE audience IS NOT NULL;

-- Open streams per instance, for the page's \"N tabs open\"; rows not refreshed are ignored.
CREATE TABLE presence (
    instance bigint PRIMARY KEY,
    streams  bigint NOT NULL,
    seen_at  bigint NOT NULL
);
",
];

/// Brings the schema up to date and returns the database's identity.
pub fn migrate(client: &mut Client) -> StoreResult<i64> {
    client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])?;
    let migrated = apply(client);
    let unlocked = client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]);
    let identity = migrated?;
    unlocked?;
    Ok(identity)
}

fn apply(client: &mut Client) -> StoreResult<i64> {
    client.batch_execute(
        "CREATE TABLE IF NOT EXISTS herald_migrations (
             version    integer PRIMARY KEY,
             applied_at bigint NOT NULL
         )",
    )?;
    let done: i32 = client
        .query_one(
            "SELECT coalesce(max(version), 0) FROM herald_migrations",
            &[],
        )?
        .get(0);
    let known = MIGRATIONS.len() as i32;
    if done > known {
        return Err(StoreError::new(format!(
            "the database's schema is at version {done}, newer than this Herald knows ({known}): \
             run a newer Herald"
        )));
    }
    for (version, sql) in (1..).zip(MIGRATIONS).skip(done as usize) {
        let mut tx = client.transaction()?;
        tx.batch_execute(sql)?;
        tx.execute(
            "INSERT INTO herald_migrations (version, applied_at) VALUES ($1, $2)",
            &[&version, &clock::now_ms()],
        )?;
        tx.commit()?;
        tracing::info!(version, "migrated the database schema");
    }
    Ok(client
        .query_one("SELECT identity FROM herald_identity", &[])?
        .get(0))
}

-- Where PostgreSQL's time per stored event goes (docs/benchmarks.md, "Scale: bulk import", sixth round): the server
-- alone inserting 1M rows shaped like shoprec's events (INSERT ... SELECT from generate_series, no client, no
-- parsing) into (1) a table like `events`, with its three foreign keys and four indexes, (2) the same without the
-- foreign keys, (3) a bare heap. A diagnostic, not a target check: it prints psql's timings and writes no JSON.
--     psql -h 127.0.0.1 -U postgres -d test -f benchmarks/pg_insert_cost.sql | grep -A1 "INSERT 0 1000000"
-- It works in a scratch schema `fkx`, dropped at the end.
\timing on
DROP SCHEMA IF EXISTS fkx CASCADE; CREATE SCHEMA fkx; SET search_path = fkx;
CREATE TABLE platforms (id serial PRIMARY KEY, name text);
CREATE TABLE users (id serial PRIMARY KEY, platform_id int REFERENCES platforms(id), external_id text);
CREATE TABLE items (id serial PRIMARY KEY, platform_id int REFERENCES platforms(id), external_id text);
INSERT INTO platforms (name) VALUES ('p');
INSERT INTO users (platform_id, external_id) SELECT 1, 'u' || x FROM generate_series(1, 50000) x;
INSERT INTO items (platform_id, external_id) SELECT 1, 'i' || x FROM generate_series(1, 11000) x;
CREATE TABLE ev_fk (id bigserial PRIMARY KEY, platform_id int NOT NULL REFERENCES platforms(id), user_id int NOT NULL REFERENCES users(id) ON DELETE CASCADE, item_id int NOT NULL REFERENCES items(id) ON DELETE CASCADE, event_type varchar(32) NOT NULL, value double precision, timestamp double precision NOT NULL, session_id varchar(256), context json, text text, dedupe_key varchar(32) NOT NULL, event_id varchar(128), UNIQUE (platform_id, event_id), UNIQUE (platform_id, timestamp, dedupe_key));
CREATE INDEX ON ev_fk (item_id); CREATE INDEX ON ev_fk (user_id, timestamp);
CREATE TABLE ev_nofk (LIKE ev_fk INCLUDING ALL);
CREATE TABLE ev_bare (LIKE ev_fk INCLUDING DEFAULTS);
ANALYZE;
INSERT INTO ev_fk (platform_id, user_id, item_id, event_type, value, timestamp, dedupe_key) SELECT 1, (1 + (x * 7919) % 50000)::int, (1 + (x * 104729) % 11000)::int, 'view', NULL, 1600000000 + x, md5(x::text) FROM generate_series(1::bigint, 1000000) x;
INSERT INTO ev_nofk (platform_id, user_id, item_id, event_type, value, timestamp, dedupe_key) SELECT 1, (1 + (x * 7919) % 50000)::int, (1 + (x * 104729) % 11000)::int, 'view', NULL, 1600000000 + x, md5(x::text) FROM generate_series(1::bigint, 1000000) x;
INSERT INTO ev_bare (platform_id, user_id, item_id, event_type, value, timestamp, dedupe_key) SELECT 1, (1 + (x * 7919) % 50000)::int, (1 + (x * 104729) % 11000)::int, 'view', NULL, 1600000000 + x, md5(x::text) FROM generate_series(1::bigint, 1000000) x;
SELECT 1 + 0 AS plain_select_cost_follows;
SELECT count(*) FROM (SELECT 1, (1 + (x * 7919) % 50000)::int, (1 + (x * 104729) % 11000)::int, 'view', NULL, 1600000000 + x, md5(x::text) FROM generate_series(1::bigint, 1000000) x) s;
DROP SCHEMA fkx CASCADE;

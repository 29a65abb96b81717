-- 0006: order_lines loses its secondary index by record. No query reads order lines by
-- record (every reader asks by dept_no and order_no, the primary key's prefix), and keeping
-- the index cost each written line a second B-tree insert: about a fifth of MariaDB's CPU
-- per single-line order in the Redis route's write-back (docs/bench.md, 2026-12-01).
ALTER TABLE order_lines DROP INDEX IF EXISTS order_lines_by_record;

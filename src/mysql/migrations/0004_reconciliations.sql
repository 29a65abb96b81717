-- 0004: one row per drift the reconciliation found between Redis and the database of record
-- (after the outbox events not yet written back were accounted for), with both sides' values
-- before, what was changed, and the rule applied. An operator reads this table to see every
-- correction the scan made and every one it refused (repaired = 0: an alert).
CREATE TABLE IF NOT EXISTS reconciliations (
  id               BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  dept_no          VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  goods_no         VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  warehouse_no     VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  stock_status     VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  stock_type       VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  goods_level      VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  found_at         TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  db_on_hand       BIGINT NOT NULL,
  db_preallocated  BIGINT NOT NULL,
  db_shortage      BIGINT NOT NULL,
  redis_usable     BIGINT NOT NULL,
  redis_subtracted BIGINT NOT NULL,
  redis_ullage     BIGINT NOT NULL,
  pending_on_hand      BIGINT NOT NULL,
  pending_preallocated BIGINT NOT NULL,
  pending_shortage     BIGINT NOT NULL,
  repaired         BOOLEAN NOT NULL,
  repair           VARCHAR(512) NOT NULL,
  rule             VARCHAR(512) NOT NULL,
  INDEX reconciliations_by_record (dept_no, goods_no, warehouse_no, stock_status, stock_type,
                                   goods_level, found_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- 0001: the database of record for stock counters, adjust idempotency and compensation.
--
-- Key columns are ASCII with a binary collation: record fields are [A-Za-z0-9_.-], and
-- "SKU-a" and "SKU-A" are two different records, exactly as they are two keys in Redis.
-- Every statement can run again harmlessly (IF NOT EXISTS), because MariaDB commits DDL
-- one statement at a time and a crash may stop this file half-way.

-- One row per inventory record (the seed's record index). The CHECK keeps the quantities
-- non-negative even against a buggy writer.
CREATE TABLE IF NOT EXISTS stock (
  dept_no      VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  goods_no     VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  warehouse_no VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  stock_status VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  stock_type   VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  goods_level  VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  on_hand      BIGINT NOT NULL DEFAULT 0,
  preallocated BIGINT NOT NULL DEFAULT 0,
  shortage     BIGINT NOT NULL DEFAULT 0,
  created_at   TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  updated_at   TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  PRIMARY KEY (dept_no, goods_no, warehouse_no, stock_status, stock_type, goods_level),
  CONSTRAINT stock_quantities_non_negative
    CHECK (on_hand >= 0 AND preallocated >= 0 AND shortage >= 0)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- One row per adjust ref (unique per dept_no): pending once claimed, applied once on_hand
-- changed (in the same transaction as the change, so it happens at most once), complete
-- once the answer is known (a repeated ref replays it). body_digest is NULL when the
-- write-back applied a ref whose claim row was missing; the first claim adopts it.
CREATE TABLE IF NOT EXISTS stock_adjustments (
  dept_no      VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  ref          VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  goods_no     VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  warehouse_no VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  stock_status VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  stock_type   VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  goods_level  VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  body_digest  VARBINARY(512) NULL,
  state        ENUM('pending', 'applied', 'complete') NOT NULL DEFAULT 'pending',
  delta        BIGINT NULL,
  answer_on_hand      BIGINT NULL,
  answer_preallocated BIGINT NULL,
  answer_shortage     BIGINT NULL,
  created_at   TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  updated_at   TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  PRIMARY KEY (dept_no, ref)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- Reverse steps that failed inline, for the compensation worker, which picks pending tasks
-- whose next_attempt_at has passed (hence the index).
CREATE TABLE IF NOT EXISTS compensation_tasks (
  id           BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  kind         VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  dept_no      VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  goods_no     VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  warehouse_no VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  stock_status VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  stock_type   VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  goods_level  VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  order_no     VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  reason       VARCHAR(512) NOT NULL DEFAULT '',
  state        ENUM('pending', 'done', 'failed') NOT NULL DEFAULT 'pending',
  attempts     INT NOT NULL DEFAULT 0,
  next_attempt_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  created_at   TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  updated_at   TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  INDEX compensation_tasks_due (state, next_attempt_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

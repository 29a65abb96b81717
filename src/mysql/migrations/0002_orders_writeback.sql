-- 0002: what the write-back and the MySQL path share: orders, their lines, the applied
-- position of each outbox stream, and the route of each merchant.
--
-- Both paths write the same rows: the Redis path through the write-back (events of the
-- outbox), the MySQL path directly in its transactions. So a merchant can move between the
-- paths and every order can be answered from the database.

-- One row per order (or per rollback tombstone of an order never seen: status rolled_back,
-- no lines). lines_digest is the order-insensitive identity of the requested lines
-- (domain/order.h linesDigest), so the MySQL path can tell a replay from a conflict.
CREATE TABLE IF NOT EXISTS orders (
  dept_no      VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  order_no     VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  status       ENUM('allocated', 'shortage', 'rolled_back', 'deducted') NOT NULL,
  lines_digest MEDIUMTEXT CHARACTER SET ascii COLLATE ascii_bin NULL,
  created_at   TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  updated_at   TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  PRIMARY KEY (dept_no, order_no)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- One row per line of an order: what was requested and what the first answer held.
-- state: held (live hold), released (undone or rolled back), deducted.
CREATE TABLE IF NOT EXISTS order_lines (
  dept_no      VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  order_no     VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  goods_no     VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  warehouse_no VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  stock_status VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  stock_type   VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  goods_level  VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  line_no      SMALLINT NOT NULL,
  qty          BIGINT NOT NULL,
  allocated    BIGINT NOT NULL,
  shortage     BIGINT NOT NULL,
  state        ENUM('held', 'released', 'deducted') NOT NULL,
  updated_at   TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  PRIMARY KEY (dept_no, order_no, goods_no, warehouse_no, stock_status, stock_type, goods_level),
  INDEX order_lines_by_record (dept_no, goods_no, warehouse_no, stock_status, stock_type,
                               goods_level, state)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- The last outbox entry applied from each stream, committed in the same transaction as the
-- changes of the entries, so a crash at any point neither loses nor repeats one.
CREATE TABLE IF NOT EXISTS outbox_positions (
  stream         VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
  last_id        VARCHAR(40) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  events_applied BIGINT NOT NULL DEFAULT 0,
  updated_at     TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- The path that serves each merchant; a merchant without a row takes the default route.
CREATE TABLE IF NOT EXISTS merchant_routes (
  dept_no    VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
  route      ENUM('redis', 'mysql') NOT NULL,
  updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

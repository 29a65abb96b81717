-- 0007: orders whose lines the write-back saw held before their answer. A multi-line order's
-- claim stays pending while its lines are held, and a call that ends without answering (its
-- allotd killed, Redis and MariaDB failing at once) leaves it so, holding its stock, with
-- nobody left to release it. The write-back adds a row for every order of a hold that is not
-- a fused single-line order (dated by the latest such hold) and deletes it when it applies the
-- order's answer; the pending-order scan (compensation's third stage,
-- mysql/pending_order_scan.cc) turns the rows still there past the claim's lease into undo
-- tasks for the compensation worker.
CREATE TABLE IF NOT EXISTS pending_orders (
  dept_no  VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  order_no VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  seen_at  TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (dept_no, order_no),
  INDEX pending_orders_by_age (seen_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- 0009: the fence between a route switch and the MySQL path's calls of other processes.
-- Every writing transaction of the MySQL path first takes a shared lock on its merchant's row
-- here (and on its merchant_routes row, when there is one) and checks that the merchant is on
-- the MySQL path; every change of a route first takes the row exclusively. So a switch waits
-- for the MySQL transactions already running for the merchant, on any allotd, and every later
-- one sees the merchant switching and answers 503. The row exists for a merchant without a
-- merchant_routes row too (one on the default route), which a lock on merchant_routes alone
-- could not fence: READ COMMITTED takes no lock on a row that is not there.
CREATE TABLE IF NOT EXISTS merchant_fences (
  dept_no VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
  epoch   BIGINT NOT NULL DEFAULT 0
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

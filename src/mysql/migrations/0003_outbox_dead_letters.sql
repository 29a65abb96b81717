-- 0003: outbox events the write-back could not apply (malformed, or refused by a CHECK or by
-- the ledger). Recording them, in the transaction that moves the stream's position past them,
-- keeps one bad event from blocking its stream forever while losing nothing: an operator
-- reads them here (and the write-back's dead_lettered counter says they exist).
CREATE TABLE IF NOT EXISTS outbox_dead_letters (
  stream     VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  event_id   VARCHAR(40) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  fields     MEDIUMTEXT NOT NULL,
  reason     VARCHAR(512) NOT NULL,
  created_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (stream, event_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

// The move of orders kept in the layout before buckets (a hash per order, ord:{dept|order_no})
// to the bucketed layout (ord:{dept|b<n>}:<order_no>, docs/design.md "Key layout"). allotd
// runs it at start-up, before it serves a call: an order the new scripts could not find would
// be answered as unknown (a rollback would leave its stock held). Every older allotd must be
// stopped first, since it would go on writing the old keys.
#pragma once

#include <cstddef>

#include "core/result.h"
#include "redis/client.h"
#include "redis/redis_stock_store.h"
#include "workers/write_back.h"

namespace allot::workers {

struct OrderLayoutMove {
  bool done_before = false;  // the marker said so: nothing was scanned
  std::size_t moved = 0;     // orders written in the new layout and their old keys deleted
};

// SCANs every master for old order keys and moves them, 500 at a time in three pipelined
// round trips (RedisStockStore::moveLegacyOrders), then sets the marker key, so later starts
// skip the scan. Safe to run again after a failure or by two processes at once: an order
// already in the new layout is kept as it is.
[[nodiscard]] Result<OrderLayoutMove> moveOrdersToBuckets(redis::Client& client, WriteBack& scanner,
                                                          redis::RedisStockStore& store);

}  // namespace allot::workers

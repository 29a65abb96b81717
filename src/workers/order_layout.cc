#include "workers/order_layout.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <span>
#include <string>

#include "core/limits.h"

namespace allot::workers {

namespace {

// Set once every old order key is moved; its presence skips the scan at later starts.
constexpr std::string_view kMarkerKey = "layout:orders";
constexpr std::string_view kMarkerValue = "buckets";
// Old keys end with the tag: "ord:{dept|order}". New ones end with the order_no after it.
constexpr std::string_view kOldOrderKeys = "ord:{*}";
// Old keys moved per round of three pipelined round trips (RedisStockStore::moveLegacyOrders):
// the reads of a round are two commands per key, within one pipeline's limit.
constexpr std::size_t kMoveChunk = limits::kRedisPipelineCommandsMax / 2;
constexpr std::size_t kProgressEvery = 100'000;

}  // namespace

Result<OrderLayoutMove> moveOrdersToBuckets(redis::Client& client, WriteBack& scanner,
                                            redis::RedisStockStore& store) {
  OrderLayoutMove result;
  const std::string marker(kMarkerKey);
  ALLOT_TRY(seen, client.command(marker, {"GET", marker}));
  if (seen.isString() && seen.str == kMarkerValue) {
    result.done_before = true;
    return result;
  }
  ALLOT_TRY(old_keys, scanner.scanKeys(std::string(kOldOrderKeys)));
  if (!old_keys.empty()) {
    spdlog::info("order layout: moving {} orders of the layout before buckets", old_keys.size());
  }
  std::size_t reported = 0;
  for (std::size_t first = 0; first < old_keys.size(); first += kMoveChunk) {
    const std::size_t count = std::min(kMoveChunk, old_keys.size() - first);
    ALLOT_TRY(moved, store.moveLegacyOrders(std::span(old_keys).subspan(first, count)));
    result.moved += moved;
    if (result.moved - reported >= kProgressEvery) {
      reported = result.moved;
      spdlog::info("order layout: {} of {} moved", result.moved, old_keys.size());
    }
  }
  ALLOT_TRY(set, client.command(marker, {"SET", marker, std::string(kMarkerValue)}));
  if (set.isError()) return fail(ErrorCode::kUnavailable, "order layout: SET marker: " + set.str);
  if (result.moved > 0) spdlog::info("order layout: {} orders moved", result.moved);
  return result;
}

}  // namespace allot::workers

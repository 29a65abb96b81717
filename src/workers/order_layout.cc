#include "workers/order_layout.h"

#include <spdlog/spdlog.h>

#include <string>

namespace allot::workers {

namespace {

// Set once every old order key is moved; its presence skips the scan at later starts.
constexpr std::string_view kMarkerKey = "layout:orders";
constexpr std::string_view kMarkerValue = "buckets";
// Old keys end with the tag: "ord:{dept|order}". New ones end with the order_no after it.
constexpr std::string_view kOldOrderKeys = "ord:{*}";
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
  for (const std::string& key : old_keys) {
    ALLOT_TRY(moved, store.moveLegacyOrder(key));
    if (moved && ++result.moved % kProgressEvery == 0) {
      spdlog::info("order layout: {} of {} moved", result.moved, old_keys.size());
    }
  }
  ALLOT_TRY(set, client.command(marker, {"SET", marker, std::string(kMarkerValue)}));
  if (set.isError()) return fail(ErrorCode::kUnavailable, "order layout: SET marker: " + set.str);
  if (result.moved > 0) spdlog::info("order layout: {} orders moved", result.moved);
  return result;
}

}  // namespace allot::workers

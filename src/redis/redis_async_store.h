// The AsyncHotStore on a standalone Redis: the single-line fast path's one script
// (lua/order_hold.lua) on a pipelined AsyncConnection of the calling event-loop thread.
// The script touches the record's keys and the orders' hashes together, which Redis Cluster
// refuses (they are in different slots), so allotd builds this store only for a standalone
// server. Script replies are decoded here; a reply of an unexpected shape is a kInternal
// error for the whole batch.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "domain/ports.h"
#include "redis/async_connection.h"

namespace allot::redis {

class RedisAsyncStore final : public AsyncHotStore {
 public:
  // on_outbox_append: as StoreOptions::on_outbox_append, told the record's stream after
  // every call.
  RedisAsyncStore(boost::asio::io_context& io, NodeAddress node, ConnectionSettings settings,
                  std::function<void(const std::string& stream)> on_outbox_append);

  void preallocateLines(const RecordKey& key, const std::vector<LineOrder>& orders,
                        BatchDone done) override;
  void defer(std::function<void()> fn) override;

 private:
  struct Call;
  void send(std::shared_ptr<Call> call);

  boost::asio::io_context& io_;
  AsyncConnection connection_;
  std::function<void(const std::string& stream)> on_outbox_append_;
};

}  // namespace allot::redis

// allotd's configuration: a TOML file (allotd --config FILE) whose every key can be
// overridden by an environment variable named ALLOT_ + the key in upper case
// (listen -> ALLOT_LISTEN, redis_url -> ALLOT_REDIS_URL, ...). See deploy/allotd.example.toml.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "core/result.h"
#include "domain/ports.h"

namespace allot::app {

struct Config {
  std::string listen = "127.0.0.1:8080";
  std::string redis_url = "redis://127.0.0.1:6390";
  std::string mysql_url = "mysql://allot:secret@127.0.0.1:3390/allot";
  // A read replica of the database, for the reconciliation's first compare; empty: none.
  std::string mysql_replica_url;
  std::string admin_token;  // empty: admin endpoints refused
  std::string api_token;    // empty: /v1 needs no token
  Route default_route = Route::kRedis;
  std::int64_t http_threads = 64;
  std::int64_t redis_pool_size = 64;
  bool coalesce_holds = true;             // group commit of concurrent holds on one record
  std::int64_t hold_calls_in_flight = 2;  // coalesced hold calls of one record at once
  // Single-line pre-allocations in one script on the network threads (standalone Redis
  // only; ignored on Redis Cluster).
  bool fast_path = true;
  std::int64_t network_threads = 2;  // HTTP event loops, each with its own fast path
  std::int64_t retention_seconds = 7 * 24 * 3600;
  std::int64_t startup_timeout_ms = 30'000;  // how long to wait for Redis and MariaDB at start
  std::string log_level = "info";
  // What this process runs: "all" (HTTP and every worker), "api" (HTTP, compensation and
  // reconciliation; the write-back runs elsewhere) or "writeback" (the write-back alone).
  std::string role = "all";
  std::int64_t route_refresh_ms = 1000;  // how old a cached merchant route may get
  // How long a route switch waits, after marking the merchant switching, for the other
  // allotd processes to notice (their route_refresh_ms plus a margin).
  std::int64_t route_settle_ms = 1500;
  // Outbox events the write-back applies from one stream per pass (one transaction holds a
  // batch): larger batches mean fewer commits and round trips for a hot record's stream.
  std::int64_t writeback_batch_events = 5000;

  // Derived from listen.
  std::string listen_host;
  std::uint16_t listen_port = 0;
};

using EnvLookup = std::function<const char*(const char*)>;

// Reads the file (when path is not empty), applies the environment, validates everything.
[[nodiscard]] Result<Config> loadConfig(const std::string& path, const EnvLookup& env);

}  // namespace allot::app

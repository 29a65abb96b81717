// allotd: the pre-allocation service. Wires the adapters to the domain and serves HTTP until
// SIGINT or SIGTERM.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdlib>
#include <thread>

#include "app/config.h"
#include "domain/compensation.h"
#include "domain/merchant_router.h"
#include "domain/preallocation_service.h"
#include "domain/single_line_preallocator.h"
#include "domain/system_clock.h"
#include "http/prometheus.h"
#include "http/routes.h"
#include "http/server.h"
#include "mysql/compensation_queue.h"
#include "mysql/mysql_ledger.h"
#include "mysql/mysql_path.h"
#include "mysql/pending_order_scan.h"
#include "mysql/pool.h"
#include "mysql/route_table.h"
#include "mysql/url.h"
#include "mysql/write_back_store.h"
#include "redis/client.h"
#include "redis/redis_async_store.h"
#include "redis/redis_stock_store.h"
#include "workers/order_layout.h"
#include "workers/periodic.h"
#include "workers/reconcile.h"
#include "workers/route_switch.h"
#include "workers/write_back.h"

namespace {

using allot::Result;

// Retries `connect` until it succeeds or the start-up deadline passes, so allotd may start
// before its servers are ready (as under systemd or scripts/serve).
template <typename Connect>
auto connectWithDeadline(const char* what, std::int64_t timeout_ms, Connect connect)
    -> decltype(connect()) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (true) {
    auto result = connect();
    if (result || std::chrono::steady_clock::now() >= deadline) return result;
    spdlog::warn("{} is not reachable yet ({}); retrying", what, result.error().message);
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
}

// The write-back's lag and progress in Prometheus text.
std::string writeBackMetricsText(const allot::workers::WriteBackMetrics& metrics) {
  std::string out;
  auto add = [&out](std::string_view name, std::string_view type, std::string_view help,
                    std::int64_t value) {
    allot::http::appendMetric(out, name, type, help, value);
  };
  auto count = [](const auto& atomic) { return static_cast<std::int64_t>(atomic.load()); };
  add("allot_writeback_events_applied_total", "counter", "Outbox events applied to the database.",
      count(metrics.events_applied));
  add("allot_writeback_events_dead_lettered_total", "counter",
      "Outbox events that could never apply (see outbox_dead_letters).",
      count(metrics.events_dead_lettered));
  add("allot_writeback_batches_total", "counter", "Committed write-back batches.",
      count(metrics.batches));
  add("allot_writeback_batch_failures_total", "counter",
      "Failed write-back reads, commits or trims.", count(metrics.batch_failures));
  add("allot_writeback_lag_ms", "gauge", "Age of the oldest event waiting to be written back.",
      count(metrics.oldest_unapplied_age_ms));
  add("allot_writeback_lag_events", "gauge", "Events left in streams whose batch was full.",
      count(metrics.events_pending));
  add("allot_writeback_streams_known", "gauge", "Outbox streams the write-back reads.",
      count(metrics.streams_known));
  return out;
}

std::string reconcileMetricsText(const allot::workers::ReconcileMetrics& metrics) {
  std::string out;
  allot::http::appendCounter(out, "allot_reconcile_runs_total", "Reconciliation runs.",
                             metrics.runs.load());
  allot::http::appendCounter(out, "allot_reconcile_run_failures_total",
                             "Reconciliation runs that failed.", metrics.run_failures.load());
  allot::http::appendCounter(out, "allot_reconcile_records_checked_total", "Records compared.",
                             metrics.records_checked.load());
  allot::http::appendCounter(out, "allot_reconcile_mismatched_total",
                             "Records with real drift (not lag).", metrics.mismatched.load());
  allot::http::appendCounter(out, "allot_reconcile_repaired_total", "Drifted records repaired.",
                             metrics.repaired.load());
  allot::http::appendCounter(out, "allot_reconcile_records_failed_total",
                             "Records that could not be compared (a bad value, busy; logged).",
                             metrics.records_failed.load());
  allot::http::appendCounter(out, "allot_reconcile_lag_only_total",
                             "Differences explained by events not yet written back.",
                             metrics.lag_only.load());
  allot::http::appendCounter(out, "allot_reconcile_replica_reads_total",
                             "First compares read from the read replica.",
                             metrics.replica_reads.load());
  allot::http::appendCounter(out, "allot_reconcile_replica_failures_total",
                             "Replica reads that failed (the primary was read instead).",
                             metrics.replica_failures.load());
  return out;
}

std::string routeSwitchMetricsText(const allot::workers::RouteSwitchMetrics& metrics) {
  std::string out;
  allot::http::appendCounter(out, "allot_route_switches_total",
                             "Merchant route switches completed.", metrics.switches.load());
  allot::http::appendCounter(out, "allot_route_switch_failures_total",
                             "Merchant route switches that began and failed "
                             "(left switching, or put off before any data moved).",
                             metrics.failures.load());
  allot::http::appendCounter(out, "allot_route_switch_records_evicted_total",
                             "Records taken out of Redis by switches.",
                             metrics.records_evicted.load());
  allot::http::appendCounter(out, "allot_route_switch_records_loaded_total",
                             "Records loaded into Redis by switches.",
                             metrics.records_loaded.load());
  allot::http::appendCounter(out, "allot_route_switch_orders_loaded_total",
                             "Orders loaded into Redis by switches.", metrics.orders_loaded.load());
  allot::http::appendCounter(out, "allot_route_switch_settle_repairs_total",
                             "Rows set to Redis's counters after a switch's drain (drift).",
                             metrics.settle_repairs.load());
  allot::http::appendCounter(out, "allot_route_switch_pending_orders_undone_total",
                             "Orders left pending by dead calls, undone by switches to MySQL.",
                             metrics.pending_orders_undone.load());
  allot::http::appendCounter(out, "allot_route_switch_orders_left_pending_total",
                             "Orders left held with no answer by switches to MySQL (a call "
                             "still running during the switch); the pending-order scan "
                             "releases them in the database.",
                             metrics.orders_left_pending.load());
  return out;
}

// What an allotd of role writeback answers on /v1: it serves only /healthz, /readyz and
// /metrics, so that it can be probed and scraped like every allotd.
class WriteBackOnly final : public allot::StockApi {
 public:
  WriteBackOnly(allot::redis::RedisStockStore& redis, allot::mysql::MysqlLedger& ledger)
      : redis_(redis), ledger_(ledger) {}

  allot::Result<allot::PreallocateOutcome> preallocate(const allot::PreallocateRequest&) override {
    return refused();
  }
  allot::Result<allot::EndAnswer> rollback(const allot::OrderRef&) override { return refused(); }
  allot::Result<allot::EndAnswer> deduct(const allot::OrderRef&) override { return refused(); }
  allot::Result<allot::OrderAnswer> findOrder(const allot::OrderRef&) override { return refused(); }
  allot::Result<allot::Quantities> adjust(const allot::AdjustRequest&,
                                          const std::string&) override {
    return refused();
  }
  allot::Result<allot::Quantities> readRecord(const allot::RecordKey&) override {
    return refused();
  }
  allot::Result<void> checkReady() override {
    if (auto hot = redis_.ping(); !hot) {
      return allot::fail(allot::ErrorCode::kUnavailable, "redis: " + hot.error().message);
    }
    if (auto db = ledger_.ping(); !db) {
      return allot::fail(allot::ErrorCode::kUnavailable, "database: " + db.error().message);
    }
    return {};
  }

 private:
  static std::unexpected<allot::Error> refused() {
    return std::unexpected(
        allot::Error{allot::ErrorCode::kNotFound,
                     "this allotd runs only the write-back (role writeback); send the API to "
                     "an allotd of role all or api"});
  }

  allot::redis::RedisStockStore& redis_;
  allot::mysql::MysqlLedger& ledger_;
};

// Blocks until SIGINT or SIGTERM (blocked in every thread by main) arrives.
void waitForStopSignal() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  int received = 0;
  sigwait(&signals, &received);
  spdlog::info("signal {} received; stopping", received);
}

int run(const allot::app::Config& config) {
  auto redis_options = allot::redis::parseRedisUrl(config.redis_url);
  if (!redis_options) {
    spdlog::error("redis_url: {}", redis_options.error().message);
    return 2;
  }
  redis_options->pool_size_per_node = static_cast<std::size_t>(config.redis_pool_size);
  auto mysql_options = allot::mysql::parseMysqlUrl(config.mysql_url);
  if (!mysql_options) {
    spdlog::error("mysql_url: {}", mysql_options.error().message);
    return 2;
  }
  auto redis = connectWithDeadline("Redis", config.startup_timeout_ms,
                                   [&] { return allot::redis::Client::connect(*redis_options); });
  if (!redis) {
    spdlog::error("cannot connect to Redis: {}", redis.error().message);
    return 1;
  }
  auto ledger = connectWithDeadline("MariaDB", config.startup_timeout_ms, [&] {
    return allot::mysql::MysqlLedger::open(*mysql_options);
  });
  if (!ledger) {
    spdlog::error("cannot open the database: {}", ledger.error().message);
    return 1;
  }
  // The write-back: the outbox streams the scripts append to, applied to MariaDB exactly once.
  allot::mysql::WriteBackStore write_back_store((*ledger)->pool());
  allot::workers::WriteBackOptions write_back_options;
  write_back_options.batch_events_max = static_cast<std::size_t>(config.writeback_batch_events);
  allot::workers::WriteBack write_back(**redis, write_back_store, write_back_options);
  if (config.role == "writeback") {
    allot::redis::RedisStockStore probe(
        **redis, {config.retention_seconds, allot::limits::kOrderLeaseMs, nullptr});
    WriteBackOnly refusing(probe, **ledger);
    allot::ServiceCounters no_calls;
    allot::http::RouterOptions options{config.api_token, config.admin_token, config.default_route};
    options.extra_metrics = [&write_back] { return writeBackMetricsText(write_back.metrics()); };
    allot::http::Router router(refusing, no_calls, std::move(options));
    allot::http::HttpServer server(router, {config.listen_host, config.listen_port, 2});
    if (auto started = server.start(); !started) {
      spdlog::error("{}", started.error().message);
      return 1;
    }
    write_back.start();
    spdlog::info(
        "allotd (role writeback) applying the outbox of {} to the database; "
        "health and metrics on {}:{}",
        config.redis_url, config.listen_host, server.port());
    waitForStopSignal();
    server.stop();
    write_back.stop();
    return 0;
  }
  const bool own_write_back = config.role == "all";
  allot::redis::StoreOptions store_options{config.retention_seconds, allot::limits::kOrderLeaseMs,
                                           nullptr};
  if (own_write_back) {
    store_options.on_outbox_append = [&write_back](const std::string& stream) {
      write_back.noteStream(stream);
    };
  }
  allot::redis::RedisStockStore store(**redis, store_options);
  // Before any call is served: orders an older allotd kept in the layout before buckets.
  if (auto moved = allot::workers::moveOrdersToBuckets(**redis, write_back, store); !moved) {
    spdlog::error("cannot move the orders to the bucketed layout: {}", moved.error().message);
    return 1;
  }
  if (own_write_back) write_back.start();
  allot::SystemClock clock;
  allot::ServiceCounters counters;
  allot::ServiceOptions service_options;
  service_options.coalesce_holds = config.coalesce_holds;
  service_options.hold_calls_in_flight = static_cast<std::size_t>(config.hold_calls_in_flight);
  allot::PreallocationService redis_path(store, **ledger, clock, counters, service_options);
  allot::mysql::MysqlPath mysql_path((*ledger)->pool(), config.default_route);
  // Compensation, the seed's second stage: apply the reverses that failed inline.
  allot::mysql::MysqlCompensationQueue compensation_queue((*ledger)->pool());
  allot::CompensationProcessor compensation(store, compensation_queue, counters);
  allot::workers::Periodic compensation_worker(std::chrono::seconds(1), [&] {
    if (auto ran = compensation.runOnce(); !ran) {
      spdlog::warn("compensation: {}", ran.error().message);
    }
  });
  compensation_worker.start();
  // Its third stage: an order whose call ended without answering (pending past its claim's
  // lease and a margin for clock skew, limits::kDeadCallAgeMs, with lines held) becomes an
  // undo task for the worker above.
  allot::mysql::PendingOrderScan pending_scan((*ledger)->pool());
  allot::workers::Periodic pending_scan_worker(std::chrono::seconds(5), [&] {
    const allot::mysql::PendingScanOptions options{allot::limits::kDeadCallAgeMs, 100};
    std::uint64_t found = 0;
    for (int pass = 0; pass < 100; ++pass) {  // a backlog goes in batches, up to 10,000 a tick
      auto report = pending_scan.runOnce(options);
      if (!report) {
        spdlog::warn("pending-order scan: {}", report.error().message);
        break;
      }
      found += report->compensated;
      counters.pending_orders_compensated.fetch_add(report->compensated);
      if (report->taken < options.batch_size) break;
    }
    if (found > 0) {
      spdlog::warn(
          "pending-order scan: {} orders left pending past their lease, handed to compensation",
          found);
    }
  });
  pending_scan_worker.start();
  // Merchant routes (API.md 7): each merchant on the Redis or the MySQL path, switched live.
  allot::mysql::MysqlRouteTable route_table((*ledger)->pool());
  allot::workers::RouteSwitch route_switch(
      store, (*ledger)->pool(), route_table, write_back,
      [&compensation](const std::string& dept_no) -> allot::Result<void> {
        ALLOT_TRY_VOID(compensation.runOnce(dept_no));
        return {};
      },
      {std::chrono::milliseconds(config.route_settle_ms), std::chrono::seconds(30),
       config.retention_seconds});
  allot::MerchantRouter service(
      redis_path, mysql_path, route_table,
      [&route_switch](const std::string& dept_no, allot::Route from, allot::Route to) {
        return route_switch.move(dept_no, from, to);
      },
      {config.default_route, config.route_refresh_ms, allot::limits::kBusyWaitMs * 2, 10'000});
  // Reconciliation, the seed's last net: compare Redis with the database and repair drift,
  // every minute and on POST /v1/admin/reconcile.
  std::unique_ptr<allot::mysql::Pool> replica;
  if (!config.mysql_replica_url.empty()) {
    auto replica_options = allot::mysql::parseMysqlUrl(config.mysql_replica_url);
    if (!replica_options) {
      spdlog::error("mysql_replica_url: {}", replica_options.error().message);
      return 2;
    }
    auto created = allot::mysql::Pool::create(*replica_options);
    if (!created) {
      spdlog::error("cannot open the read replica: {}", created.error().message);
      return 1;
    }
    replica = std::move(*created);
  }
  allot::workers::Reconciler reconciler(**redis, (*ledger)->pool(), &write_back, replica.get());
  allot::workers::Periodic reconcile_worker(std::chrono::seconds(60), [&] {
    if (auto report = reconciler.reconcile(std::nullopt); !report) {
      spdlog::warn("reconcile: {}", report.error().message);
    }
  });
  reconcile_worker.start();
  auto reconcile_now = [&reconciler](const std::optional<std::string>& dept_no)
      -> allot::Result<allot::http::ReconcileCounts> {
    ALLOT_TRY(report, reconciler.reconcile(dept_no));
    return allot::http::ReconcileCounts{report.checked, report.mismatched, report.repaired,
                                        report.failed};
  };
  auto metrics_text = [&write_back, &reconciler, &route_switch] {
    return writeBackMetricsText(write_back.metrics()) + reconcileMetricsText(reconciler.metrics()) +
           routeSwitchMetricsText(route_switch.metrics());
  };
  allot::http::RouterOptions router_options{config.api_token, config.admin_token,
                                            config.default_route};
  router_options.extra_metrics = metrics_text;
  router_options.reconcile = reconcile_now;
  router_options.route_of = [&service](const std::string& dept_no) {
    return service.routeOf(dept_no);
  };
  router_options.merchant_route = [&service](const std::string& dept_no) {
    return service.view(dept_no);
  };
  router_options.switch_route = [&service](const std::string& dept_no, allot::Route route) {
    return service.switchRoute(dept_no, route);
  };
  allot::http::Router router(service, counters, std::move(router_options));
  allot::http::ServerOptions server_options{config.listen_host, config.listen_port,
                                            static_cast<std::size_t>(config.http_threads),
                                            static_cast<std::size_t>(config.network_threads)};
  if (config.fast_path && !(*redis)->isCluster()) {
    // Each network thread pre-allocates single-line orders in one script on a pipelined
    // connection of its own (redis/redis_async_store.h); Redis Cluster cannot run that
    // script, so there every order takes the multi-step protocol.
    auto node = allot::redis::parseNodeAddress(redis_options->seeds.front());
    if (!node) {
      spdlog::error("redis_url: {}", node.error().message);
      return 2;
    }
    const allot::redis::ConnectionSettings settings{
        redis_options->password, redis_options->connect_timeout, redis_options->command_timeout};
    server_options.make_fast_path = [&, node = *node, settings](boost::asio::io_context& io) {
      return std::make_unique<allot::SingleLinePreallocator>(
          std::make_unique<allot::redis::RedisAsyncStore>(io, node, settings,
                                                          store_options.on_outbox_append),
          service, counters, allot::limits::kHoldBatchMax,
          static_cast<std::size_t>(config.hold_calls_in_flight));
    };
  }
  const bool server_options_fast = static_cast<bool>(server_options.make_fast_path);
  allot::http::HttpServer server(router, std::move(server_options));
  if (auto started = server.start(); !started) {
    spdlog::error("{}", started.error().message);
    return 1;
  }
  spdlog::info("allotd listening on {}:{} (redis {}, cluster {}, role {}, fast path {})",
               config.listen_host, server.port(), config.redis_url, (*redis)->isCluster(),
               config.role, server_options_fast ? "on" : "off");
  waitForStopSignal();
  server.stop();
  reconcile_worker.stop();
  pending_scan_worker.stop();
  compensation_worker.stop();
  if (own_write_back) write_back.stop();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Block the stop signals in every thread; the main thread waits for them with sigwait.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  CLI::App cli{"allotd: inventory pre-allocation service"};
  std::string config_path;
  cli.add_option("--config", config_path, "TOML configuration file")->check(CLI::ExistingFile);
  std::string role;
  cli.add_option("--role", role,
                 "all (default), api (HTTP without the write-back) or writeback (the write-back "
                 "alone); overrides the role key and ALLOT_ROLE")
      ->check(CLI::IsMember({"all", "api", "writeback"}));
  cli.set_version_flag("--version", "allotd 0.1.0");
  CLI11_PARSE(cli, argc, argv);

  auto config =
      allot::app::loadConfig(config_path, [](const char* name) { return std::getenv(name); });
  if (!config) {
    spdlog::error("configuration: {}", config.error().message);
    return 2;
  }
  if (!role.empty()) config->role = role;
  spdlog::set_level(spdlog::level::from_str(config->log_level));
  return run(*config);
}

// allotd: the pre-allocation service. Wires the adapters to the domain and serves HTTP until
// SIGINT or SIGTERM.
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdlib>
#include <thread>
#include <fmt/format.h>

#include "app/config.h"
#include "domain/compensation.h"
#include "domain/preallocation_service.h"
#include "domain/system_clock.h"
#include "http/prometheus.h"
#include "http/routes.h"
#include "http/server.h"
#include "mysql/compensation_queue.h"
#include "mysql/mysql_ledger.h"
#include "mysql/mysql_path.h"
#include "mysql/write_back_store.h"
#include "mysql/url.h"
#include "redis/client.h"
#include "redis/redis_stock_store.h"
#include "workers/periodic.h"
#include "workers/reconcile.h"
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
                    std::int64_t value) { allot::http::appendMetric(out, name, type, help, value); };
  auto count = [](const auto& atomic) { return static_cast<std::int64_t>(atomic.load()); };
  add("allot_writeback_events_applied_total", "counter", "Outbox events applied to the database.",
      count(metrics.events_applied));
  add("allot_writeback_events_dead_lettered_total", "counter",
      "Outbox events that could never apply (see outbox_dead_letters).",
      count(metrics.events_dead_lettered));
  add("allot_writeback_batches_total", "counter", "Committed write-back batches.",
      count(metrics.batches));
  add("allot_writeback_batch_failures_total", "counter", "Failed write-back reads, commits or trims.",
      count(metrics.batch_failures));
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
  auto add = [&out](std::string_view name, std::string_view help, std::uint64_t value) {
    allot::http::appendMetric(out, name, "counter", help, static_cast<std::int64_t>(value));
  };
  add("allot_reconcile_runs_total", "Reconciliation runs.", metrics.runs.load());
  add("allot_reconcile_run_failures_total", "Reconciliation runs that failed.",
      metrics.run_failures.load());
  add("allot_reconcile_records_checked_total", "Records compared.", metrics.records_checked.load());
  add("allot_reconcile_mismatched_total", "Records with real drift (not lag).",
      metrics.mismatched.load());
  add("allot_reconcile_repaired_total", "Drifted records repaired.", metrics.repaired.load());
  add("allot_reconcile_lag_only_total", "Differences explained by events not yet written back.",
      metrics.lag_only.load());
  return out;
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
  allot::workers::WriteBack write_back(**redis, write_back_store);
  allot::redis::StoreOptions store_options{config.retention_seconds, allot::limits::kOrderLeaseMs,
                                           [&write_back](const std::string& stream) {
                                             write_back.noteStream(stream);
                                           }};
  allot::redis::RedisStockStore store(**redis, store_options);
  write_back.start();
  allot::SystemClock clock;
  allot::ServiceCounters counters;
  allot::ServiceOptions service_options;
  service_options.coalesce_holds = config.coalesce_holds;
  service_options.hold_calls_in_flight = static_cast<std::size_t>(config.hold_calls_in_flight);
  allot::PreallocationService redis_path(store, **ledger, clock, counters, service_options);
  allot::mysql::MysqlPath mysql_path((*ledger)->pool());
  // Until per-merchant routing lands, the default route picks the path for every merchant.
  allot::StockApi& service = config.default_route == allot::Route::kMysql
                                 ? static_cast<allot::StockApi&>(mysql_path)
                                 : static_cast<allot::StockApi&>(redis_path);
  // Compensation, the seed's second stage: apply the reverses that failed inline.
  allot::mysql::MysqlCompensationQueue compensation_queue((*ledger)->pool());
  allot::CompensationProcessor compensation(store, compensation_queue, counters);
  allot::workers::Periodic compensation_worker(std::chrono::seconds(1), [&] {
    if (auto ran = compensation.runOnce(); !ran) {
      spdlog::warn("compensation: {}", ran.error().message);
    }
  });
  compensation_worker.start();
  // Reconciliation, the seed's last net: compare Redis with the database and repair drift,
  // every minute and on POST /v1/admin/reconcile.
  allot::workers::Reconciler reconciler(**redis, (*ledger)->pool(), &write_back);
  allot::workers::Periodic reconcile_worker(std::chrono::seconds(60), [&] {
    if (auto report = reconciler.reconcile(std::nullopt); !report) {
      spdlog::warn("reconcile: {}", report.error().message);
    }
  });
  reconcile_worker.start();
  auto reconcile_now = [&reconciler](const std::optional<std::string>& dept_no)
      -> allot::Result<allot::http::ReconcileCounts> {
    ALLOT_TRY(report, reconciler.reconcile(dept_no));
    return allot::http::ReconcileCounts{report.checked, report.mismatched, report.repaired};
  };
  auto metrics_text = [&write_back, &reconciler] {
    return writeBackMetricsText(write_back.metrics()) + reconcileMetricsText(reconciler.metrics());
  };
  allot::http::Router router(service, counters,
                             {config.api_token, config.admin_token, config.default_route,
                              metrics_text, reconcile_now});
  allot::http::HttpServer server(router, {config.listen_host, config.listen_port,
                                          static_cast<std::size_t>(config.http_threads)});
  if (auto started = server.start(); !started) {
    spdlog::error("{}", started.error().message);
    return 1;
  }
  spdlog::info("allotd listening on {}:{} (redis {}, cluster {})", config.listen_host,
               server.port(), config.redis_url, (*redis)->isCluster());
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  int received = 0;
  sigwait(&signals, &received);
  spdlog::info("signal {} received; stopping", received);
  server.stop();
  reconcile_worker.stop();
  compensation_worker.stop();
  write_back.stop();
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
  cli.set_version_flag("--version", "allotd 0.1.0");
  CLI11_PARSE(cli, argc, argv);

  auto config =
      allot::app::loadConfig(config_path, [](const char* name) { return std::getenv(name); });
  if (!config) {
    spdlog::error("configuration: {}", config.error().message);
    return 2;
  }
  spdlog::set_level(spdlog::level::from_str(config->log_level));
  return run(*config);
}

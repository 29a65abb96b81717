#include "app/config.h"

#include <toml++/toml.h>

#include "core/decimal.h"
#include "core/limits.h"

namespace allot::app {

namespace {

// Each key once: its TOML name (the environment name is derived) and how to set it.
struct Key {
  const char* name;
  std::function<Result<void>(Config&, std::string_view)> set;
};

Result<std::int64_t> parseInteger(std::string_view name, std::string_view text, std::int64_t min,
                                  std::int64_t max) {
  const auto read = readDecimal<std::int64_t>(text);
  const std::int64_t value = read.value_or(0);
  if (!read || value < min || value > max) {
    return fail(ErrorCode::kInvalidRequest, std::string(name) + " must be an integer " +
                                                std::to_string(min) + ".." + std::to_string(max) +
                                                ", not '" + std::string(text) + "'");
  }
  return value;
}

auto text(std::string Config::*field) {
  return [field](Config& config, std::string_view value) -> Result<void> {
    config.*field = std::string(value);
    return {};
  };
}

auto integer(const char* name, std::int64_t Config::*field, std::int64_t min, std::int64_t max) {
  return [=](Config& config, std::string_view value) -> Result<void> {
    ALLOT_TRY(parsed, parseInteger(name, value, min, max));
    config.*field = parsed;
    return {};
  };
}

auto boolean(const char* name, bool Config::*field) {
  return [=](Config& config, std::string_view value) -> Result<void> {
    if (value == "true" || value == "1") {
      config.*field = true;
    } else if (value == "false" || value == "0") {
      config.*field = false;
    } else {
      return fail(ErrorCode::kInvalidRequest, std::string(name) + " must be true or false");
    }
    return {};
  };
}

const std::vector<Key>& keys() {
  static const std::vector<Key> kKeys = {
      {"listen", text(&Config::listen)},
      {"redis_url", text(&Config::redis_url)},
      {"mysql_url", text(&Config::mysql_url)},
      {"mysql_replica_url", text(&Config::mysql_replica_url)},
      {"admin_token", text(&Config::admin_token)},
      {"api_token", text(&Config::api_token)},
      {"default_route",
       [](Config& config, std::string_view value) -> Result<void> {
         if (value == "redis")
           config.default_route = Route::kRedis;
         else if (value == "mysql")
           config.default_route = Route::kMysql;
         else
           return fail(ErrorCode::kInvalidRequest, "default_route must be redis or mysql");
         return {};
       }},
      {"http_threads", integer("http_threads", &Config::http_threads, 1,
                               static_cast<std::int64_t>(limits::kHttpThreadsMax))},
      {"redis_pool_size", integer("redis_pool_size", &Config::redis_pool_size, 1,
                                  static_cast<std::int64_t>(limits::kRedisPoolSizeMax))},
      {"coalesce_holds", boolean("coalesce_holds", &Config::coalesce_holds)},
      {"fast_path", boolean("fast_path", &Config::fast_path)},
      {"network_threads", integer("network_threads", &Config::network_threads, 1,
                                  static_cast<std::int64_t>(limits::kNetworkThreadsMax))},
      {"hold_calls_in_flight",
       integer("hold_calls_in_flight", &Config::hold_calls_in_flight, 1, 16)},
      {"retention_seconds",
       integer("retention_seconds", &Config::retention_seconds, 60, 366LL * 24 * 3600)},
      {"startup_timeout_ms",
       integer("startup_timeout_ms", &Config::startup_timeout_ms, 0, 600'000)},
      {"log_level", text(&Config::log_level)},
      {"role",
       [](Config& config, std::string_view value) -> Result<void> {
         if (value != "all" && value != "api" && value != "writeback") {
           return fail(ErrorCode::kInvalidRequest, "role must be all, api or writeback");
         }
         config.role = std::string(value);
         return {};
       }},
      {"route_refresh_ms", integer("route_refresh_ms", &Config::route_refresh_ms, 50, 60'000)},
      {"route_settle_ms", integer("route_settle_ms", &Config::route_settle_ms, 0, 120'000)},
      {"writeback_batch_events",
       integer("writeback_batch_events", &Config::writeback_batch_events, 1,
               static_cast<std::int64_t>(limits::kWriteBackBatchEventsMax))},
  };
  return kKeys;
}

std::string envName(const char* key) {
  std::string name = "ALLOT_";
  for (const char* c = key; *c != '\0'; ++c) name.push_back(static_cast<char>(std::toupper(*c)));
  return name;
}

// A TOML value as the text an environment variable would hold.
std::optional<std::string> tomlText(const toml::node& node) {
  if (auto s = node.value<std::string>()) return *s;
  if (auto i = node.value<std::int64_t>()) return std::to_string(*i);
  if (auto b = node.value<bool>()) return *b ? "true" : "false";
  return std::nullopt;
}

Result<void> applyFile(Config& config, const std::string& path) {
  toml::table table;
  try {
    table = toml::parse_file(path);
  } catch (const toml::parse_error& error) {
    return fail(ErrorCode::kInvalidRequest,
                "cannot read config " + path + ": " + std::string(error.description()));
  }
  for (const auto& [name, node] : table) {
    const Key* key = nullptr;
    for (const auto& candidate : keys()) {
      if (name.str() == candidate.name) key = &candidate;
    }
    if (key == nullptr) {
      return fail(ErrorCode::kInvalidRequest,
                  "unknown key in " + path + ": " + std::string(name.str()));
    }
    const auto value = tomlText(node);
    if (!value) {
      return fail(ErrorCode::kInvalidRequest,
                  path + ": " + key->name + " must be a string, an integer or a boolean");
    }
    ALLOT_TRY_VOID(key->set(config, *value));
  }
  return {};
}

Result<void> splitListen(Config& config) {
  const auto colon = config.listen.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return fail(ErrorCode::kInvalidRequest,
                "listen must be host:port, not '" + config.listen + "'");
  }
  ALLOT_TRY(port, parseInteger("listen port", std::string_view(config.listen).substr(colon + 1), 0,
                               65535));
  config.listen_host = config.listen.substr(0, colon);
  config.listen_port = static_cast<std::uint16_t>(port);
  return {};
}

}  // namespace

Result<Config> loadConfig(const std::string& path, const EnvLookup& env) {
  Config config;
  if (!path.empty()) ALLOT_TRY_VOID(applyFile(config, path));
  for (const auto& key : keys()) {
    const char* value = env(envName(key.name).c_str());
    if (value != nullptr) ALLOT_TRY_VOID(key.set(config, value));
  }
  ALLOT_TRY_VOID(splitListen(config));
  return config;
}

}  // namespace allot::app

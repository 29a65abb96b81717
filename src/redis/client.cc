// The entry points of the Redis client: URL parsing, Script identity, and Client::connect,
// which decides between standalone and cluster mode and hands over to ClusterClient.
#include "redis/client.h"

#include <algorithm>
#include <utility>

#include "core/limits.h"
#include "redis/cluster_client.h"
#include "redis/connection.h"
#include "redis/sha1.h"

namespace allot::redis {
namespace {

constexpr std::string_view kUrlScheme = "redis://";
constexpr std::size_t kUrlLengthMax = 4096;
constexpr std::size_t kSeedsMax = 64;

Result<ClientOptions> invalidUrl(std::string_view url, std::string_view why) {
  return fail(ErrorCode::kInvalidRequest,
              "Redis URL '" + std::string(url.substr(0, 200)) + "': " + std::string(why));
}

// The seeds part of a URL: "host:port[,host:port...]", each validated.
Result<std::vector<std::string>> parseSeeds(std::string_view hosts) {
  std::vector<std::string> seeds;
  while (true) {
    const std::size_t comma = hosts.find(',');
    const std::string_view seed = hosts.substr(0, comma);
    ALLOT_TRY(address, parseNodeAddress(seed));
    if (seeds.size() == kSeedsMax) {
      return fail(ErrorCode::kInvalidRequest, "more than " + std::to_string(kSeedsMax) + " seeds");
    }
    seeds.push_back(address.name());
    if (comma == std::string_view::npos) break;
    hosts.remove_prefix(comma + 1);
  }
  return seeds;
}

// Standalone or cluster? A single seed may still be a cluster node: INFO cluster says.
Result<bool> isClusterNode(const NodeAddress& seed, const ConnectionSettings& settings) {
  ALLOT_TRY(connection, NodeConnection::open(seed, settings));
  ALLOT_TRY(info, connection->command({"INFO", "cluster"}));
  if (!info.isString()) {
    return fail(ErrorCode::kUnavailable,
                "Redis " + seed.name() + ": INFO cluster failed: " + info.str);
  }
  return info.str.find("cluster_enabled:1") != std::string::npos;
}

}  // namespace

Result<ClientOptions> parseRedisUrl(std::string_view url) {
  if (url.size() > kUrlLengthMax) return invalidUrl(url, "too long");
  if (url.starts_with("rediss://")) return invalidUrl(url, "TLS (rediss://) is not supported");
  if (!url.starts_with(kUrlScheme)) return invalidUrl(url, "must start with redis://");
  std::string_view rest = url.substr(kUrlScheme.size());

  ClientOptions options;
  // The password may itself contain '@', so the last '@' ends the user information.
  if (const std::size_t at = rest.rfind('@'); at != std::string_view::npos) {
    const std::string_view user_info = rest.substr(0, at);
    const std::size_t colon = user_info.find(':');
    if (colon == std::string_view::npos || colon != 0) {
      return invalidUrl(url, "credentials must be ':password@' (user names are not supported)");
    }
    options.password = std::string(user_info.substr(1));
    if (options.password.empty()) return invalidUrl(url, "empty password");
    rest.remove_prefix(at + 1);
  }
  // A database number means nothing to Redis Cluster; only "/" or "/0" is accepted.
  if (const std::size_t slash = rest.find('/'); slash != std::string_view::npos) {
    const std::string_view path = rest.substr(slash + 1);
    if (!path.empty() && path != "0") {
      return invalidUrl(url, "database selection or query is not supported");
    }
    rest = rest.substr(0, slash);
  }
  if (rest.find('?') != std::string_view::npos) return invalidUrl(url, "query is not supported");
  if (rest.empty()) return invalidUrl(url, "no host:port");

  auto seeds = parseSeeds(rest);
  if (!seeds) return invalidUrl(url, seeds.error().message);
  options.seeds = std::move(*seeds);
  return options;
}

Script::Script(std::string name, std::string body)
    : name_(std::move(name)), body_(std::move(body)), sha1_(sha1Hex(body_)) {}

Result<std::unique_ptr<Client>> Client::connect(const ClientOptions& options) {
  if (options.seeds.empty()) return fail(ErrorCode::kInvalidRequest, "Redis: no seed address");
  if (options.pool_size_per_node == 0) {
    return fail(ErrorCode::kInvalidRequest, "Redis: pool_size_per_node must be at least 1");
  }
  if (options.connect_timeout.count() <= 0 || options.command_timeout.count() <= 0) {
    return fail(ErrorCode::kInvalidRequest, "Redis: timeouts must be positive");
  }
  ClusterClientSettings settings;
  settings.connection =
      ConnectionSettings{options.password, options.connect_timeout, options.command_timeout};
  settings.connections_per_node_max =
      std::min(options.pool_size_per_node, limits::kRedisPoolSizeMax);
  for (const std::string& seed : options.seeds) {
    ALLOT_TRY(address, parseNodeAddress(seed));
    settings.seeds.push_back(std::move(address));
  }
  if (settings.seeds.size() > 1) {
    settings.cluster = true;
  } else {
    ALLOT_TRY(cluster, isClusterNode(settings.seeds.front(), settings.connection));
    settings.cluster = cluster;
  }
  ALLOT_TRY(client, ClusterClient::create(std::move(settings)));
  return std::unique_ptr<Client>(std::move(client));
}

}  // namespace allot::redis

// The MariaDB connection settings and the URL they are written as:
//
//   mysql://user[:password]@host[:port]/database[?key=value&...]
//
// The port defaults to 3306. The user and password are percent-decoded, so a password may
// hold any byte (write '@' as %40, ':' as %3A, '/' as %2F). The host may be an IPv6 address
// in brackets. The optional query keys tune the pool and the timeouts (see MysqlOptions);
// an unknown key is an error, because a misspelt setting that is silently ignored is a
// setting that never took effect.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/result.h"

namespace allot::mysql {

inline constexpr std::uint16_t kDefaultPort = 3306;
inline constexpr std::size_t kDefaultPoolSize = 8;
inline constexpr int kTimeoutSecondsMax = 3600;

struct MysqlOptions {
  std::string host;
  std::uint16_t port = kDefaultPort;
  std::string user;
  std::string password;
  std::string database;

  std::size_t pool_size = kDefaultPoolSize;  // 1..limits::kMysqlPoolSizeMax
  // The client library counts these in whole seconds.
  int connect_timeout_s = 2;
  int read_timeout_s = 10;
  int write_timeout_s = 10;
  // Kept below read_timeout_s, so a blocked row lock ends as a clean, retryable error 1205
  // before the socket read gives up and the connection has to be thrown away.
  int lock_wait_timeout_s = 5;
  // How long a pool checkout waits for a free connection before kUnavailable.
  std::int64_t checkout_timeout_ms = 2'000;
  // An idle connection older than this is pinged before it is handed out, so a connection
  // the server or a firewall dropped while idle is replaced instead of failing a call.
  std::int64_t idle_check_after_ms = 10'000;
};

// Checks the relations between the fields (ranges, lock wait below the read timeout).
[[nodiscard]] Result<void> validateOptions(const MysqlOptions& options);

// Parses and validates a mysql:// URL. Every failure is kInvalidRequest with a message that
// names the part that is wrong (never the password).
[[nodiscard]] Result<MysqlOptions> parseMysqlUrl(std::string_view url);

// Decodes %XX escapes; fails on a truncated or non-hex escape.
[[nodiscard]] Result<std::string> percentDecode(std::string_view text);

}  // namespace allot::mysql

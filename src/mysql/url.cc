// Parsing of mysql:// URLs into MysqlOptions. Hand-written rather than a general URL parser
// because the grammar is small and the rules that matter here (percent-decoded credentials,
// a strict database name, only known query keys) are specific to this one use.
#include "mysql/url.h"

#include <array>
#include <limits>

#include "core/decimal.h"
#include "core/limits.h"
#include "core/percent_decode.h"

namespace allot::mysql {
namespace {

constexpr std::size_t kDatabaseNameLengthMax = 64;  // MariaDB's own limit
constexpr std::size_t kHostLengthMax = 255;         // a DNS name

std::unexpected<Error> invalid(std::string message) {
  return fail(ErrorCode::kInvalidRequest, "mysql url: " + std::move(message));
}

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool isHostChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '-' || c == '_';
}

bool isIpv6Char(char c) { return hexValue(c) >= 0 || c == ':' || c == '.'; }

// Database names are passed to the server as-is; keeping them to a plain charset means no
// name ever needs quoting anywhere (logs, scripts, GRANT statements of an operator).
bool isDatabaseChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-' || c == '$';
}

template <typename Int>
Result<Int> parseNumber(std::string_view what, std::string_view text) {
  const auto read = readDecimal<Int>(text);
  if (!read) {
    return invalid(std::string(what) + " must be a decimal number, got '" + std::string(text) +
                   "'");
  }
  return *read;
}

Result<void> parseHostPort(std::string_view host_port, MysqlOptions& out) {
  std::string_view port_text;
  if (!host_port.empty() && host_port.front() == '[') {
    const auto close = host_port.find(']');
    if (close == std::string_view::npos) return invalid("unterminated '[' in the host");
    out.host = std::string(host_port.substr(1, close - 1));
    for (char c : out.host) {
      if (!isIpv6Char(c)) return invalid("invalid character in the IPv6 host");
    }
    const auto rest = host_port.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return invalid("unexpected text after the IPv6 host");
      port_text = rest.substr(1);
      if (port_text.empty()) return invalid("empty port");
    }
  } else {
    const auto colon = host_port.find(':');
    out.host = std::string(host_port.substr(0, colon));
    if (colon != std::string_view::npos) {
      port_text = host_port.substr(colon + 1);
      if (port_text.empty()) return invalid("empty port");
    }
    for (char c : out.host) {
      if (!isHostChar(c)) return invalid("invalid character in the host");
    }
  }
  if (out.host.empty()) return invalid("missing host");
  if (out.host.size() > kHostLengthMax) return invalid("host is too long");
  if (!port_text.empty()) {
    ALLOT_TRY(port, parseNumber<unsigned>("port", port_text));
    if (port == 0 || port > std::numeric_limits<std::uint16_t>::max()) {
      return invalid("port must be 1-65535");
    }
    out.port = static_cast<std::uint16_t>(port);
  }
  return {};
}

Result<void> parseUserInfo(std::string_view user_info, MysqlOptions& out) {
  const auto colon = user_info.find(':');
  ALLOT_TRY(user, percentDecode(user_info.substr(0, colon)));
  if (user.empty()) return invalid("missing user");
  std::string password;
  if (colon != std::string_view::npos) {
    ALLOT_TRY(decoded, percentDecode(user_info.substr(colon + 1)));
    password = std::move(decoded);
  }
  // The client library takes C strings: an embedded NUL would silently cut the credential.
  if (user.find('\0') != std::string::npos || password.find('\0') != std::string::npos) {
    return invalid("user and password may not contain %00");
  }
  out.user = std::move(user);
  out.password = std::move(password);
  return {};
}

Result<void> parseDatabase(std::string_view path, MysqlOptions& out) {
  if (path.empty()) return invalid("missing database name after '/'");
  if (path.size() > kDatabaseNameLengthMax) return invalid("database name is too long");
  for (char c : path) {
    if (!isDatabaseChar(c)) {
      return invalid("database name may only contain letters, digits, '_', '-' and '$'");
    }
  }
  out.database = std::string(path);
  return {};
}

Result<void> applyQueryKey(std::string_view key, std::string_view value, MysqlOptions& out) {
  if (key == "pool_size") {
    ALLOT_TRY(number, parseNumber<std::size_t>(key, value));
    out.pool_size = number;
  } else if (key == "checkout_timeout_ms") {
    ALLOT_TRY(number, parseNumber<std::int64_t>(key, value));
    out.checkout_timeout_ms = number;
  } else if (key == "idle_check_after_ms") {
    ALLOT_TRY(number, parseNumber<std::int64_t>(key, value));
    out.idle_check_after_ms = number;
  } else {
    const std::array<std::pair<std::string_view, int*>, 4> seconds = {{
        {"connect_timeout_s", &out.connect_timeout_s},
        {"read_timeout_s", &out.read_timeout_s},
        {"write_timeout_s", &out.write_timeout_s},
        {"lock_wait_timeout_s", &out.lock_wait_timeout_s},
    }};
    for (const auto& [name, field] : seconds) {
      if (key != name) continue;
      ALLOT_TRY(number, parseNumber<int>(key, value));
      *field = number;
      return {};
    }
    return invalid("unknown option '" + std::string(key) + "'");
  }
  return {};
}

Result<void> parseQuery(std::string_view query, MysqlOptions& out) {
  while (!query.empty()) {
    const auto amp = query.find('&');
    const auto pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    const auto equals = pair.find('=');
    if (equals == std::string_view::npos) {
      return invalid("option '" + std::string(pair) + "' has no '=value'");
    }
    ALLOT_TRY_VOID(applyQueryKey(pair.substr(0, equals), pair.substr(equals + 1), out));
  }
  return {};
}

}  // namespace

Result<std::string> percentDecode(std::string_view text) {
  auto decoded = allot::percentDecode(text);
  if (!decoded) return invalid("invalid or truncated percent escape");
  return std::move(*decoded);
}

Result<void> validateOptions(const MysqlOptions& options) {
  if (options.pool_size < 1 || options.pool_size > limits::kMysqlPoolSizeMax) {
    return invalid("pool_size must be 1-" + std::to_string(limits::kMysqlPoolSizeMax));
  }
  const std::array<std::pair<std::string_view, int>, 4> seconds = {{
      {"connect_timeout_s", options.connect_timeout_s},
      {"read_timeout_s", options.read_timeout_s},
      {"write_timeout_s", options.write_timeout_s},
      {"lock_wait_timeout_s", options.lock_wait_timeout_s},
  }};
  for (const auto& [name, value] : seconds) {
    if (value < 1 || value > kTimeoutSecondsMax) {
      return invalid(std::string(name) + " must be 1-" + std::to_string(kTimeoutSecondsMax));
    }
  }
  if (options.lock_wait_timeout_s >= options.read_timeout_s) {
    return invalid("lock_wait_timeout_s must be below read_timeout_s");
  }
  constexpr std::int64_t kMillisecondsMax = std::int64_t{kTimeoutSecondsMax} * 1000;
  if (options.checkout_timeout_ms < 0 || options.checkout_timeout_ms > kMillisecondsMax) {
    return invalid("checkout_timeout_ms must be 0-" + std::to_string(kMillisecondsMax));
  }
  if (options.idle_check_after_ms < 0 || options.idle_check_after_ms > kMillisecondsMax) {
    return invalid("idle_check_after_ms must be 0-" + std::to_string(kMillisecondsMax));
  }
  if (options.host.empty() || options.user.empty() || options.database.empty()) {
    return invalid("host, user and database are required");
  }
  return {};
}

Result<MysqlOptions> parseMysqlUrl(std::string_view url) {
  constexpr std::string_view kScheme = "mysql://";
  if (!url.starts_with(kScheme)) return invalid("must start with mysql://");
  auto rest = url.substr(kScheme.size());
  if (rest.find('#') != std::string_view::npos) return invalid("a fragment ('#') is not allowed");

  MysqlOptions out;
  const auto question = rest.find('?');
  const auto query =
      question == std::string_view::npos ? std::string_view{} : rest.substr(question + 1);
  rest = rest.substr(0, question);

  const auto slash = rest.find('/');
  if (slash == std::string_view::npos) return invalid("missing '/database'");
  const auto authority = rest.substr(0, slash);
  // The last '@' ends the credentials, so an unescaped '@' in a password still parses.
  const auto at = authority.rfind('@');
  if (at == std::string_view::npos) return invalid("missing 'user@' before the host");

  ALLOT_TRY_VOID(parseUserInfo(authority.substr(0, at), out));
  ALLOT_TRY_VOID(parseHostPort(authority.substr(at + 1), out));
  ALLOT_TRY_VOID(parseDatabase(rest.substr(slash + 1), out));
  ALLOT_TRY_VOID(parseQuery(query, out));
  ALLOT_TRY_VOID(validateOptions(out));
  return out;
}

}  // namespace allot::mysql

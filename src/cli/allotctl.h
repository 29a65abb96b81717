// allotctl, the operator's command-line client of allotd. The command line is parsed into one
// ApiCall (see requests.h), which is sent with HttpClient and its answer printed (output.h).
// Everything lives here rather than in main() so that tests can run the whole tool.
//
// Exit codes: 0 for a 2xx answer, 1 for an API error answer (4xx/5xx), 2 for a usage error
// (nothing was sent), 3 when no valid answer came back (server unreachable, timeout).
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <variant>

#include "cli/http_client.h"
#include "cli/requests.h"

namespace allot::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitApiError = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitUnreachable = 3;

inline constexpr std::string_view kDefaultUrl = "http://127.0.0.1:8080";
inline constexpr std::int64_t kDefaultTimeoutMs = 10'000;
inline constexpr std::int64_t kTimeoutMsMax = 3'600'000;
// A lines file far larger than any valid order (200 lines) is a mistake, not an order.
inline constexpr std::size_t kLinesFileBytesMax = 1024 * 1024;

struct GlobalOptions {
  std::string url{kDefaultUrl};  // from --url, else $ALLOT_URL
  std::string token;             // from --token, else $ALLOT_API_TOKEN
  std::string admin_token;       // from --admin-token, else $ALLOT_ADMIN_TOKEN
  bool json = false;             // print the raw JSON answer
  std::int64_t timeout_ms = kDefaultTimeoutMs;
};

struct Invocation {
  GlobalOptions options;
  Endpoint endpoint;
  ApiCall call;
};

// Parses the arguments (argv[0] is the program name). Returns the call to make, or an exit
// code when there is nothing to send: kExitOk after --help, kExitUsage after printing a usage
// error to `err`.
[[nodiscard]] std::variant<Invocation, int> parseCommandLine(int argc, const char* const* argv,
                                                             std::ostream& out, std::ostream& err);

// Sends the call, prints the answer to `out` (errors to `err`) and returns the exit code.
[[nodiscard]] int execute(const Invocation& invocation, std::ostream& out, std::ostream& err);

// parseCommandLine, then execute: the whole tool.
[[nodiscard]] int runAllotctl(int argc, const char* const* argv, std::ostream& out,
                              std::ostream& err);

}  // namespace allot::cli

// Errors are values. Every fallible call returns Result<T>, a std::expected whose error
// carries a code that tells the caller what to do next: retry the same call (kUnavailable),
// never retry (the conflict codes), or fix the input (kInvalidRequest). HTTP statuses are
// chosen from these codes in exactly one place (http/error_mapping.cc).
#pragma once

#include <expected>
#include <string>
#include <string_view>
#include <utility>

namespace allot {

enum class ErrorCode {
  kInvalidRequest,       // the input is wrong; do not retry unchanged
  kUnauthorized,         // missing or wrong bearer token
  kNotFound,             // no such record or order
  kInsufficientStock,    // precondition: not enough available stock
  kIdempotencyConflict,  // the same key was used with another body; never retry
  kOrderRolledBack,      // the order was rolled back; never retry
  kOrderDeducted,        // the order was deducted; never retry
  kUnavailable,          // a dependency failed or is busy; retry with the same key
  kInternal,             // a bug or an impossible reply; retry may help, report it
};

[[nodiscard]] constexpr std::string_view errorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidRequest: return "invalid_request";
    case ErrorCode::kUnauthorized: return "unauthorized";
    case ErrorCode::kNotFound: return "not_found";
    case ErrorCode::kInsufficientStock: return "insufficient_stock";
    case ErrorCode::kIdempotencyConflict: return "idempotency_conflict";
    case ErrorCode::kOrderRolledBack: return "order_rolled_back";
    case ErrorCode::kOrderDeducted: return "order_deducted";
    case ErrorCode::kUnavailable: return "unavailable";
    case ErrorCode::kInternal: return "internal";
  }
  return "internal";
}

struct Error {
  ErrorCode code = ErrorCode::kInternal;
  std::string message;
};

template <typename T>
using Result = std::expected<T, Error>;

[[nodiscard]] inline std::unexpected<Error> fail(ErrorCode code, std::string message) {
  return std::unexpected<Error>(Error{code, std::move(message)});
}

// Unwraps a Result inside a function that itself returns a Result, passing the error up.
#define ALLOT_TRY(var, expr)                                         \
  auto var##_result_ = (expr);                                       \
  if (!var##_result_) return std::unexpected(var##_result_.error()); \
  auto var = std::move(*var##_result_)

#define ALLOT_TRY_VOID(expr)                                       \
  do {                                                             \
    auto try_result_ = (expr);                                     \
    if (!try_result_) return std::unexpected(try_result_.error()); \
  } while (false)

}  // namespace allot

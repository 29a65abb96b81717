#include "http/error_mapping.h"

namespace allot::http {

int httpStatus(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidRequest: return 400;
    case ErrorCode::kUnauthorized: return 401;
    case ErrorCode::kNotFound: return 404;
    case ErrorCode::kInsufficientStock:
    case ErrorCode::kIdempotencyConflict:
    case ErrorCode::kOrderRolledBack:
    case ErrorCode::kOrderDeducted: return 409;
    case ErrorCode::kUnavailable: return 503;
    case ErrorCode::kInternal: return 500;
  }
  return 500;
}

}  // namespace allot::http

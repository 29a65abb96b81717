// The one place where an error code becomes an HTTP status.
#pragma once

#include "core/result.h"

namespace allot::http {

[[nodiscard]] int httpStatus(ErrorCode code);

}  // namespace allot::http

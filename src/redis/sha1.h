// SHA-1 of a byte string as 40 lowercase hex digits: the identifier Redis gives a Lua script
// (EVALSHA). Computed locally so a script's id is known before the server has ever seen it.
// Not for security: SHA-1 here only names script bodies, exactly as Redis does.
#pragma once

#include <string>
#include <string_view>

namespace allot::redis {

[[nodiscard]] std::string sha1Hex(std::string_view data);

}  // namespace allot::redis

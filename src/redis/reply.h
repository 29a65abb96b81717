// A Redis reply as a plain value, copied out of hiredis's redisReply so that no hiredis
// memory outlives the call that produced it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace allot::redis {

struct Reply {
  enum class Type { kNil, kInteger, kString, kStatus, kError, kArray };
  Type type = Type::kNil;
  std::int64_t integer = 0;
  std::string str;  // kString, kStatus, kError
  std::vector<Reply> elements;

  [[nodiscard]] bool isNil() const { return type == Type::kNil; }
  [[nodiscard]] bool isError() const { return type == Type::kError; }
  [[nodiscard]] bool isInteger() const { return type == Type::kInteger; }
  [[nodiscard]] bool isString() const { return type == Type::kString; }
  [[nodiscard]] bool isArray() const { return type == Type::kArray; }
  // The error of an EVALSHA whose script the server does not hold (restart, failover, SCRIPT
  // FLUSH): the caller loads the body and runs it again.
  [[nodiscard]] bool isNoScript() const { return isError() && str.starts_with("NOSCRIPT"); }
};

}  // namespace allot::redis

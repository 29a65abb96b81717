// An integer's decimal digits appended to a string, without a temporary: for the encoders on
// the hot path (RESP lengths, script arguments, JSON numbers).
#pragma once

#include <array>
#include <charconv>
#include <concepts>
#include <string>

namespace allot {

inline void appendDecimal(std::string& out, std::integral auto value) {
  std::array<char, 24> digits{};
  const auto end = std::to_chars(digits.data(), digits.data() + digits.size(), value).ptr;
  out.append(digits.data(), end);
}

}  // namespace allot

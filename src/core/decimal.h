// Decimal integers in text: appended to a string without a temporary (for the encoders on the
// hot path: RESP lengths, script arguments, JSON numbers), and read back from text that must
// be nothing but the number.
#pragma once

#include <array>
#include <charconv>
#include <concepts>
#include <optional>
#include <string>
#include <string_view>

namespace allot {

inline void appendDecimal(std::string& out, std::integral auto value) {
  std::array<char, 24> digits{};
  const auto end = std::to_chars(digits.data(), digits.data() + digits.size(), value).ptr;
  out.append(digits.data(), end);
}

// The integer that is all of `text` (decimal digits, after a '-' for a signed type); none when
// the text is empty, holds anything else, or the value is out of Int's range.
template <std::integral Int>
[[nodiscard]] std::optional<Int> readDecimal(std::string_view text) {
  Int value{};
  const char* const end = text.data() + text.size();
  const auto [ptr, error] = std::from_chars(text.data(), end, value);
  if (text.empty() || error != std::errc{} || ptr != end) return std::nullopt;
  return value;
}

}  // namespace allot

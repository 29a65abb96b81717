// Decoding of %XX escapes (RFC 3986), shared by the query-string parser and the URL parsers.
// Hand-written rather than Boost.URL's: the Debian build of Boost 1.81 reads past the end of a
// string_view that is not NUL-terminated, and request targets never are.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace allot {

// The decoded text; nullopt for a truncated escape or one that is not two hex digits.
[[nodiscard]] inline std::optional<std::string> percentDecode(std::string_view text) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out.push_back(text[i]);
      continue;
    }
    if (i + 2 >= text.size()) return std::nullopt;
    const int high = hex(text[i + 1]);
    const int low = hex(text[i + 2]);
    if (high < 0 || low < 0) return std::nullopt;
    out.push_back(static_cast<char>(high * 16 + low));
    i += 2;
  }
  return out;
}

}  // namespace allot

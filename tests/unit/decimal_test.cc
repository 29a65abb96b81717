// core/decimal.h: decimal integers written without a temporary and read back only when the
// text is nothing but the number (every parser of numbers in Redis replies, stream ids, URLs,
// configuration and database cells reads through readDecimal).
#include "core/decimal.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>

namespace allot {
namespace {

TEST(Decimal, AppendsAndReadsBackEveryKindOfInteger) {
  std::string out = "n=";
  appendDecimal(out, std::int64_t{-42});
  appendDecimal(out, 7u);
  EXPECT_EQ(out, "n=-427");
  for (const std::int64_t value : {std::int64_t{0}, std::int64_t{-1}, std::int64_t{123456789},
                                   std::numeric_limits<std::int64_t>::min(),
                                   std::numeric_limits<std::int64_t>::max()}) {
    std::string text;
    appendDecimal(text, value);
    EXPECT_EQ(readDecimal<std::int64_t>(text), value) << text;
  }
}

TEST(Decimal, ReadsOnlyTextThatIsWhollyANumberInRange) {
  EXPECT_EQ(readDecimal<unsigned>("16383"), 16383u);
  EXPECT_EQ(readDecimal<std::uint64_t>("1733100000000"), 1733100000000u);
  for (const char* bad : {"", " 1", "1 ", "+1", "1.0", "0x10", "1-2", "--1", "12a"}) {
    EXPECT_FALSE(readDecimal<std::int64_t>(bad).has_value()) << "'" << bad << "'";
  }
  EXPECT_FALSE(readDecimal<unsigned>("-1").has_value());
  EXPECT_FALSE(readDecimal<int>("2147483648").has_value());
  EXPECT_FALSE(readDecimal<std::int64_t>("9223372036854775808").has_value());
}

}  // namespace
}  // namespace allot

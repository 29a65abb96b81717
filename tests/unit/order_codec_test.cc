// Tests of the order codec's digests: the identity of an order's requested lines, which tells a
// replay from a conflict in Redis and in the database alike, whatever order the lines come in.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "domain/order.h"

namespace allot {
namespace {

RecordKey key(const std::string& goods, const std::string& warehouse = "W1") {
  return RecordKey{"D1", goods, warehouse, "1", "1", "A"};
}

TEST(LinesDigest, IsTheSortedLinesWhateverTheirOrder) {
  const std::vector<LineRequest> given{{key("G2"), 3}, {key("G1", "W2"), 1}, {key("G1"), 7}};
  const std::vector<LineRequest> sorted{{key("G1"), 7}, {key("G1", "W2"), 1}, {key("G2"), 3}};
  EXPECT_EQ(linesDigest(given), encodeLineRequests(sorted));
  EXPECT_EQ(linesDigest(given), "G1|W1|1|1|A|7\nG1|W2|1|1|A|1\nG2|W1|1|1|A|3");
  EXPECT_EQ(linesDigest(sorted), linesDigest(given));
}

TEST(LinesDigest, DiffersWhenAQuantityOrARecordDiffers) {
  EXPECT_NE(linesDigest({{key("G1"), 7}}), linesDigest({{key("G1"), 8}}));
  EXPECT_NE(linesDigest({{key("G1"), 7}}), linesDigest({{key("G1", "W2"), 7}}));
}

TEST(LineDigest, EqualsTheDigestOfThatOneLine) {
  EXPECT_EQ(lineDigest(key("G1"), 5), linesDigest({{key("G1"), 5}}));
  EXPECT_EQ(lineDigest(key("G1"), 5), "G1|W1|1|1|A|5");
}

}  // namespace
}  // namespace allot

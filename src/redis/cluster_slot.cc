// Hash slots as Redis Cluster computes them (the cluster specification, "Keys distribution
// model"): CRC16-XMODEM of the key, or of its hash tag, mod 16384. The slot tag table lets
// callers build keys that land in a chosen slot, e.g. one outbox stream per slot.
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/assert.h"
#include "redis/client.h"

namespace allot::redis {
namespace {

constexpr std::size_t kSlotCount = 16384;
constexpr std::uint16_t kCrc16Polynomial = 0x1021;  // XMODEM: x^16 + x^12 + x^5 + 1
// Tags are drawn from lowercase letters and digits only, so they never contain a brace and
// read cleanly in keys.
constexpr std::string_view kTagAlphabet = "0123456789abcdefghijklmnopqrstuvwxyz";
// Four characters give 1.7 million candidates, far more than the ~170 000 that cover all
// 16384 slots; the bound only guards the loop.
constexpr std::size_t kTagLengthMax = 4;

constexpr std::array<std::uint16_t, 256> makeCrc16Table() {
  std::array<std::uint16_t, 256> table{};
  for (std::size_t byte = 0; byte < table.size(); ++byte) {
    auto crc = static_cast<std::uint16_t>(byte << 8);
    for (int bit = 0; bit < 8; ++bit) {
      crc = (crc & 0x8000) != 0 ? static_cast<std::uint16_t>((crc << 1) ^ kCrc16Polynomial)
                                : static_cast<std::uint16_t>(crc << 1);
    }
    table[byte] = crc;
  }
  return table;
}

constexpr std::array<std::uint16_t, 256> kCrc16Table = makeCrc16Table();

std::uint16_t crc16(std::string_view data) {
  std::uint16_t crc = 0;
  for (const char c : data) {
    const auto index = static_cast<std::uint8_t>((crc >> 8) ^ static_cast<std::uint8_t>(c));
    crc = static_cast<std::uint16_t>((crc << 8) ^ kCrc16Table[index]);
  }
  return crc;
}

// The part of the key that is hashed: the text between the first '{' and the first '}'
// after it, when that text is not empty; otherwise the whole key.
std::string_view hashTag(std::string_view key) {
  const std::size_t open = key.find('{');
  if (open == std::string_view::npos) return key;
  const std::size_t close = key.find('}', open + 1);
  if (close == std::string_view::npos || close == open + 1) return key;
  return key.substr(open + 1, close - open - 1);
}

// Steps an odometer of alphabet indexes to the next combination; false once every
// combination of this length has been seen.
bool advance(std::vector<std::size_t>& digits) {
  for (std::size_t position = digits.size(); position > 0; --position) {
    if (++digits[position - 1] < kTagAlphabet.size()) return true;
    digits[position - 1] = 0;
  }
  return false;
}

// Enumerates candidate tags, shortest first, keeping the first one found for each slot.
std::vector<std::string> buildSlotTags() {
  std::vector<std::string> tags(kSlotCount);
  std::size_t covered = 0;
  for (std::size_t length = 1; length <= kTagLengthMax && covered < kSlotCount; ++length) {
    std::vector<std::size_t> digits(length, 0);
    std::string candidate(length, kTagAlphabet[0]);
    do {
      for (std::size_t i = 0; i < length; ++i) candidate[i] = kTagAlphabet[digits[i]];
      std::string& tag = tags[keyHashSlot(candidate)];
      if (tag.empty()) {
        tag = candidate;
        ++covered;
      }
    } while (covered < kSlotCount && advance(digits));
  }
  ALLOT_ASSERT(covered == kSlotCount);
  for (std::size_t slot = 0; slot < kSlotCount; ++slot) {
    ALLOT_ASSERT(keyHashSlot(tags[slot]) == slot);
  }
  return tags;
}

}  // namespace

std::uint16_t keyHashSlot(std::string_view key) {
  return static_cast<std::uint16_t>(crc16(hashTag(key)) % kSlotCount);
}

const std::string& slotTag(std::uint16_t slot) {
  // Built once, on first use; a function-local static is initialised thread-safely.
  static const std::vector<std::string> tags = buildSlotTags();
  ALLOT_ASSERT(slot < kSlotCount);
  return tags[slot];
}

}  // namespace allot::redis

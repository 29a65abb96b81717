// SHA-1 as specified in FIPS 180-4, section 6.1: 512-bit blocks, 80 rounds, big-endian words.
#include "redis/sha1.h"

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>

namespace allot::redis {
namespace {

constexpr std::size_t kBlockBytes = 64;
constexpr std::size_t kLengthFieldBytes = 8;

using State = std::array<std::uint32_t, 5>;

void compressBlock(State& state, const unsigned char* block) {
  std::array<std::uint32_t, 80> words{};
  for (std::size_t i = 0; i < 16; ++i) {
    words[i] = (std::uint32_t{block[4 * i]} << 24) | (std::uint32_t{block[4 * i + 1]} << 16) |
               (std::uint32_t{block[4 * i + 2]} << 8) | std::uint32_t{block[4 * i + 3]};
  }
  for (std::size_t i = 16; i < 80; ++i) {
    words[i] = std::rotl(words[i - 3] ^ words[i - 8] ^ words[i - 14] ^ words[i - 16], 1);
  }
  std::uint32_t a = state[0], b = state[1], c = state[2], d = state[3], e = state[4];
  for (std::size_t i = 0; i < 80; ++i) {
    std::uint32_t f = 0;
    std::uint32_t k = 0;
    if (i < 20) {
      f = (b & c) | (~b & d);
      k = 0x5A827999;
    } else if (i < 40) {
      f = b ^ c ^ d;
      k = 0x6ED9EBA1;
    } else if (i < 60) {
      f = (b & c) | (b & d) | (c & d);
      k = 0x8F1BBCDC;
    } else {
      f = b ^ c ^ d;
      k = 0xCA62C1D6;
    }
    const std::uint32_t next = std::rotl(a, 5) + f + e + k + words[i];
    e = d;
    d = c;
    c = std::rotl(b, 30);
    b = a;
    a = next;
  }
  state[0] += a;
  state[1] += b;
  state[2] += c;
  state[3] += d;
  state[4] += e;
}

}  // namespace

std::string sha1Hex(std::string_view data) {
  State state{0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
  const auto* bytes = reinterpret_cast<const unsigned char*>(data.data());
  std::size_t offset = 0;
  for (; offset + kBlockBytes <= data.size(); offset += kBlockBytes) {
    compressBlock(state, bytes + offset);
  }

  // The tail: the remaining bytes, a single 1 bit, zeros, then the message length in bits,
  // spread over one or two final blocks.
  std::array<unsigned char, 2 * kBlockBytes> tail{};
  const std::size_t remaining = data.size() - offset;
  for (std::size_t i = 0; i < remaining; ++i) tail[i] = bytes[offset + i];
  tail[remaining] = 0x80;
  const std::size_t tail_bytes =
      remaining + 1 + kLengthFieldBytes <= kBlockBytes ? kBlockBytes : 2 * kBlockBytes;
  const std::uint64_t length_bits = static_cast<std::uint64_t>(data.size()) * 8;
  for (std::size_t i = 0; i < kLengthFieldBytes; ++i) {
    tail[tail_bytes - 1 - i] = static_cast<unsigned char>(length_bits >> (8 * i));
  }
  for (std::size_t block = 0; block < tail_bytes; block += kBlockBytes) {
    compressBlock(state, tail.data() + block);
  }

  static constexpr char kHexDigits[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(40);
  for (const std::uint32_t word : state) {
    for (int shift = 28; shift >= 0; shift -= 4) hex.push_back(kHexDigits[(word >> shift) & 0xF]);
  }
  return hex;
}

}  // namespace allot::redis

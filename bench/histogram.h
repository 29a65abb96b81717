// A latency histogram with logarithmic buckets: 16 buckets per power of two of microseconds,
// so a reported percentile is at most 6.25 % above the true value. Recording is one bit
// scan and one increment, cheap enough for every request of a load generator.
#pragma once

#include <array>
#include <cstdint>

namespace allot::bench {

class LatencyHistogram {
 public:
  void record(std::uint64_t micros);
  void merge(const LatencyHistogram& other);

  [[nodiscard]] std::uint64_t count() const { return count_; }
  // The upper edge of the bucket holding the p-th fraction (0 < p <= 1) of the samples, in
  // milliseconds; 0 when there are none.
  [[nodiscard]] double percentileMs(double fraction) const;
  [[nodiscard]] double meanMs() const;
  [[nodiscard]] double maxMs() const { return static_cast<double>(max_micros_) / 1000.0; }

 private:
  static constexpr int kSubBucketBits = 4;
  static constexpr int kSubBuckets = 1 << kSubBucketBits;
  // Values below kSubBuckets have a bucket each; every power of two above has kSubBuckets.
  static constexpr int kBucketCount = (64 - kSubBucketBits + 1) * kSubBuckets;

  [[nodiscard]] static int bucketOf(std::uint64_t micros);
  [[nodiscard]] static std::uint64_t upperEdgeOf(int bucket);

  std::array<std::uint64_t, kBucketCount> counts_{};
  std::uint64_t count_ = 0;
  std::uint64_t sum_micros_ = 0;
  std::uint64_t max_micros_ = 0;
};

}  // namespace allot::bench

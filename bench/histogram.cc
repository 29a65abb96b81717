#include "histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace allot::bench {

int LatencyHistogram::bucketOf(std::uint64_t micros) {
  if (micros < kSubBuckets) return static_cast<int>(micros);
  const int exponent = std::bit_width(micros) - 1;  // >= kSubBucketBits
  const int shift = exponent - kSubBucketBits;
  const auto sub_bucket = static_cast<int>((micros >> shift) & (kSubBuckets - 1));
  return (shift + 1) * kSubBuckets + sub_bucket;
}

std::uint64_t LatencyHistogram::upperEdgeOf(int bucket) {
  if (bucket < kSubBuckets) return static_cast<std::uint64_t>(bucket);
  const int shift = bucket / kSubBuckets - 1;
  const auto sub_bucket = static_cast<std::uint64_t>(bucket % kSubBuckets);
  const std::uint64_t lower = (kSubBuckets + sub_bucket) << shift;
  return lower + ((std::uint64_t{1} << shift) - 1);
}

void LatencyHistogram::record(std::uint64_t micros) {
  ++counts_[static_cast<std::size_t>(bucketOf(micros))];
  ++count_;
  sum_micros_ += micros;
  max_micros_ = std::max(max_micros_, micros);
}

void LatencyHistogram::merge(const LatencyHistogram& other) {
  for (std::size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
  count_ += other.count_;
  sum_micros_ += other.sum_micros_;
  max_micros_ = std::max(max_micros_, other.max_micros_);
}

double LatencyHistogram::percentileMs(double fraction) const {
  if (count_ == 0) return 0.0;
  const auto rank = static_cast<std::uint64_t>(std::ceil(fraction * static_cast<double>(count_)));
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < counts_.size(); ++i) {
    seen += counts_[i];
    if (seen >= std::max<std::uint64_t>(rank, 1)) {
      const auto edge = std::min(upperEdgeOf(static_cast<int>(i)), max_micros_);
      return static_cast<double>(edge) / 1000.0;
    }
  }
  return maxMs();
}

double LatencyHistogram::meanMs() const {
  if (count_ == 0) return 0.0;
  return static_cast<double>(sum_micros_) / static_cast<double>(count_) / 1000.0;
}

}  // namespace allot::bench

// The quantities of one record. on_hand is owned by the database of record; preallocated is
// what live holds keep; available = on_hand - preallocated is what a new order may take;
// shortage is demand accepted as backorder and not yet covered. None is ever negative and
// preallocated never exceeds on_hand.
#pragma once

#include <cstdint>

namespace allot {

struct Quantities {
  std::int64_t on_hand = 0;
  std::int64_t preallocated = 0;
  std::int64_t shortage = 0;

  [[nodiscard]] std::int64_t available() const { return on_hand - preallocated; }
  [[nodiscard]] bool valid() const {
    return on_hand >= 0 && preallocated >= 0 && shortage >= 0 && preallocated <= on_hand;
  }
  bool operator==(const Quantities&) const = default;
};

}  // namespace allot

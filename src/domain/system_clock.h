// The real clock: wall time in milliseconds (claims are compared across processes, so a
// steady clock of one process would not do) and a real sleep.
#pragma once

#include <chrono>
#include <thread>

#include "domain/ports.h"

namespace allot {

class SystemClock final : public Clock {
 public:
  std::int64_t nowMs() override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  void sleepMs(std::int64_t ms) override {
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  }
};

}  // namespace allot

// A background loop with a fixed tick: calls a step function every `tick` (the first call one
// tick after start, so a process that starts and stops quickly does no work) until stopped.
// stop() wakes the loop at once (no waiting out the tick) and joins it.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

namespace allot::workers {

class Periodic {
 public:
  Periodic(std::chrono::milliseconds tick, std::function<void()> step)
      : tick_(tick), step_(std::move(step)) {}
  ~Periodic() { stop(); }
  Periodic(const Periodic&) = delete;
  Periodic& operator=(const Periodic&) = delete;

  void start() {
    std::lock_guard lock(mutex_);
    if (thread_.joinable()) return;
    stopping_ = false;
    thread_ = std::thread([this] { loop(); });
  }

  void stop() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

 private:
  void loop() {
    std::unique_lock lock(mutex_);
    while (!wake_.wait_for(lock, tick_, [this] { return stopping_; })) {
      lock.unlock();
      step_();
      lock.lock();
    }
  }

  std::chrono::milliseconds tick_;
  std::function<void()> step_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace allot::workers

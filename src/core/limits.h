// Every limit in one place (TigerBeetle: "put a limit on everything"). Checked at the edge;
// the static_asserts keep related limits consistent with each other.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace allot::limits {

inline constexpr std::size_t kFieldLengthMax = 64;  // every record field, order_no
inline constexpr std::size_t kRefLengthMax = 64;    // adjust idempotency key
inline constexpr std::size_t kOrderLinesMax = 200;
inline constexpr std::int64_t kLineQtyMin = 1;
inline constexpr std::int64_t kLineQtyMax = 1'000'000'000;
inline constexpr std::int64_t kOnHandMax = 1'000'000'000'000;  // 10^12 units per record
inline constexpr std::int64_t kAdjustDeltaMax = kOnHandMax;
inline constexpr std::size_t kRequestBodyBytesMax = 256 * 1024;
inline constexpr std::size_t kRequestHeaderBytesMax = 16 * 1024;
inline constexpr std::size_t kJsonDepthMax = 8;

inline constexpr int kReverseAttemptsMax = 3;  // inline compensation retries
inline constexpr int kLoadAttemptsMax = 5;     // WATCH races before giving up
inline constexpr int kRedisRedirectsMax = 5;   // MOVED/ASK hops per call
inline constexpr std::size_t kRedisPoolSizeMax = 256;
// Commands written to one connection before their replies are read: bounds the buffers on
// both sides (and the server's time spent on one client's batch).
inline constexpr std::size_t kRedisPipelineCommandsMax = 1'000;
inline constexpr std::size_t kMysqlPoolSizeMax = 64;
inline constexpr std::size_t kHttpThreadsMax = 512;
inline constexpr std::size_t kNetworkThreadsMax = 64;
// Holds of one record coalesced into one script call: bounds the script's run time (Redis
// serves nothing else meanwhile) and its KEYS (two per hold).
inline constexpr std::size_t kHoldBatchMax = 64;
// Coalesced hold calls of one record in flight at once (each on its own connection).
inline constexpr std::size_t kHoldCallsInFlightMax = 2;

// Outbox events the write-back reads from one stream per pass (writeback_batch_events).
inline constexpr std::size_t kWriteBackBatchEventsMax = 10'000;

inline constexpr std::int64_t kOrderLeaseMs = 30'000;  // a pending order's claim
inline constexpr std::int64_t kBusyWaitMs = 2'000;     // how long a duplicate waits
// A call that held lines and has not answered is dead once its holds are this old: a claim's
// lease plus a margin for clock skew between MariaDB, which dates pending_orders rows, and
// Redis, which measures the lease (the pending-order scan and the MySQL path's rollback).
inline constexpr std::int64_t kDeadCallAgeMs = kOrderLeaseMs + 5'000;
inline constexpr std::int64_t kRetentionSecondsDefault = 7 * 24 * 3600;

// A full order of maximal lines must fit in a body well below the limit.
static_assert(kOrderLinesMax * (6 * kFieldLengthMax + 64) < kRequestBodyBytesMax);
static_assert(kLineQtyMax * static_cast<std::int64_t>(kOrderLinesMax) < kOnHandMax);
static_assert(kBusyWaitMs < kOrderLeaseMs);

}  // namespace allot::limits

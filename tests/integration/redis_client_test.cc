// The Redis client against real servers, standalone and cluster alike (every TEST_P runs in
// both modes): routing, scripts and NOSCRIPT recovery, redirects during a live slot
// migration, pooling under 32 threads, failures that must come back as kUnavailable within
// their timeout, and WATCH/MULTI sessions that must neither leak nor succeed when raced.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <latch>
#include <memory>
#include <ostream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/limits.h"
#include "redis/client.h"
#include "redis/cluster_routing.h"
#include "redis/connection.h"
#include "support/test_env.h"

namespace allot::redis {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

enum class Mode { kStandalone, kCluster };

std::string modeName(const ::testing::TestParamInfo<Mode>& info) {
  return info.param == Mode::kStandalone ? "Standalone" : "Cluster";
}

void PrintTo(Mode mode, std::ostream* out) {
  *out << (mode == Mode::kStandalone ? "standalone" : "cluster");
}

Reply status(std::string text) { return Reply{Reply::Type::kStatus, 0, std::move(text), {}}; }

std::string describe(const Reply& reply) {
  switch (reply.type) {
    case Reply::Type::kNil: return "nil";
    case Reply::Type::kInteger: return "integer " + std::to_string(reply.integer);
    case Reply::Type::kString: return "string '" + reply.str.substr(0, 80) + "'";
    case Reply::Type::kStatus: return "status '" + reply.str + "'";
    case Reply::Type::kError: return "error '" + reply.str + "'";
    case Reply::Type::kArray: return "array of " + std::to_string(reply.elements.size());
  }
  return "?";
}

// A reply that the test expects to arrive; a transport error fails the test and comes back
// as an error reply so the caller's own checks fail too.
Reply expectReply(const Result<Reply>& reply, const std::string& what) {
  EXPECT_TRUE(reply) << what << ": " << (reply ? "" : reply.error().message);
  if (!reply) return Reply{Reply::Type::kError, 0, "transport: " + reply.error().message, {}};
  return *reply;
}

bool isOk(const Reply& reply) { return reply.type == Reply::Type::kStatus && reply.str == "OK"; }

// A TCP port on 127.0.0.1 with nothing listening: bound once by the kernel's choice, then
// released.
int unusedPort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  EXPECT_GE(fd, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  socklen_t length = sizeof address;
  EXPECT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length), 0);
  ::close(fd);
  return ntohs(address.sin_port);
}

// A server that accepts TCP connections (the kernel completes the handshake) but never
// answers: the shape of a hung Redis.
class SilentServer {
 public:
  SilentServer() : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    EXPECT_GE(fd_, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    EXPECT_EQ(::listen(fd_, 16), 0);
    socklen_t length = sizeof address;
    EXPECT_EQ(::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length), 0);
    port_ = ntohs(address.sin_port);
  }
  ~SilentServer() { ::close(fd_); }
  SilentServer(const SilentServer&) = delete;
  SilentServer& operator=(const SilentServer&) = delete;
  [[nodiscard]] int port() const { return port_; }

 private:
  int fd_;
  int port_ = 0;
};

class RedisClientTest : public ::testing::TestWithParam<Mode> {
 protected:
  void SetUp() override {
    client_ = connectClient();
    ASSERT_NE(client_, nullptr);
    ASSERT_EQ(client_->isCluster(), GetParam() == Mode::kCluster);
  }

  std::string url() const {
    return GetParam() == Mode::kStandalone ? testing::redisUrl() : testing::redisClusterUrl();
  }

  std::unique_ptr<Client> connectClient(const std::function<void(ClientOptions&)>& adjust =
                                            [](ClientOptions&) {}) const {
    auto options = parseRedisUrl(url());
    EXPECT_TRUE(options) << url() << ": " << (options ? "" : options.error().message);
    if (!options) return nullptr;
    adjust(*options);
    auto client = Client::connect(*options);
    EXPECT_TRUE(client) << url() << ": " << (client ? "" : client.error().message);
    return client ? std::move(*client) : nullptr;
  }

  Reply run(std::string_view key, const std::vector<std::string>& argv) {
    return expectReply(client_->command(key, argv), argv.front());
  }

  std::int64_t clientId(Client& client, std::string_view key) {
    const Reply id = expectReply(client.command(key, {"CLIENT", "ID"}), "CLIENT ID");
    EXPECT_TRUE(id.isInteger()) << describe(id);
    return id.integer;
  }

  std::unique_ptr<Client> client_;
};

TEST_P(RedisClientTest, SetGetRoundTripsOnKeysSpreadOverAllMasters) {
  const std::string prefix = testing::uniqueName("roundtrip");
  const std::vector<std::string> values = {"", "plain", std::string("nul\0inside", 10),
                                           "crlf\r\n*1\r\n$3\r\nbad", std::string(1 << 20, 'v')};
  // Slots 0 and 16383 and every 97th between: every master owns a contiguous range, so all
  // of them are reached.
  for (std::uint32_t slot = 0; slot < kSlotCount;
       slot += (slot + 97 < kSlotCount ? 97 : 16383 - slot)) {
    const std::string key = "{" + slotTag(static_cast<std::uint16_t>(slot)) + "}" + prefix;
    ASSERT_EQ(keyHashSlot(key), slot);
    const std::string& value = values[slot % values.size()];
    EXPECT_TRUE(isOk(run(key, {"SET", key, value, "EX", "60"}))) << key;
    const Reply got = run(key, {"GET", key});
    EXPECT_TRUE(got.isString()) << describe(got);
    EXPECT_EQ(got.str, value) << key;
    if (slot == 16383) break;
  }
  const std::string missing = prefix + ":missing";
  EXPECT_TRUE(run(missing, {"GET", missing}).isNil());
  EXPECT_TRUE(run("", {"PING"}).type == Reply::Type::kStatus);
  const Reply wrong_type = run(prefix, {"HGET", "{" + slotTag(0) + "}" + prefix, "f"});
  EXPECT_TRUE(wrong_type.isError()) << describe(wrong_type);
}

// More commands than one round trip takes, on keys of every master, with a command that
// fails in the middle: every command gets its own answer, in order, and an error reply stays
// that command's answer alone.
TEST_P(RedisClientTest, PipelineAnswersEveryCommandInOrder) {
  const std::string prefix = testing::uniqueName("pipeline");
  const std::size_t count = 2 * limits::kRedisPipelineCommandsMax + 7;
  std::vector<RoutedCommand> commands;
  auto key_of = [&](std::size_t i) {
    return "{" + slotTag(static_cast<std::uint16_t>((i * 7919) % kSlotCount)) + "}" + prefix;
  };
  // Three commands per key (7919 is prime, so the keys are in distinct slots).
  for (std::size_t i = 0; i < count; ++i) {
    const std::string key = key_of(i / 3);
    if (i % 3 == 0) {
      commands.push_back({key, {"SET", key, "v" + std::to_string(i / 3), "EX", "60"}});
    } else if (i % 3 == 1) {
      commands.push_back({key, {"INCR", key}});  // the value is not an integer: an error reply
    } else {
      commands.push_back({key, {"GET", key}});
    }
  }
  commands.push_back({"", {"PING"}});
  const auto answers = client_->pipeline(commands);
  ASSERT_EQ(answers.size(), commands.size());
  for (std::size_t i = 0; i < count; ++i) {
    const Reply reply = expectReply(answers[i], commands[i].argv.front());
    if (i % 3 == 0) {
      EXPECT_TRUE(isOk(reply)) << i << ": " << describe(reply);
    } else if (i % 3 == 1) {
      EXPECT_TRUE(reply.isError()) << i << ": " << describe(reply);
    } else {
      EXPECT_EQ(reply.str, "v" + std::to_string(i / 3)) << i << ": " << describe(reply);
    }
  }
  EXPECT_EQ(expectReply(answers.back(), "PING").str, "PONG");
  EXPECT_TRUE(client_->pipeline({}).empty());
}

TEST_P(RedisClientTest, KeyIsStoredOnExactlyTheMasterThatOwnsItsSlot) {
  const std::vector<std::uint16_t> slots = {0, 5000, 5461, 9000, 10923, 16383};
  for (const std::uint16_t slot : slots) {
    const std::string key = "{" + slotTag(slot) + "}" + testing::uniqueName("owner");
    ASSERT_TRUE(isOk(run(key, {"SET", key, "1", "EX", "60"})));
    auto replies = client_->commandOnMasters({"EXISTS", key});
    ASSERT_TRUE(replies) << replies.error().message;
    int holders = 0;
    for (const Reply& reply : *replies) {
      if (reply.isInteger()) {
        holders += static_cast<int>(reply.integer);
      } else {
        // Masters that do not own the slot answer MOVED, which commandOnMasters returns as is.
        EXPECT_TRUE(reply.isError() && reply.str.starts_with("MOVED ")) << describe(reply);
      }
    }
    EXPECT_EQ(holders, 1) << "slot " << slot;
  }
}

TEST_P(RedisClientTest, CommandOnMastersReachesEachMasterOnce) {
  const Reply slots = run("", {"INFO", "server"});
  ASSERT_TRUE(slots.isString());
  auto replies = client_->commandOnMasters({"INFO", "server"});
  ASSERT_TRUE(replies) << replies.error().message;
  std::set<std::string> run_ids;
  for (const Reply& reply : *replies) {
    ASSERT_TRUE(reply.isString()) << describe(reply);
    const std::size_t at = reply.str.find("run_id:");
    ASSERT_NE(at, std::string::npos);
    run_ids.insert(reply.str.substr(at, 47));
  }
  EXPECT_EQ(run_ids.size(), replies->size()) << "a master was asked twice";
  if (GetParam() == Mode::kStandalone) {
    EXPECT_EQ(replies->size(), 1u);
  } else {
    EXPECT_GE(replies->size(), 2u);
  }
}

TEST_P(RedisClientTest, EvalScriptOnKeysInOneSlot) {
  const Script script(
      "pair",
      "redis.call('SET', KEYS[1], ARGV[1], 'EX', 60)\n"
      "redis.call('SET', KEYS[2], ARGV[2], 'EX', 60)\n"
      "return {redis.call('GET', KEYS[1]), redis.call('GET', KEYS[2]), #KEYS, #ARGV}");
  const std::string name = testing::uniqueName("eval");
  const std::vector<std::vector<std::string>> key_sets = {
      {"{" + name + "}a", "{" + name + "}b"},
      {"{" + slotTag(0) + "}" + name, "x{" + slotTag(0) + "}" + name},
      {"{" + slotTag(16383) + "}1" + name, "{" + slotTag(16383) + "}2" + name},
      {"{" + slotTag(7000) + "}" + name, "{" + slotTag(7000) + "}" + name + ":other"},
  };
  for (const auto& keys : key_sets) {
    const Reply reply =
        expectReply(client_->evalScript(script, keys, {"one", std::string("t\0o", 3)}), keys[0]);
    ASSERT_TRUE(reply.isArray()) << describe(reply);
    ASSERT_EQ(reply.elements.size(), 4u);
    EXPECT_EQ(reply.elements[0].str, "one");
    EXPECT_EQ(reply.elements[1].str, std::string("t\0o", 3));
    EXPECT_EQ(reply.elements[2].integer, 2);
    EXPECT_EQ(reply.elements[3].integer, 2);
  }
}

TEST_P(RedisClientTest, ScriptReturnTypesConvert) {
  struct Case {
    std::string body;
    Reply::Type type;
    std::string str;
    std::int64_t integer;
  };
  const std::vector<Case> cases = {
      {"return 42", Reply::Type::kInteger, "", 42},
      {"return -7", Reply::Type::kInteger, "", -7},
      {"return 'text'", Reply::Type::kString, "text", 0},
      {"return false", Reply::Type::kNil, "", 0},
      {"return redis.status_reply('FINE')", Reply::Type::kStatus, "FINE", 0},
      {"return redis.error_reply('BOOM custom failure')", Reply::Type::kError,
       "BOOM custom failure", 0},
      {"return {}", Reply::Type::kArray, "", 0},
  };
  const std::string key = testing::uniqueName("types");
  for (const Case& test : cases) {
    const Reply reply =
        expectReply(client_->evalScript(Script("t", test.body), {key}, {}), test.body);
    EXPECT_EQ(reply.type, test.type) << test.body << " gave " << describe(reply);
    if (test.type == Reply::Type::kInteger) {
      EXPECT_EQ(reply.integer, test.integer) << test.body;
    }
    if (!test.str.empty()) {
      EXPECT_EQ(reply.str, test.str) << test.body;
    }
  }
}

TEST_P(RedisClientTest, ScriptErrorsComeBackAsErrorReplies) {
  const std::vector<std::string> bodies = {
      "error('deliberate')",                          // runtime error
      "return redis.call('INCR', KEYS[1], 'extra')",  // wrong arity inside the script
      "return (",                                     // does not compile: SCRIPT LOAD fails
      "return redis.call('HGET', KEYS[1], 'f')",      // wrong type: the key holds a string
  };
  const std::string key = testing::uniqueName("script-error");
  ASSERT_TRUE(isOk(run(key, {"SET", key, "s", "EX", "60"})));
  for (const std::string& body : bodies) {
    auto reply = client_->evalScript(Script("bad", body), {key}, {});
    ASSERT_TRUE(reply) << body
                       << ": an error reply is a value, not a failure: " << reply.error().message;
    EXPECT_TRUE(reply->isError()) << body << " gave " << describe(*reply);
    EXPECT_FALSE(reply->str.empty()) << body;
  }
}

TEST_P(RedisClientTest, KeysInDifferentSlotsAreRefusedBeforeSending) {
  const Script script("two", "return 1");
  auto reply = client_->evalScript(script, {"{" + slotTag(1) + "}a", "{" + slotTag(2) + "}b"}, {});
  ASSERT_FALSE(reply);
  EXPECT_EQ(reply.error().code, ErrorCode::kInternal);
}

TEST_P(RedisClientTest, LocalSha1EqualsScriptLoad) {
  const std::vector<std::string> bodies = {"return 1", "-- comment\nreturn redis.call('PING')\n",
                                           "return 'caf\xc3\xa9 \xe2\x82\xac'",
                                           std::string(5000, ' ') + "return 2"};
  for (const std::string& body : bodies) {
    const Script script("sha", body);
    auto replies = client_->commandOnMasters({"SCRIPT", "LOAD", body});
    ASSERT_TRUE(replies) << replies.error().message;
    for (const Reply& reply : *replies) {
      EXPECT_TRUE(reply.isString()) << describe(reply);
      EXPECT_EQ(reply.str, script.sha1()) << body.substr(0, 40);
    }
  }
}

TEST_P(RedisClientTest, NoscriptAfterScriptFlushIsTransparent) {
  // A body no server has seen, so the very first call meets NOSCRIPT too.
  const std::string name = testing::uniqueName("noscript");
  const Script script("counter", "-- " + name + "\nreturn redis.call('INCR', KEYS[1])");
  const std::vector<std::string> keys = {"{" + name + "}n", "{" + slotTag(0) + "}" + name,
                                         "{" + slotTag(16383) + "}" + name};
  for (const std::string& key : keys) {
    ASSERT_TRUE(isOk(run(key, {"SET", key, "0", "EX", "60"})));
  }
  for (int round = 1; round <= 3; ++round) {
    for (const std::string& key : keys) {
      const Reply reply = expectReply(client_->evalScript(script, {key}, {}), key);
      EXPECT_TRUE(reply.isInteger()) << describe(reply);
      EXPECT_EQ(reply.integer, round) << key;
    }
    auto flushed = client_->commandOnMasters({"SCRIPT", "FLUSH"});
    ASSERT_TRUE(flushed) << flushed.error().message;
    for (const Reply& reply : *flushed) EXPECT_TRUE(isOk(reply)) << describe(reply);
    auto exists = client_->commandOnMasters({"SCRIPT", "EXISTS", script.sha1()});
    ASSERT_TRUE(exists);
    for (const Reply& reply : *exists) {
      ASSERT_TRUE(reply.isArray() && reply.elements.size() == 1) << describe(reply);
      EXPECT_EQ(reply.elements[0].integer, 0) << "SCRIPT FLUSH did not flush";
    }
  }
}

TEST_P(RedisClientTest, ConcurrentUseFrom32Threads) {
  constexpr int kThreads = 32;
  constexpr int kRounds = 100;
  // Fewer connections than threads, so callers also wait for each other in the pool.
  auto client = connectClient([](ClientOptions& options) { options.pool_size_per_node = 8; });
  ASSERT_NE(client, nullptr);
  const std::string name = testing::uniqueName("threads");
  const std::string shared = "{" + name + "}shared";
  const Script add("add", "return redis.call('INCRBY', KEYS[1], ARGV[1])");
  std::latch start(kThreads);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const std::string own = name + ":" + std::to_string(t);
      start.arrive_and_wait();
      for (int round = 0; round < kRounds; ++round) {
        auto incremented = client->command(own, {"INCR", own});
        auto added = client->evalScript(add, {shared}, {"2"});
        if (!incremented || !incremented->isInteger() || incremented->integer != round + 1 ||
            !added || !added->isInteger()) {
          failures.fetch_add(1);
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  const Reply total = expectReply(client->command(shared, {"GET", shared}), "GET shared");
  EXPECT_EQ(total.str, std::to_string(2 * kThreads * kRounds));
  for (int t = 0; t < kThreads; ++t) {
    const std::string own = name + ":" + std::to_string(t);
    EXPECT_EQ(expectReply(client->command(own, {"GET", own}), own).str, std::to_string(kRounds));
    (void)client->command(own, {"DEL", own});
  }
  (void)client->command(shared, {"DEL", shared});
}

TEST_P(RedisClientTest, CommandTimeoutIsUnavailableAndTheConnectionIsReplaced) {
  auto client = connectClient([](ClientOptions& options) {
    options.command_timeout = milliseconds(300);
    options.pool_size_per_node = 1;
  });
  ASSERT_NE(client, nullptr);
  const std::string key = testing::uniqueName("timeout");
  const std::int64_t before = clientId(*client, key);
  const auto started = steady_clock::now();
  // BLPOP on an empty list blocks on the server for 5 s, far beyond the 300 ms timeout.
  auto blocked = client->command(key, {"BLPOP", key, "5"});
  const auto elapsed = steady_clock::now() - started;
  ASSERT_FALSE(blocked) << describe(*blocked);
  EXPECT_EQ(blocked.error().code, ErrorCode::kUnavailable);
  EXPECT_GE(elapsed, milliseconds(250));
  EXPECT_LT(elapsed, milliseconds(1500));
  // The timed-out connection still has a reply in flight; it must not be reused.
  const std::int64_t after = clientId(*client, key);
  EXPECT_NE(after, before);
  EXPECT_TRUE(expectReply(client->command(key, {"GET", key}), "GET").isNil());

  // Even when a session swallows the failure, the broken connection is not pooled again.
  auto session = client->withConnection(key, [&](Connection& connection) -> Result<Reply> {
    auto timed_out = connection.command({"BLPOP", key, "5"});
    if (timed_out) return fail(ErrorCode::kInternal, "BLPOP answered: " + describe(*timed_out));
    return status("OK");
  });
  ASSERT_TRUE(session) << session.error().message;
  const std::int64_t replaced = clientId(*client, key);
  EXPECT_NE(replaced, after);
  EXPECT_NE(replaced, 0);
}

// A command, or a pipeline, on a connection the server killed: it fails as unavailable (a
// pipeline: each of that node's commands, since which of them ran is unknown), the connection
// is replaced, and the next call is answered.
TEST_P(RedisClientTest, KilledConnectionIsUnavailableOnceThenReplaced) {
  for (const bool pipelined : {false, true}) {
    SCOPED_TRACE(pipelined ? "pipeline" : "command");
    auto client = connectClient([](ClientOptions& options) { options.pool_size_per_node = 1; });
    ASSERT_NE(client, nullptr);
    const std::string key = testing::uniqueName("killed");
    const std::int64_t victim = clientId(*client, key);
    const Reply killed = run(key, {"CLIENT", "KILL", "ID", std::to_string(victim)});
    ASSERT_TRUE(killed.isInteger() && killed.integer == 1) << describe(killed);

    const std::vector<RoutedCommand> commands{
        {key, {"GET", key}}, {key, {"EXISTS", key}}, {key, {"GET", key}}};
    const auto failed = pipelined ? client->pipeline(commands)
                                  : std::vector<Result<Reply>>{client->command(key, {"GET", key})};
    for (const auto& answer : failed) {
      ASSERT_FALSE(answer) << "a killed connection answered: " << describe(*answer);
      EXPECT_EQ(answer.error().code, ErrorCode::kUnavailable);
    }
    if (pipelined) {
      const auto answered = client->pipeline(commands);
      EXPECT_TRUE(expectReply(answered[0], "GET").isNil());
      EXPECT_EQ(expectReply(answered[1], "EXISTS").integer, 0);
    }
    EXPECT_NE(clientId(*client, key), victim);
  }
}

TEST_P(RedisClientTest, PoolCheckoutWaitsAtMostTheCommandTimeout) {
  auto client = connectClient([](ClientOptions& options) {
    options.command_timeout = milliseconds(300);
    options.pool_size_per_node = 1;
  });
  ASSERT_NE(client, nullptr);
  const std::string key = testing::uniqueName("pool");
  milliseconds waited{0};
  auto session = client->withConnection(key, [&](Connection&) -> Result<Reply> {
    // The only connection to this node is lent to us, so this call has to wait for it.
    const auto started = steady_clock::now();
    auto inner = client->command(key, {"PING"});
    waited = std::chrono::duration_cast<milliseconds>(steady_clock::now() - started);
    if (inner) return fail(ErrorCode::kInternal, "got a second connection: " + describe(*inner));
    if (inner.error().code != ErrorCode::kUnavailable) return std::unexpected(inner.error());
    return status("OK");
  });
  ASSERT_TRUE(session) << session.error().message;
  EXPECT_GE(waited, milliseconds(250));
  EXPECT_LT(waited, milliseconds(1500));
  EXPECT_TRUE(expectReply(client->command(key, {"PING"}), "PING after").type ==
              Reply::Type::kStatus);
}

TEST_P(RedisClientTest, WatchMultiExecAbortsOnlyWhenTheKeyIsTouched) {
  auto other = connectClient();
  ASSERT_NE(other, nullptr);
  for (const bool touch : {false, true}) {
    const std::string key = testing::uniqueName("watch");
    ASSERT_TRUE(isOk(run(key, {"SET", key, "0", "EX", "60"})));
    auto exec = client_->withConnection(key, [&](Connection& connection) -> Result<Reply> {
      ALLOT_TRY(watched, connection.command({"WATCH", key}));
      if (!isOk(watched)) return fail(ErrorCode::kInternal, "WATCH: " + describe(watched));
      if (touch) {
        auto touched = other->command(key, {"SET", key, "touched", "EX", "60"});
        if (!touched || !isOk(*touched)) return fail(ErrorCode::kInternal, "touch failed");
      }
      ALLOT_TRY(multi, connection.command({"MULTI"}));
      ALLOT_TRY(queued, connection.command({"SET", key, "mine", "EX", "60"}));
      if (!isOk(multi) || queued.str != "QUEUED") {
        return fail(ErrorCode::kInternal, "MULTI: " + describe(multi) + ", " + describe(queued));
      }
      return connection.command({"EXEC"});
    });
    ASSERT_TRUE(exec) << exec.error().message;
    if (touch) {
      EXPECT_TRUE(exec->isNil()) << "EXEC ran although the key changed: " << describe(*exec);
      EXPECT_EQ(run(key, {"GET", key}).str, "touched");
    } else {
      ASSERT_TRUE(exec->isArray()) << describe(*exec);
      EXPECT_EQ(run(key, {"GET", key}).str, "mine");
    }
  }
}

TEST_P(RedisClientTest, WithConnectionLeavesNoTransactionStateBehind) {
  // One connection per node, so every session and command below shares the same one.
  auto client = connectClient([](ClientOptions& options) { options.pool_size_per_node = 1; });
  auto other = connectClient();
  ASSERT_NE(client, nullptr);
  ASSERT_NE(other, nullptr);
  const std::string key = testing::uniqueName("leak");

  // A session that stops inside MULTI: the next user must not find its commands QUEUED.
  auto abandoned = client->withConnection(key, [&](Connection& connection) -> Result<Reply> {
    ALLOT_TRY(watched, connection.command({"WATCH", key}));
    return connection.command({"MULTI"});
  });
  ASSERT_TRUE(abandoned) << abandoned.error().message;
  EXPECT_TRUE(isOk(expectReply(client->command(key, {"SET", key, "a", "EX", "60"}), "SET")));

  // A session that stops after WATCH: a later transaction must not inherit the watch.
  auto watching = client->withConnection(key, [&](Connection& connection) {
    return connection.command({"WATCH", key});
  });
  ASSERT_TRUE(watching) << watching.error().message;
  ASSERT_TRUE(isOk(expectReply(other->command(key, {"SET", key, "b", "EX", "60"}), "touch")));
  auto exec = client->withConnection(key, [&](Connection& connection) -> Result<Reply> {
    ALLOT_TRY(multi, connection.command({"MULTI"}));
    ALLOT_TRY(queued, connection.command({"SET", key, "c", "EX", "60"}));
    return connection.command({"EXEC"});
  });
  ASSERT_TRUE(exec) << exec.error().message;
  EXPECT_TRUE(exec->isArray()) << "an old WATCH leaked into this EXEC: " << describe(*exec);

  // A session that fails gives its connection up instead of returning it.
  const std::int64_t before = clientId(*client, key);
  auto failed = client->withConnection(key, [](Connection&) -> Result<Reply> {
    return fail(ErrorCode::kUnavailable, "simulated failure mid-session");
  });
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(clientId(*client, key), before);
}

INSTANTIATE_TEST_SUITE_P(Modes, RedisClientTest,
                         ::testing::Values(Mode::kStandalone, Mode::kCluster), modeName);

TEST(RedisClientFailure, NothingListeningIsUnavailableWithinTheConnectTimeout) {
  const int dead = unusedPort();
  const int dead_too = unusedPort();
  const std::vector<std::vector<std::string>> seed_sets = {
      {"127.0.0.1:" + std::to_string(dead)},
      {"127.0.0.1:" + std::to_string(dead), "127.0.0.1:" + std::to_string(dead_too)},
  };
  for (const auto& seeds : seed_sets) {
    ClientOptions options;
    options.seeds = seeds;
    options.connect_timeout = milliseconds(500);
    const auto started = steady_clock::now();
    auto client = Client::connect(options);
    const auto elapsed = steady_clock::now() - started;
    ASSERT_FALSE(client) << seeds.size() << " seeds";
    EXPECT_EQ(client.error().code, ErrorCode::kUnavailable);
    EXPECT_NE(client.error().message.find(std::to_string(dead)), std::string::npos)
        << client.error().message;
    EXPECT_LT(elapsed, milliseconds(500) * static_cast<int>(seeds.size()) + milliseconds(500));
  }
}

TEST(RedisClientFailure, SilentServerIsUnavailableWithinTheCommandTimeout) {
  SilentServer silent;
  ClientOptions options;
  options.seeds = {"127.0.0.1:" + std::to_string(silent.port())};
  options.command_timeout = milliseconds(300);
  const auto started = steady_clock::now();
  auto client = Client::connect(options);
  const auto elapsed = steady_clock::now() - started;
  ASSERT_FALSE(client);
  EXPECT_EQ(client.error().code, ErrorCode::kUnavailable);
  EXPECT_GE(elapsed, milliseconds(250));
  EXPECT_LT(elapsed, milliseconds(1500));
}

TEST(RedisClientFailure, InvalidOptionsAreRejected) {
  const std::vector<std::function<void(ClientOptions&)>> breakers = {
      [](ClientOptions& o) { o.seeds.clear(); },
      [](ClientOptions& o) { o.seeds = {"no-port"}; },
      [](ClientOptions& o) { o.pool_size_per_node = 0; },
      [](ClientOptions& o) { o.connect_timeout = milliseconds(0); },
      [](ClientOptions& o) { o.command_timeout = milliseconds(-1); },
  };
  for (std::size_t i = 0; i < breakers.size(); ++i) {
    ClientOptions options;
    options.seeds = {"127.0.0.1:1"};
    breakers[i](options);
    auto client = Client::connect(options);
    ASSERT_FALSE(client) << "case " << i;
    EXPECT_EQ(client.error().code, ErrorCode::kInvalidRequest) << "case " << i;
  }
}

TEST(RedisClientFailure, WrongPasswordIsUnavailable) {
  auto options = parseRedisUrl(testing::redisUrl());
  ASSERT_TRUE(options);
  options->password = "not-the-password";
  auto client = Client::connect(*options);
  ASSERT_FALSE(client);
  EXPECT_EQ(client.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(client.error().message.find("AUTH"), std::string::npos) << client.error().message;
}

// ---- Cluster only: one seed of a cluster, and redirects during a live slot migration. ----

struct ClusterNode {
  std::string id;
  NodeAddress address;
  std::vector<std::pair<int, int>> ranges;  // served slots, first to last inclusive
};

// The masters that serve slots, from CLUSTER NODES ("<id> <ip:port@cport[,host]> <flags> ...").
std::vector<ClusterNode> clusterMasters(Client& client) {
  const Reply nodes = expectReply(client.command("", {"CLUSTER", "NODES"}), "CLUSTER NODES");
  std::vector<ClusterNode> masters;
  std::istringstream lines(nodes.str);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream fields(line);
    std::string id, endpoint, flags, master, ping, pong, epoch, link, range;
    fields >> id >> endpoint >> flags >> master >> ping >> pong >> epoch >> link;
    if (flags.find("master") == std::string::npos || flags.find("fail") != std::string::npos) {
      continue;
    }
    auto address = parseNodeAddress(endpoint.substr(0, endpoint.find('@')));
    EXPECT_TRUE(address) << endpoint;
    if (!address) continue;
    ClusterNode node{id, *address, {}};
    while (fields >> range) {
      if (range.starts_with('[')) continue;  // a slot being imported or migrated
      const std::size_t dash = range.find('-');
      const int first = std::stoi(range.substr(0, dash));
      node.ranges.emplace_back(
          first, dash == std::string::npos ? first : std::stoi(range.substr(dash + 1)));
    }
    if (!node.ranges.empty()) masters.push_back(std::move(node));
  }
  return masters;
}

Reply onNode(const NodeAddress& node, const std::vector<std::string>& argv) {
  auto connection = NodeConnection::open(node, ConnectionSettings{});
  EXPECT_TRUE(connection) << node.name() << ": " << (connection ? "" : connection.error().message);
  if (!connection) return Reply{Reply::Type::kError, 0, "no connection", {}};
  return expectReply((*connection)->command(argv), node.name() + " " + argv.front());
}

// Moves `slot` and its keys from `from` to `to` the way redis-cli --cluster reshard does.
// `between` runs while the slot is half-moved (MIGRATING on `from`, IMPORTING on `to`).
void migrateSlot(std::uint16_t slot, const ClusterNode& from, const ClusterNode& to,
                 const std::vector<ClusterNode>& masters, const std::function<void()>& between) {
  const std::string s = std::to_string(slot);
  ASSERT_TRUE(isOk(onNode(to.address, {"CLUSTER", "SETSLOT", s, "IMPORTING", from.id})));
  ASSERT_TRUE(isOk(onNode(from.address, {"CLUSTER", "SETSLOT", s, "MIGRATING", to.id})));
  between();
  while (true) {
    const Reply keys = onNode(from.address, {"CLUSTER", "GETKEYSINSLOT", s, "100"});
    ASSERT_TRUE(keys.isArray()) << describe(keys);
    if (keys.elements.empty()) break;
    std::vector<std::string> argv = {
        "MIGRATE", to.address.host, std::to_string(to.address.port), "", "0", "5000", "KEYS"};
    for (const Reply& key : keys.elements) argv.push_back(key.str);
    const Reply migrated = onNode(from.address, argv);
    ASSERT_TRUE(isOk(migrated)) << describe(migrated);
  }
  ASSERT_TRUE(isOk(onNode(to.address, {"CLUSTER", "SETSLOT", s, "NODE", to.id})));
  ASSERT_TRUE(isOk(onNode(from.address, {"CLUSTER", "SETSLOT", s, "NODE", to.id})));
  for (const ClusterNode& master : masters) {
    if (master.id != from.id && master.id != to.id) {
      EXPECT_TRUE(isOk(onNode(master.address, {"CLUSTER", "SETSLOT", s, "NODE", to.id})));
    }
  }
}

class RedisClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto options = parseRedisUrl(testing::redisClusterUrl());
    ASSERT_TRUE(options) << (options ? "" : options.error().message);
    options_ = *options;
  }
  ClientOptions options_;
};

TEST_F(RedisClusterTest, OneSeedThatIsAClusterNodeMeansClusterMode) {
  ClientOptions one_seed = options_;
  one_seed.seeds.resize(1);
  auto client = Client::connect(one_seed);
  ASSERT_TRUE(client) << client.error().message;
  EXPECT_TRUE((*client)->isCluster());
  const std::string name = testing::uniqueName("one-seed");
  for (const std::uint16_t slot : {0, 8000, 16383}) {
    const std::string key = "{" + slotTag(slot) + "}" + name;
    EXPECT_TRUE(isOk(expectReply((*client)->command(key, {"SET", key, "v", "EX", "60"}), key)));
  }
}

TEST_F(RedisClusterTest, MovedAndAskAreFollowedDuringASlotMigration) {
  auto client_result = Client::connect(options_);
  auto session_client = Client::connect(options_);
  ASSERT_TRUE(client_result) << client_result.error().message;
  ASSERT_TRUE(session_client) << session_client.error().message;
  Client& client = **client_result;  // its slot map is loaded now and goes stale below
  const std::vector<ClusterNode> masters = clusterMasters(client);
  ASSERT_GE(masters.size(), 2u);

  const std::string key = testing::uniqueName("moving");
  const std::uint16_t slot = keyHashSlot(key);
  const ClusterNode* from = nullptr;
  for (const ClusterNode& master : masters) {
    for (const auto& [first, last] : master.ranges) {
      if (first <= slot && slot <= last) from = &master;
    }
  }
  ASSERT_NE(from, nullptr) << "no master serves slot " << slot;
  const ClusterNode& to = masters[from == &masters[0] ? 1 : 0];
  ASSERT_TRUE(isOk(expectReply(client.command(key, {"SET", key, "before", "EX", "300"}), "SET")));

  const std::string asked_key = "{" + key + "}asked";
  const Script script("get", "return redis.call('GET', KEYS[1])");
  migrateSlot(slot, *from, to, masters, [&] {
    // The key does not exist on the old owner, which answers ASK: the write lands on the
    // importing node, and a read finds it there through another ASK.
    EXPECT_TRUE(
        isOk(expectReply(client.command(asked_key, {"SET", asked_key, "asked", "EX", "300"}),
                         "SET during migration")));
    EXPECT_EQ(expectReply(client.evalScript(script, {asked_key}, {}), "eval during").str, "asked");
    // A key the old owner still holds is served by the old owner.
    EXPECT_EQ(expectReply(client.command(key, {"GET", key}), "GET during").str, "before");
    // The same in a pipeline: the ASK is followed for its command alone.
    const auto answers =
        client.pipeline({{key, {"GET", key}}, {asked_key, {"GET", asked_key}}, {"", {"PING"}}});
    ASSERT_EQ(answers.size(), 3u);
    EXPECT_EQ(expectReply(answers[0], "pipelined GET during").str, "before");
    EXPECT_EQ(expectReply(answers[1], "pipelined GET of the asked key").str, "asked");
    EXPECT_EQ(expectReply(answers[2], "pipelined PING").str, "PONG");
  });
  EXPECT_EQ(onNode(to.address, {"EXISTS", key}).integer, 1) << "the key did not move";

  // The client's map still names the old owner: MOVED must take it to the new one, in a
  // pipeline as for one command.
  const auto answers = client.pipeline({{key, {"GET", key}}, {asked_key, {"GET", asked_key}}});
  ASSERT_EQ(answers.size(), 2u);
  EXPECT_EQ(expectReply(answers[0], "pipelined GET after").str, "before");
  EXPECT_EQ(expectReply(answers[1], "pipelined GET of the asked key after").str, "asked");
  EXPECT_EQ(expectReply(client.command(key, {"GET", key}), "GET after").str, "before");
  EXPECT_EQ(expectReply(client.evalScript(script, {asked_key}, {}), "eval after").str, "asked");
  // Inside a session a MOVED is the session's answer, but it still corrects the map, so
  // the caller's retry of the whole session reaches the new owner.
  const auto getInSession = [&] {
    return (*session_client)->withConnection(key, [&](Connection& connection) {
      return connection.command({"GET", key});
    });
  };
  const Reply moved = expectReply(getInSession(), "session GET");
  EXPECT_TRUE(moved.isError() && moved.str.starts_with("MOVED ")) << describe(moved);
  EXPECT_EQ(expectReply(getInSession(), "session GET retried").str, "before");

  auto fresh = Client::connect(options_);
  ASSERT_TRUE(fresh);
  EXPECT_EQ(expectReply((*fresh)->command(key, {"GET", key}), "fresh GET").str, "before");

  // Put the slot back, and check that a client whose map says "to" follows MOVED back too.
  migrateSlot(slot, to, *from, clusterMasters(client), [] {});
  EXPECT_EQ(expectReply((*fresh)->command(key, {"GET", key}), "GET back").str, "before");
  EXPECT_EQ(onNode(from->address, {"EXISTS", key}).integer, 1) << "the key did not move back";
}

}  // namespace
}  // namespace allot::redis

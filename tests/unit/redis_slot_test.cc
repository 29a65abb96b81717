// The pure parts of the Redis client, without a server: hash slots and slot tags, script
// SHA-1, URL and address parsing, and reading CLUSTER SLOTS and redirect replies. Reference
// values come from a real Redis 7 (CLUSTER KEYSLOT) and from FIPS 180 / Python's hashlib.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "redis/client.h"
#include "redis/cluster_routing.h"
#include "redis/connection.h"
#include "redis/keys.h"
#include "redis/sha1.h"

namespace allot::redis {
namespace {

Reply str(std::string text) { return Reply{Reply::Type::kString, 0, std::move(text), {}}; }
Reply integer(std::int64_t value) { return Reply{Reply::Type::kInteger, value, {}, {}}; }
Reply error(std::string text) { return Reply{Reply::Type::kError, 0, std::move(text), {}}; }
Reply array(std::vector<Reply> elements) {
  return Reply{Reply::Type::kArray, 0, {}, std::move(elements)};
}

TEST(KeyHashSlot, MatchesRedis) {
  struct Case {
    std::string key;
    std::uint16_t slot;
  };
  const std::vector<Case> cases = {
      {"", 0},
      {"foo", 12182},
      {"bar", 5061},
      {"hello", 866},
      {"123456789", 12739},  // CRC16-XMODEM check value 0x31C3
      {"user1000", 3443},
      {"{user1000}.following", 3443},  // the tag alone is hashed
      {"foo{}{bar}", 8363},            // empty first tag: the whole key is hashed
      {"{}", 15257},
      {"foo{{bar}}zap", 4015},  // the tag is "{bar", up to the first '}'
      {"foo{bar}{zap}", 5061},  // only the first tag counts
      {"a{b", 13340},           // no closing brace: whole key
      {"a}b{c}", 7365},         // a '}' before the '{' does not close anything
      {std::string("\0\xff", 2), keyHashSlot(std::string("\0\xff", 2))},
  };
  for (const Case& test : cases) {
    EXPECT_EQ(keyHashSlot(test.key), test.slot) << "key '" << test.key << "'";
  }
  EXPECT_EQ(keyHashSlot("{user1000}.following"), keyHashSlot("{user1000}.followers"));
  EXPECT_EQ(keyHashSlot("a}b{c}"), keyHashSlot("c"));
}

TEST(SlotTag, EverySlotHasAShortBraceFreeTagThatHashesToIt) {
  for (std::uint32_t slot = 0; slot < kSlotCount; ++slot) {
    const auto s = static_cast<std::uint16_t>(slot);
    const std::string& tag = slotTag(s);
    ASSERT_FALSE(tag.empty()) << slot;
    ASSERT_LE(tag.size(), 4u) << slot;
    ASSERT_EQ(tag.find_first_of("{}"), std::string::npos) << slot;
    ASSERT_EQ(keyHashSlot("{" + tag + "}x"), s) << "tag '" << tag << "'";
    ASSERT_EQ(keyHashSlot("outbox:{" + tag + "}"), s) << "tag '" << tag << "'";
  }
  EXPECT_EQ(&slotTag(42), &slotTag(42)) << "the table is built once";
}

// An order's own hash and its bucket share a slot (one script moves an order between them),
// and order numbers spread evenly over the buckets, so a bucket stays a small listpack.
TEST(OrderKeys, TheOwnHashAndTheBucketShareASlotAndBucketsFillEvenly) {
  const OrderRef order{"EBU0001", "ORD0000000042"};
  const auto bucket = std::to_string(keys::orderBucketOf(order.order_no));
  EXPECT_EQ(keys::order(order), "ord:{EBU0001|b" + bucket + "}:ORD0000000042");
  EXPECT_EQ(keys::orderBucket(order), "os:{EBU0001|b" + bucket + "}");
  EXPECT_EQ(keys::orderBucketAt("EBU0001", keys::orderBucketOf(order.order_no)),
            keys::orderBucket(order));
  std::vector<int> filled(keys::kOrderBuckets, 0);
  constexpr int kOrders = 100000;
  for (int i = 0; i < kOrders; ++i) {
    const OrderRef each{"D", "ORD" + std::to_string(1000000 + i)};
    ASSERT_EQ(keyHashSlot(keys::order(each)), keyHashSlot(keys::orderBucket(each))) << i;
    const auto b = keys::orderBucketOf(each.order_no);
    ASSERT_LT(b, keys::kOrderBuckets);
    ++filled[b];
  }
  // 12.2 orders a bucket on average; a fair hash keeps the fullest far below 512 (Redis 7's
  // default hash-max-listpack-entries) and leaves hardly any bucket empty.
  EXPECT_LT(*std::max_element(filled.begin(), filled.end()), 40);
  EXPECT_LT(std::count(filled.begin(), filled.end(), 0), 20);
}

TEST(Sha1, KnownVectors) {
  struct Case {
    std::string input;
    std::string digest;
  };
  std::string all_bytes;
  for (int i = 0; i < 256; ++i) all_bytes.push_back(static_cast<char>(i));
  const std::vector<Case> cases = {
      {"", "da39a3ee5e6b4b0d3255bfef95601890afd80709"},
      {"abc", "a9993e364706816aba3e25717850c26c9cd0d89d"},
      {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
       "84983e441c3bd26ebaae4aa1f95129e5e54670f1"},
      // Lengths around the padding boundaries: 55 fits one block, 56 needs two.
      {std::string(55, 'x'), "cef734ba81a024479e09eb5a75b6ddae62e6abf1"},
      {std::string(56, 'x'), "901305367c259952f4e7af8323f480d59f81335b"},
      {std::string(63, 'x'), "0ddc4e0cccd9a12850deb5abb0853a4425559fec"},
      {std::string(64, 'x'), "bb2fa3ee7afb9f54c6dfb5d021f14b1ffe40c163"},
      {std::string(65, 'x'), "78c741ddc482e4cdf8c474a0876347a0905b6233"},
      {std::string(119, 'x'), "4300320394f7ee239bcdce7d3b8bcee173a0cd5c"},
      {std::string(120, 'x'), "ceb2821639c4b6dcb10bce0e522ca2e608ce056d"},
      {std::string(1000000, 'a'), "34aa973cd4c4daa4f61eeb2bdbad27316534016f"},
      {all_bytes, "4916d6bdb7f78e6803698cab32d1586ea457dfc8"},
  };
  for (const Case& test : cases) {
    EXPECT_EQ(sha1Hex(test.input), test.digest) << "input of length " << test.input.size();
  }
  EXPECT_EQ(Script("noop", "return 1").sha1(), sha1Hex("return 1"));
}

TEST(ParseRedisUrl, AcceptsValidUrls) {
  struct Case {
    std::string url;
    std::vector<std::string> seeds;
    std::string password;
  };
  const std::vector<Case> cases = {
      {"redis://127.0.0.1:6379", {"127.0.0.1:6379"}, ""},
      {"redis://localhost:1", {"localhost:1"}, ""},
      {"redis://redis.internal:65535/", {"redis.internal:65535"}, ""},
      {"redis://h:6379/0", {"h:6379"}, ""},
      {"redis://a:7001,b:7002,c:7003", {"a:7001", "b:7002", "c:7003"}, ""},
      {"redis://:s3cret@h:6379", {"h:6379"}, "s3cret"},
      {"redis://:p@ss:w@rd@h:6379", {"h:6379"}, "p@ss:w@rd"},
      {"redis://[::1]:6379", {"[::1]:6379"}, ""},
  };
  for (const Case& test : cases) {
    auto options = parseRedisUrl(test.url);
    ASSERT_TRUE(options) << test.url << ": " << options.error().message;
    EXPECT_EQ(options->seeds, test.seeds) << test.url;
    EXPECT_EQ(options->password, test.password) << test.url;
  }
}

TEST(ParseRedisUrl, RejectsInvalidUrls) {
  const std::vector<std::string> urls = {
      "",
      "127.0.0.1:6379",
      "http://127.0.0.1:6379",
      "rediss://127.0.0.1:6379",
      "redis://",
      "redis://127.0.0.1",
      "redis://127.0.0.1:",
      "redis://:6379",
      "redis://h:0",
      "redis://h:65536",
      "redis://h:63x9",
      "redis://h:-1",
      "redis://h:6379,",
      "redis://h:6379,,k:6380",
      "redis://user:pw@h:6379",
      "redis://pw@h:6379",
      "redis://:@h:6379",
      "redis://h:6379/1",
      "redis://h:6379?timeout=1",
      "redis://[::1:6379",
      "redis://" + std::string(5000, 'h') + ":1",
  };
  for (const std::string& url : urls) {
    auto options = parseRedisUrl(url);
    ASSERT_FALSE(options) << "accepted '" << url << "'";
    EXPECT_EQ(options.error().code, ErrorCode::kInvalidRequest) << url;
    EXPECT_FALSE(options.error().message.empty()) << url;
  }
}

TEST(ParseNodeAddress, NamesRoundTrip) {
  for (const std::string text : {"127.0.0.1:6379", "[::1]:7000", "node-3.redis:1"}) {
    auto address = parseNodeAddress(text);
    ASSERT_TRUE(address) << text;
    EXPECT_EQ(address->name(), text);
  }
  auto ipv6 = parseNodeAddress("[fe80::1]:7000");
  ASSERT_TRUE(ipv6);
  EXPECT_EQ(ipv6->host, "fe80::1");
  EXPECT_EQ(ipv6->port, 7000);
}

TEST(ParseClusterSlots, ReadsMastersAndFillsEmptyHosts) {
  const NodeAddress asked{"10.0.0.9", 7009};
  const Reply reply = array({
      array({integer(0), integer(5460), array({str("10.0.0.1"), integer(7001), str("id1")}),
             array({str("10.0.0.4"), integer(7004), str("id4")})}),
      array(
          {integer(5461), integer(10922), array({str(""), integer(7002), str("id2"), array({})})}),
      array({integer(10923), integer(16383), array({str("?"), integer(7003), str("id3")})}),
  });
  auto map = parseClusterSlots(reply, asked);
  ASSERT_TRUE(map) << map.error().message;
  const std::vector<NodeAddress> masters = {
      {"10.0.0.1", 7001}, {"10.0.0.9", 7002}, {"10.0.0.9", 7003}};
  EXPECT_EQ(map->masters(), masters);
  EXPECT_EQ(*map->owner(0), masters[0]);
  EXPECT_EQ(*map->owner(5460), masters[0]);
  EXPECT_EQ(*map->owner(5461), masters[1]);
  EXPECT_EQ(*map->owner(16383), masters[2]);

  // A MOVED for one slot changes that slot only; a master left with no slot is no master.
  map->assign(42, masters[2]);
  EXPECT_EQ(*map->owner(42), masters[2]);
  EXPECT_EQ(*map->owner(41), masters[0]);
  SlotMap single = SlotMap::singleNode(masters[0]);
  single.assign(7, masters[1]);
  EXPECT_EQ(single.masters().size(), 2u);
  SlotMap partial;
  EXPECT_EQ(partial.owner(1), nullptr);
  EXPECT_TRUE(partial.masters().empty());
}

TEST(ParseClusterSlots, RejectsMalformedReplies) {
  const Reply node = array({str("h"), integer(7001)});
  const std::vector<Reply> replies = {
      error("ERR This instance has cluster support disabled"),
      array({integer(1)}),
      array({array({integer(0), integer(5)})}),
      array({array({integer(0), integer(16384), node})}),
      array({array({integer(6), integer(5), node})}),
      array({array({integer(-1), integer(5), node})}),
      array({array({str("0"), integer(5), node})}),
      array({array({integer(0), integer(5), array({str("h")})})}),
      array({array({integer(0), integer(5), array({str("h"), integer(0)})})}),
      array({array({integer(0), integer(5), array({integer(1), integer(7001)})})}),
  };
  for (std::size_t i = 0; i < replies.size(); ++i) {
    auto map = parseClusterSlots(replies[i], NodeAddress{"h", 1});
    ASSERT_FALSE(map) << "case " << i;
    EXPECT_EQ(map.error().code, ErrorCode::kInternal) << "case " << i;
  }
}

TEST(ParseRedirect, RecognisesEveryRedirect) {
  const NodeAddress asked{"10.0.0.9", 7009};
  struct Case {
    Reply reply;
    bool is_redirect;
    Redirect::Kind kind;
    std::uint16_t slot;
    NodeAddress target;
  };
  using Kind = Redirect::Kind;
  const std::vector<Case> cases = {
      {error("MOVED 3999 127.0.0.1:6381"), true, Kind::kMoved, 3999, {"127.0.0.1", 6381}},
      {error("ASK 16383 10.0.0.2:7002"), true, Kind::kAsk, 16383, {"10.0.0.2", 7002}},
      {error("MOVED 0 :7005"), true, Kind::kMoved, 0, {"10.0.0.9", 7005}},
      {error("MOVED 1 [::1]:7005"), true, Kind::kMoved, 1, {"::1", 7005}},
      {error("TRYAGAIN Multiple keys request during rehashing of slot"),
       true,
       Kind::kRetryLater,
       0,
       {}},
      {error("CLUSTERDOWN The cluster is down"), true, Kind::kRetryLater, 0, {}},
      {error("LOADING Redis is loading the dataset in memory"), true, Kind::kRetryLater, 0, {}},
      {error("MOVED 16384 h:1"), false, {}, 0, {}},
      {error("MOVED x h:1"), false, {}, 0, {}},
      {error("MOVED 5"), false, {}, 0, {}},
      {error("MOVED 5 h"), false, {}, 0, {}},
      {error("ERR unknown command"), false, {}, 0, {}},
      {error("NOSCRIPT No matching script"), false, {}, 0, {}},
      {str("MOVED 3999 127.0.0.1:6381"), false, {}, 0, {}},  // a value, not an error
      {integer(1), false, {}, 0, {}},
  };
  for (const Case& test : cases) {
    const auto redirect = parseRedirect(test.reply, asked);
    ASSERT_EQ(redirect.has_value(), test.is_redirect) << test.reply.str;
    if (!redirect) continue;
    EXPECT_EQ(redirect->kind, test.kind) << test.reply.str;
    EXPECT_EQ(redirect->slot, test.slot) << test.reply.str;
    EXPECT_EQ(redirect->target, test.target) << test.reply.str;
  }
}

}  // namespace
}  // namespace allot::redis

// mysql:// URL parsing, option validation and the classification of MariaDB error numbers.
// Needs no server.
#include <gtest/gtest.h>

#include <string>

#include "core/limits.h"
#include "mysql/connection.h"
#include "mysql/url.h"

namespace allot::mysql {
namespace {

struct GoodUrl {
  std::string url;
  std::string host;
  std::uint16_t port;
  std::string user;
  std::string password;
  std::string database;
};

TEST(MysqlUrl, ParsesValidUrls) {
  const GoodUrl cases[] = {
      {"mysql://allot:secret@127.0.0.1:3390/allot", "127.0.0.1", 3390, "allot", "secret", "allot"},
      {"mysql://allot:secret@db.example.com/allot", "db.example.com", 3306, "allot", "secret",
       "allot"},
      {"mysql://root@localhost/db_1", "localhost", 3306, "root", "", "db_1"},
      {"mysql://u:@h/d", "h", 3306, "u", "", "d"},
      // Percent-decoding of the credentials, including the separators themselves.
      {"mysql://us%40er:p%3Ass%2Fw%25rd@h:1/d", "h", 1, "us@er", "p:ss/w%rd", "d"},
      {"mysql://u:p%C3%A4ss@h:65535/d", "h", 65535, "u", "p\xC3\xA4ss", "d"},
      // The last '@' ends the credentials, so a raw '@' in the password still parses.
      {"mysql://u:p@ss@h/d", "h", 3306, "u", "p@ss", "d"},
      {"mysql://u:p@[::1]:3390/d", "::1", 3390, "u", "p", "d"},
      {"mysql://u:p@[::1]/d", "::1", 3306, "u", "p", "d"},
      {"mysql://u:p@h/allot_mig-1$x", "h", 3306, "u", "p", "allot_mig-1$x"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.url);
    auto parsed = parseMysqlUrl(c.url);
    ASSERT_TRUE(parsed) << parsed.error().message;
    EXPECT_EQ(parsed->host, c.host);
    EXPECT_EQ(parsed->port, c.port);
    EXPECT_EQ(parsed->user, c.user);
    EXPECT_EQ(parsed->password, c.password);
    EXPECT_EQ(parsed->database, c.database);
    EXPECT_EQ(parsed->pool_size, kDefaultPoolSize);
  }
}

TEST(MysqlUrl, ParsesQueryOptions) {
  auto parsed = parseMysqlUrl(
      "mysql://u:p@h/d?pool_size=3&connect_timeout_s=4&read_timeout_s=20&write_timeout_s=21"
      "&lock_wait_timeout_s=2&checkout_timeout_ms=150&idle_check_after_ms=0");
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->pool_size, 3u);
  EXPECT_EQ(parsed->connect_timeout_s, 4);
  EXPECT_EQ(parsed->read_timeout_s, 20);
  EXPECT_EQ(parsed->write_timeout_s, 21);
  EXPECT_EQ(parsed->lock_wait_timeout_s, 2);
  EXPECT_EQ(parsed->checkout_timeout_ms, 150);
  EXPECT_EQ(parsed->idle_check_after_ms, 0);
}

struct BadUrl {
  std::string url;
  std::string message_part;  // the error must say what is wrong
};

TEST(MysqlUrl, RejectsInvalidUrls) {
  const std::string too_long_db(65, 'd');
  const BadUrl cases[] = {
      {"", "mysql://"},
      {"redis://u:p@h/d", "mysql://"},
      {"mysql:/u:p@h/d", "mysql://"},
      {"MYSQL://u:p@h/d", "mysql://"},
      {"mysql://u:p@h", "/database"},
      {"mysql://u:p@h/", "database"},
      {"mysql://h:3306/d", "user@"},
      {"mysql://:p@h/d", "missing user"},
      {"mysql://u:p@/d", "missing host"},
      {"mysql://u:p@:3306/d", "missing host"},
      {"mysql://u:p@h:/d", "empty port"},
      {"mysql://u:p@h:0/d", "1-65535"},
      {"mysql://u:p@h:65536/d", "1-65535"},
      {"mysql://u:p@h:-1/d", "decimal"},
      {"mysql://u:p@h:33a/d", "decimal"},
      {"mysql://u:p@h:1:2/d", "decimal"},
      {"mysql://u:p@h h/d", "host"},
      {"mysql://u:p@[::1/d", "unterminated"},
      {"mysql://u:p@[::1]x/d", "after the IPv6"},
      {"mysql://u:p@[zz]/d", "IPv6"},
      {"mysql://u:p%4@h/d", "percent"},
      {"mysql://u:p%zz@h/d", "percent"},
      {"mysql://u:p%@h/d", "percent"},
      {"mysql://u%00:p@h/d", "%00"},
      {"mysql://u:p@h/d/e", "database name"},
      {"mysql://u:p@h/d;drop", "database name"},
      {"mysql://u:p@h/d%20x", "database name"},
      {"mysql://u:p@h/" + too_long_db, "too long"},
      {"mysql://u:p@h/d#frag", "fragment"},
      {"mysql://u:p@h/d?pool_size", "=value"},
      {"mysql://u:p@h/d?pool=3", "unknown option"},
      {"mysql://u:p@h/d?pool_size=0", "pool_size"},
      {"mysql://u:p@h/d?pool_size=" + std::to_string(limits::kMysqlPoolSizeMax + 1), "pool_size"},
      {"mysql://u:p@h/d?pool_size=x", "decimal"},
      {"mysql://u:p@h/d?read_timeout_s=0", "read_timeout_s"},
      {"mysql://u:p@h/d?connect_timeout_s=3601", "connect_timeout_s"},
      {"mysql://u:p@h/d?lock_wait_timeout_s=10&read_timeout_s=10", "below read_timeout_s"},
      {"mysql://u:p@h/d?checkout_timeout_ms=-1", "checkout_timeout_ms"},
      {"mysql://u:p@h/d?idle_check_after_ms=99999999999", "idle_check_after_ms"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.url);
    auto parsed = parseMysqlUrl(c.url);
    ASSERT_FALSE(parsed);
    EXPECT_EQ(parsed.error().code, ErrorCode::kInvalidRequest);
    EXPECT_NE(parsed.error().message.find(c.message_part), std::string::npos)
        << parsed.error().message;
  }
}

TEST(MysqlUrl, ErrorsNeverContainThePassword) {
  auto parsed = parseMysqlUrl("mysql://u:hunter2@h:99999/d");
  ASSERT_FALSE(parsed);
  EXPECT_EQ(parsed.error().message.find("hunter2"), std::string::npos);
}

TEST(MysqlUrl, PercentDecode) {
  const std::pair<std::string, std::string> good[] = {
      {"", ""}, {"abc", "abc"}, {"%41%62", "Ab"}, {"%2f%2F", "//"}, {"a%20b", "a b"}};
  for (const auto& [in, out] : good) {
    auto decoded = percentDecode(in);
    ASSERT_TRUE(decoded) << in;
    EXPECT_EQ(*decoded, out);
  }
  for (const std::string bad : {"%", "%4", "%g0", "a%0"}) {
    EXPECT_FALSE(percentDecode(bad)) << bad;
  }
}

TEST(MysqlErrors, ClassifiesErrorNumbers) {
  struct Case {
    unsigned int number;
    ErrorCode code;
    bool broken;
    bool retryable;
  };
  const Case cases[] = {
      {1213, ErrorCode::kUnavailable, false, true},   // deadlock
      {1205, ErrorCode::kUnavailable, false, true},   // lock wait timeout
      {2006, ErrorCode::kUnavailable, true, false},   // server gone away
      {2013, ErrorCode::kUnavailable, true, false},   // lost during query
      {2002, ErrorCode::kUnavailable, true, false},   // cannot connect
      {2003, ErrorCode::kUnavailable, true, false},   // cannot connect (host)
      {1927, ErrorCode::kUnavailable, true, false},   // connection killed
      {1053, ErrorCode::kUnavailable, true, false},   // server shutdown
      {1040, ErrorCode::kUnavailable, false, false},  // too many connections
      {1969, ErrorCode::kUnavailable, false, false},  // statement timeout
      {2014, ErrorCode::kInternal, true, false},      // commands out of sync
      {1062, ErrorCode::kInternal, false, false},     // duplicate key
      {1064, ErrorCode::kInternal, false, false},     // syntax error
      {1146, ErrorCode::kInternal, false, false},     // no such table
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.number);
    const auto got = classifyErrorNumber(c.number);
    EXPECT_EQ(got.code, c.code);
    EXPECT_EQ(got.broken, c.broken);
    EXPECT_EQ(got.retryable, c.retryable);
  }
}

}  // namespace
}  // namespace allot::mysql

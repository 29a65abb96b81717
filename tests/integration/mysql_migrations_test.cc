// The migrator: statement splitting and file naming (no server), and against a real MariaDB
// (ALLOT_TEST_MYSQL_URL): each test migrates a fresh database of its own, created here and
// dropped at the end, so tests never see each other's schema.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "mysql/connection.h"
#include "mysql/migrator.h"
#include "mysql/mysql_ledger.h"
#include "mysql/url.h"
#include "support/test_env.h"

namespace allot::mysql {
namespace {

using namespace std::chrono_literals;
using allot::testing::waitFor;

// ---- No server ----

TEST(MysqlMigrations, SplitsStatementsOnSemicolonAtEndOfLine) {
  struct Case {
    std::string name;
    std::string text;
    std::vector<std::string> statements;
  };
  const Case cases[] = {
      {"empty", "", {}},
      {"blank and comments only", "\n  \n-- a comment;\n# another;\n", {}},
      {"one statement", "CREATE TABLE a (x INT);\n", {"CREATE TABLE a (x INT)"}},
      {"no trailing newline", "SELECT 1;", {"SELECT 1"}},
      {"no final semicolon", "SELECT 1;\nSELECT 2\n", {"SELECT 1", "SELECT 2"}},
      {"multi-line statement",
       "CREATE TABLE a (\n  x INT,\n  y INT\n);\n",
       {"CREATE TABLE a (\n  x INT,\n  y INT\n)"}},
      {"semicolon inside a line does not split",
       "INSERT INTO t VALUES ('a;b');\n",
       {"INSERT INTO t VALUES ('a;b')"}},
      {"comment after the semicolon keeps the statement open",
       "SELECT 1; -- one\nSELECT 2;\n",
       {"SELECT 1; -- one\nSELECT 2"}},
      {"comment lines removed, even inside a statement",
       "-- header;\nCREATE TABLE a (\n  -- the key;\n  x INT\n);\n\n# next\nSELECT 1 ;  \n",
       {"CREATE TABLE a (\n  x INT\n)", "SELECT 1"}},
      {"windows line endings", "SELECT 1;\r\nSELECT 2;\r\n", {"SELECT 1", "SELECT 2"}},
      {"lone semicolons", ";\n;\nSELECT 1;\n", {"SELECT 1"}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(splitStatements(c.text), c.statements);
  }
}

TEST(MysqlMigrations, ParsesMigrationFileNames) {
  const std::pair<std::string, int> good[] = {
      {"0001_core.sql", 1}, {"0042_orders_v2.sql", 42}, {"9999_x.sql", 9999}};
  for (const auto& [name, version] : good) {
    auto parsed = parseMigration(name, "SELECT 1;");
    ASSERT_TRUE(parsed) << name;
    EXPECT_EQ(parsed->version, version);
    EXPECT_EQ(parsed->name, name);
  }
  for (const std::string bad : {"", "0001.sql", "0001_.sql", "001_core.sql", "00001_core.sql",
                                "0001-core.sql", "0001_core.SQL", "0001_core.sql.bak",
                                "0001_Core.sql", "0000_zero.sql", "abcd_x.sql", "0001_core"}) {
    auto parsed = parseMigration(bad, "");
    ASSERT_FALSE(parsed) << bad;
    EXPECT_EQ(parsed.error().code, ErrorCode::kInternal);
  }
}

TEST(MysqlMigrations, EmbedsTheCoreMigrationInOrder) {
  auto migrations = embeddedMigrations();
  ASSERT_TRUE(migrations) << migrations.error().message;
  ASSERT_FALSE(migrations->empty());
  EXPECT_EQ(migrations->front().version, 1);
  EXPECT_EQ(migrations->front().name, "0001_core.sql");
  EXPECT_TRUE(
      std::is_sorted(migrations->begin(), migrations->end(),
                     [](const Migration& a, const Migration& b) { return a.version < b.version; }));
  EXPECT_EQ(splitStatements(migrations->front().text).size(), 3u);  // three tables
}

// ---- Against a real server ----

// Creates a database of its own on the test server and drops it at the end.
class ScratchDatabase {
 public:
  ScratchDatabase() {
    auto base = parseMysqlUrl(testing::mysqlUrl());
    if (!base) {
      ADD_FAILURE() << "ALLOT_TEST_MYSQL_URL: " << base.error().message;
      return;
    }
    options_ = *base;
    auto admin = Connection::open(options_);
    if (!admin) {
      ADD_FAILURE() << admin.error().message;
      return;
    }
    admin_ = std::move(*admin);
    std::string name = testing::uniqueName("allot_mig");
    std::replace(name.begin(), name.end(), '-', '_');  // a name that needs no quoting
    auto created = admin_->executeText("CREATE DATABASE " + name);
    if (!created) {
      ADD_FAILURE() << created.error().message;
      return;
    }
    options_.database = name;
    ready_ = true;
  }
  ~ScratchDatabase() {
    if (ready_) {
      EXPECT_TRUE(admin_->executeText("DROP DATABASE " + options_.database));
    }
  }

  [[nodiscard]] bool ready() const { return ready_; }
  [[nodiscard]] const MysqlOptions& options() const { return options_; }
  [[nodiscard]] std::unique_ptr<Connection> connect() const {
    auto connection = openMigrationConnection(options_);
    EXPECT_TRUE(connection) << connection.error().message;
    return connection ? std::move(*connection) : nullptr;
  }

 private:
  MysqlOptions options_;
  std::unique_ptr<Connection> admin_;
  bool ready_ = false;
};

std::vector<std::int64_t> recordedVersions(Connection& connection) {
  auto rows = connection.query("SELECT version FROM schema_migrations ORDER BY version");
  EXPECT_TRUE(rows) << rows.error().message;
  std::vector<std::int64_t> versions;
  if (!rows) return versions;
  for (const auto& row : *rows) versions.push_back(*row.integer(0));
  return versions;
}

// The first column of every row of a query with one parameter, as text; the query failing
// fails the test.
std::vector<std::string> firstColumn(Connection& connection, std::string_view sql,
                                     const std::string& param) {
  auto rows = connection.query(sql, {param});
  EXPECT_TRUE(rows) << rows.error().message;
  std::vector<std::string> values;
  if (!rows) return values;
  for (const auto& row : *rows) values.emplace_back(row.text(0));
  return values;
}

bool tableExists(Connection& connection, const std::string& database, const std::string& table) {
  auto rows = connection.query(
      "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
      {database, table});
  EXPECT_TRUE(rows) << rows.error().message;
  return rows && (*rows)[0].text(0) == "1";
}

std::vector<int> allVersions(const std::vector<Migration>& migrations) {
  std::vector<int> versions;
  for (const auto& m : migrations) versions.push_back(m.version);
  return versions;
}

TEST(MysqlMigrator, AppliesOnceThenIsANoOp) {
  ScratchDatabase database;
  ASSERT_TRUE(database.ready());
  auto migrations = embeddedMigrations();
  ASSERT_TRUE(migrations);
  auto connection = database.connect();
  ASSERT_TRUE(connection);

  auto first = migrate(*connection, *migrations);
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_EQ(first->applied, allVersions(*migrations));
  EXPECT_EQ(first->schema_version, migrations->back().version);

  auto second = migrate(*connection, *migrations);
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_TRUE(second->applied.empty());
  EXPECT_EQ(second->schema_version, migrations->back().version);

  EXPECT_EQ(recordedVersions(*connection).size(), migrations->size());
  const auto names = firstColumn(*connection,
                                 "SELECT table_name FROM information_schema.tables WHERE "
                                 "table_schema = ? ORDER BY table_name",
                                 database.options().database);
  EXPECT_EQ(names, (std::vector<std::string>{
                       "compensation_tasks", "merchant_fences", "merchant_routes", "orders",
                       "order_lines", "outbox_dead_letters", "outbox_positions", "pending_orders",
                       "reconciliations", "schema_migrations", "stock", "stock_adjustments"}));
}

// Every reader of order_lines asks by dept_no and order_no, so the table keeps only its
// primary key (0006 dropped the index by record that each write paid for).
TEST(MysqlMigrator, OrderLinesKeepOnlyTheirPrimaryKey) {
  ScratchDatabase database;
  ASSERT_TRUE(database.ready());
  auto migrations = embeddedMigrations();
  ASSERT_TRUE(migrations);
  auto connection = database.connect();
  ASSERT_TRUE(connection);
  ASSERT_TRUE(migrate(*connection, *migrations));

  EXPECT_EQ(firstColumn(*connection,
                        "SELECT DISTINCT index_name FROM information_schema.statistics WHERE "
                        "table_schema = ? AND table_name = 'order_lines' ORDER BY index_name",
                        database.options().database),
            std::vector<std::string>{"PRIMARY"});
}

TEST(MysqlMigrator, ConcurrentRunsApplyEachVersionOnce) {
  ScratchDatabase database;
  ASSERT_TRUE(database.ready());
  auto migrations = embeddedMigrations();
  ASSERT_TRUE(migrations);
  constexpr int kThreads = 4;
  std::vector<std::unique_ptr<Connection>> connections;
  for (int i = 0; i < kThreads; ++i) {
    connections.push_back(database.connect());
    ASSERT_TRUE(connections.back());
  }
  std::vector<Result<MigrationReport>> reports(kThreads);
  std::atomic<int> ready{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      ready.fetch_add(1);
      while (ready.load() < kThreads) std::this_thread::yield();  // start together
      reports[i] = migrate(*connections[i], *migrations);
    });
  }
  for (auto& thread : threads) thread.join();

  std::vector<int> applied;
  for (const auto& report : reports) {
    ASSERT_TRUE(report) << report.error().message;
    EXPECT_EQ(report->schema_version, migrations->back().version);
    applied.insert(applied.end(), report->applied.begin(), report->applied.end());
  }
  std::sort(applied.begin(), applied.end());
  EXPECT_EQ(applied, allVersions(*migrations));  // every version by exactly one thread
  EXPECT_EQ(recordedVersions(*connections[0]).size(), migrations->size());
}

TEST(MysqlMigrator, RefusesADatabaseNewerThanTheBinary) {
  ScratchDatabase database;
  ASSERT_TRUE(database.ready());
  auto migrations = embeddedMigrations();
  ASSERT_TRUE(migrations);
  auto connection = database.connect();
  ASSERT_TRUE(connection);
  ASSERT_TRUE(migrate(*connection, *migrations));
  ASSERT_TRUE(connection->execute(
      "INSERT INTO schema_migrations (version, name) VALUES (9999, '9999_future.sql')"));

  auto again = migrate(*connection, *migrations);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, ErrorCode::kInternal);
  EXPECT_NE(again.error().message.find("9999"), std::string::npos) << again.error().message;
  // The failed run released the lock: another connection can take it. The lock is the
  // server's, not the database's, so an allotd of a parallel test may hold it for a moment:
  // wait a little, where a lock the open failed connection still held would never come.
  auto other = database.connect();
  ASSERT_TRUE(other);
  auto lock = other->query("SELECT GET_LOCK('allot_migrations', 10)");
  ASSERT_TRUE(lock);
  EXPECT_EQ((*lock)[0].text(0), "1");
}

TEST(MysqlMigrator, AppliesFilesInOrderAndStopsAtAFailingOne) {
  ScratchDatabase database;
  ASSERT_TRUE(database.ready());
  auto connection = database.connect();
  ASSERT_TRUE(connection);
  const std::vector<Migration> migrations = {
      {1, "0001_a.sql", "-- first;\nCREATE TABLE a (x INT);\nINSERT INTO a VALUES (1);\n"},
      {2, "0002_b.sql", "INSERT INTO a VALUES (2);\nTHIS IS NOT SQL;\nINSERT INTO a VALUES (3);\n"},
      {3, "0003_c.sql", "CREATE TABLE c (x INT);\n"},
  };
  auto report = migrate(*connection, migrations);
  ASSERT_FALSE(report);
  EXPECT_EQ(report.error().code, ErrorCode::kInternal);
  EXPECT_NE(report.error().message.find("0002_b.sql, statement 2"), std::string::npos)
      << report.error().message;
  EXPECT_EQ(recordedVersions(*connection), (std::vector<std::int64_t>{1}));
  auto rows = connection->query("SELECT x FROM a ORDER BY x");
  ASSERT_TRUE(rows);
  ASSERT_EQ(rows->size(), 2u);  // 0001's row and 0002's first statement (DDL is not atomic)
  EXPECT_FALSE(tableExists(*connection, database.options().database, "c"));
}

TEST(MysqlMigrator, WaitsForTheMigrationLock) {
  ScratchDatabase database;
  ASSERT_TRUE(database.ready());
  auto migrations = embeddedMigrations();
  ASSERT_TRUE(migrations);
  auto holder = database.connect();
  auto waiter = database.connect();
  ASSERT_TRUE(holder && waiter);
  auto locked = holder->query("SELECT GET_LOCK('allot_migrations', 5)");
  ASSERT_TRUE(locked);
  ASSERT_EQ((*locked)[0].text(0), "1");

  Result<MigrationReport> report = fail(ErrorCode::kInternal, "not run");
  std::thread thread([&] { report = migrate(*waiter, *migrations); });
  // Joined however the test ends; the holder's connection closing frees the lock.
  struct JoinOnExit {
    std::thread& thread;
    std::unique_ptr<Connection>& holder;
    ~JoinOnExit() {
      holder.reset();
      if (thread.joinable()) thread.join();
    }
  } join{thread, holder};
  const std::int64_t waiter_id = static_cast<std::int64_t>(waiter->serverThreadId());
  const bool blocked = waitFor([&] {
    auto state = holder->query(
        "SELECT COUNT(*) FROM information_schema.processlist WHERE id = ? AND state = 'User lock'",
        {waiter_id});
    return state && (*state)[0].text(0) == "1";
  });
  EXPECT_TRUE(blocked) << "the migrator never waited on the lock";
  // Nothing happens before the lock is held, not even the creation of schema_migrations.
  EXPECT_FALSE(tableExists(*holder, database.options().database, "schema_migrations"));
  EXPECT_TRUE(holder->query("SELECT RELEASE_LOCK('allot_migrations')"));
  thread.join();
  ASSERT_TRUE(report) << report.error().message;
  EXPECT_EQ(report->applied, allVersions(*migrations));
}

TEST(MysqlMigrator, LedgerOpenMigratesThenReopensWithoutChanges) {
  ScratchDatabase database;
  ASSERT_TRUE(database.ready());
  auto migrations = embeddedMigrations();
  ASSERT_TRUE(migrations);
  {
    auto ledger = MysqlLedger::open(database.options());
    ASSERT_TRUE(ledger) << ledger.error().message;
    EXPECT_EQ((*ledger)->migrationReport().applied, allVersions(*migrations));
    EXPECT_TRUE((*ledger)->ping());
  }
  auto reopened = MysqlLedger::open(database.options());
  ASSERT_TRUE(reopened) << reopened.error().message;
  EXPECT_TRUE((*reopened)->migrationReport().applied.empty());
  EXPECT_EQ((*reopened)->migrationReport().schema_version, migrations->back().version);
}

}  // namespace
}  // namespace allot::mysql

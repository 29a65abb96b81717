// One MariaDB connection, and the move-only handles that own the client library's C objects.
//
// Every call that takes input runs as a server-side prepared statement: values travel as
// bound parameters and are never spliced into SQL text. Prepared statements are cached per
// connection (by SQL text), so a hot statement costs one round trip after its first use.
//
// Failures become allot::Error values:
//   - the connection is gone (lost, killed, refused, timed out) -> kUnavailable, and the
//     connection is marked broken: the pool drops it instead of reusing it;
//   - deadlock (1213) or lock wait timeout (1205) -> kUnavailable, and lastFailureRetryable()
//     is true, so Pool::withTransaction can run the whole transaction again;
//   - anything else -> kInternal carrying the server's message.
#pragma once

#include <mysql.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

#include "core/result.h"
#include "mysql/url.h"

namespace allot::mysql {

// Prepared statements kept per connection. The ledger and the workers use a few dozen
// distinct statements; the bound only protects the server from a caller that builds
// endless distinct SQL texts (which it must not do anyway).
inline constexpr std::size_t kStatementCacheMax = 128;
// Values longer than this are fetched in a second step (mysql_stmt_fetch_column).
inline constexpr std::size_t kInlineFetchBytes = 256;

struct MysqlCloser {
  void operator()(MYSQL* handle) const { mysql_close(handle); }
};
struct ResultCloser {
  void operator()(MYSQL_RES* handle) const { mysql_free_result(handle); }
};
struct StatementCloser {
  // mysql_stmt_close reports a failure to tell the server; the server frees the statement
  // with the connection anyway, so there is nothing useful to do with that failure here.
  void operator()(MYSQL_STMT* handle) const { static_cast<void>(mysql_stmt_close(handle)); }
};
using MysqlHandle = std::unique_ptr<MYSQL, MysqlCloser>;
using ResultHandle = std::unique_ptr<MYSQL_RES, ResultCloser>;
using StatementHandle = std::unique_ptr<MYSQL_STMT, StatementCloser>;

// A bound parameter: SQL NULL, an integer or a string (bytes, any content).
using Param = std::variant<std::nullptr_t, std::int64_t, std::string_view>;

// One fetched row; every value arrives as text (or NULL) and is converted on access.
class Row {
 public:
  explicit Row(std::vector<std::optional<std::string>> cells) : cells_(std::move(cells)) {}

  [[nodiscard]] std::size_t size() const { return cells_.size(); }
  [[nodiscard]] bool isNull(std::size_t column) const;
  // The text of a column; empty for NULL.
  [[nodiscard]] std::string_view text(std::size_t column) const;
  // kInternal when the column is NULL or not a 64-bit integer.
  [[nodiscard]] Result<std::int64_t> integer(std::size_t column) const;
  [[nodiscard]] Result<std::optional<std::int64_t>> optionalInteger(std::size_t column) const;

 private:
  std::vector<std::optional<std::string>> cells_;
};

using Rows = std::vector<Row>;

class Connection {
 public:
  // Connects with the options' timeouts, utf8mb4, autocommit on and a fixed session
  // (strict SQL mode, UTC, READ COMMITTED, the lock wait timeout).
  [[nodiscard]] static Result<std::unique_ptr<Connection>> open(const MysqlOptions& options);

  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection();

  // Runs a statement with bound parameters ('?'); returns the affected row count.
  [[nodiscard]] Result<std::uint64_t> execute(std::string_view sql,
                                              std::initializer_list<Param> params = {});
  [[nodiscard]] Result<std::uint64_t> execute(std::string_view sql, std::span<const Param> params);
  // Runs a statement with bound parameters and returns every row it produced.
  [[nodiscard]] Result<Rows> query(std::string_view sql, std::initializer_list<Param> params = {});
  [[nodiscard]] Result<Rows> query(std::string_view sql, std::span<const Param> params);
  // Runs SQL text as it is, through the text protocol, discarding any rows. Only for
  // statements written in the program (migrations, BEGIN, KILL of a numeric id): it takes
  // no parameters precisely so that no input can reach it.
  [[nodiscard]] Result<void> executeText(std::string_view sql);

  [[nodiscard]] Result<void> begin();
  [[nodiscard]] Result<void> commit();
  [[nodiscard]] Result<void> rollback();
  // A round trip to the server; marks the connection broken when it fails.
  [[nodiscard]] Result<void> ping();

  // True while a transaction is open (the server's status flag), so the pool can roll back
  // what a careless caller left open instead of handing it to the next one.
  [[nodiscard]] bool inTransaction() const;

  // The connection cannot be trusted any more (lost, killed, out of sync); drop it.
  [[nodiscard]] bool broken() const { return broken_; }
  // The last failed call was a deadlock or a lock wait timeout: the transaction may be
  // run again from its start. Reset by every call.
  [[nodiscard]] bool lastFailureRetryable() const { return last_failure_retryable_; }
  // The server or client error number of the last failed call (0 after a success), for a
  // caller that must tell one server error from another (e.g. 1062 duplicate key).
  [[nodiscard]] unsigned int lastErrorNumber() const { return last_error_number_; }
  [[nodiscard]] std::uint64_t lastInsertId() const { return last_insert_id_; }
  // The server's id of this connection (CONNECTION_ID()), e.g. for KILL in tests.
  [[nodiscard]] std::uint64_t serverThreadId() const;
  // When this connection last finished a call (for the pool's idle check).
  [[nodiscard]] std::chrono::steady_clock::time_point lastUsed() const { return last_used_; }

 private:
  explicit Connection(MysqlHandle handle) : handle_(std::move(handle)) {}

  struct Outcome {
    std::uint64_t affected_rows = 0;
    Rows rows;
  };
  [[nodiscard]] Result<Outcome> run(std::string_view sql, std::span<const Param> params,
                                    bool fetch_rows);
  [[nodiscard]] Result<MYSQL_STMT*> prepared(std::string_view sql);
  [[nodiscard]] Result<Rows> fetchRows(MYSQL_STMT* statement);
  // Turns the current error of the connection (or of a statement) into an Error and
  // updates broken_ / last_failure_retryable_.
  [[nodiscard]] Error connectionError(std::string_view during);
  [[nodiscard]] Error statementError(MYSQL_STMT* statement, std::string_view during);
  [[nodiscard]] Error classify(unsigned int number, std::string_view sql_state,
                               std::string_view message, std::string_view during);
  void startCall();

  // Declared first so it is destroyed last: statements are closed before their connection.
  MysqlHandle handle_;
  std::unordered_map<std::string, StatementHandle> statements_;
  bool broken_ = false;
  bool last_failure_retryable_ = false;
  unsigned int last_error_number_ = 0;
  std::uint64_t last_insert_id_ = 0;
  std::chrono::steady_clock::time_point last_used_ = std::chrono::steady_clock::now();
};

// Classifies a client or server error number, exposed for tests. `broken` and `retryable`
// say what happened to the connection and whether a transaction may be retried.
struct ErrorClass {
  ErrorCode code = ErrorCode::kInternal;
  bool broken = false;
  bool retryable = false;
};
[[nodiscard]] ErrorClass classifyErrorNumber(unsigned int number);

}  // namespace allot::mysql

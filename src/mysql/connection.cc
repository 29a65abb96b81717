// One MariaDB connection: connect, prepared statements with a per-connection cache, row
// fetching, transactions, and the mapping of client/server error numbers to allot errors.
#include "mysql/connection.h"

#include <errmsg.h>
#include <mysqld_error.h>

#include <algorithm>
#include <array>
#include <mutex>

#include "core/decimal.h"

namespace allot::mysql {
namespace {

// The session every connection runs with, whatever the server's defaults are:
//  - strict mode, so an over-long value or a bad number is an error, never a silent
//    truncation of a key or a quantity;
//  - UTC, so TIMESTAMP columns mean the same thing on every host;
//  - READ COMMITTED, because every invariant of the ledger is kept by row locks and
//    conditional updates, never by snapshot reads, and it takes no gap locks, which removes
//    most deadlocks between concurrent upserts of neighbouring keys.
std::string sessionInitCommand(const MysqlOptions& options) {
  return "SET SESSION sql_mode='STRICT_ALL_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,"
         "ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION', time_zone='+00:00', "
         "tx_isolation='READ-COMMITTED', innodb_lock_wait_timeout=" +
         std::to_string(options.lock_wait_timeout_s);
}

// A short, single-line prefix of the SQL for error messages (SQL text is written by the
// program and never carries values, so it is safe to log).
std::string sqlExcerpt(std::string_view sql) {
  constexpr std::size_t kExcerptLengthMax = 80;
  std::string out(sql.substr(0, kExcerptLengthMax));
  for (char& c : out) {
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  }
  if (sql.size() > kExcerptLengthMax) out += "...";
  return out;
}

Result<void> setOption(MYSQL* handle, mysql_option option, const void* value,
                       std::string_view name) {
  if (mysql_options(handle, option, value) != 0) {
    return fail(ErrorCode::kInternal, "mysql_options(" + std::string(name) + ") failed");
  }
  return {};
}

Result<void> configure(MYSQL* handle, const MysqlOptions& options) {
  const unsigned int connect_timeout = static_cast<unsigned int>(options.connect_timeout_s);
  const unsigned int read_timeout = static_cast<unsigned int>(options.read_timeout_s);
  const unsigned int write_timeout = static_cast<unsigned int>(options.write_timeout_s);
  // The URL names a TCP address; without this, the host "localhost" would silently mean
  // the default Unix socket of some other server.
  const unsigned int protocol = MYSQL_PROTOCOL_TCP;
  // A silent reconnect would lose the session settings and any open transaction without
  // the caller knowing; a lost connection is an error and the pool replaces it.
  const my_bool reconnect = 0;
  const std::string init = sessionInitCommand(options);
  ALLOT_TRY_VOID(setOption(handle, MYSQL_OPT_CONNECT_TIMEOUT, &connect_timeout, "connect timeout"));
  ALLOT_TRY_VOID(setOption(handle, MYSQL_OPT_READ_TIMEOUT, &read_timeout, "read timeout"));
  ALLOT_TRY_VOID(setOption(handle, MYSQL_OPT_WRITE_TIMEOUT, &write_timeout, "write timeout"));
  ALLOT_TRY_VOID(setOption(handle, MYSQL_OPT_PROTOCOL, &protocol, "protocol"));
  ALLOT_TRY_VOID(setOption(handle, MYSQL_OPT_RECONNECT, &reconnect, "reconnect"));
  ALLOT_TRY_VOID(setOption(handle, MYSQL_SET_CHARSET_NAME, "utf8mb4", "charset"));
  // The library copies the string, so `init` may go out of scope after this call.
  ALLOT_TRY_VOID(setOption(handle, MYSQL_INIT_COMMAND, init.c_str(), "init command"));
  return {};
}

// Binds one parameter. `integer` and `length` are the caller's storage, whose addresses must
// stay valid until the statement has executed.
void bindParam(const Param& param, MYSQL_BIND& bind, long long& integer, unsigned long& length) {
  static char empty_string[1] = {'\0'};
  if (std::holds_alternative<std::nullptr_t>(param)) {
    bind.buffer_type = MYSQL_TYPE_NULL;
  } else if (const auto* value = std::get_if<std::int64_t>(&param)) {
    integer = *value;
    bind.buffer_type = MYSQL_TYPE_LONGLONG;
    bind.buffer = &integer;
  } else {
    const auto text = std::get<std::string_view>(param);
    length = static_cast<unsigned long>(text.size());
    bind.buffer_type = MYSQL_TYPE_STRING;
    // The library only reads parameter buffers; its API is just not const-correct.
    bind.buffer = text.empty() ? empty_string : const_cast<char*>(text.data());
    bind.buffer_length = length;
    bind.length = &length;
  }
}

}  // namespace

// ---- Row ----

bool Row::isNull(std::size_t column) const {
  return column >= cells_.size() || !cells_[column].has_value();
}

std::string_view Row::text(std::size_t column) const {
  if (isNull(column)) return {};
  return *cells_[column];
}

Result<std::int64_t> Row::integer(std::size_t column) const {
  if (column >= cells_.size()) {
    return fail(ErrorCode::kInternal, "mysql: column " + std::to_string(column) + " is missing");
  }
  if (!cells_[column]) {
    return fail(ErrorCode::kInternal, "mysql: column " + std::to_string(column) + " is NULL");
  }
  const std::string& text = *cells_[column];
  if (const auto value = readDecimal<std::int64_t>(text)) return *value;
  return fail(ErrorCode::kInternal,
              "mysql: column " + std::to_string(column) + " is not an integer: '" + text + "'");
}

Result<std::optional<std::int64_t>> Row::optionalInteger(std::size_t column) const {
  if (column < cells_.size() && !cells_[column]) return std::optional<std::int64_t>{};
  ALLOT_TRY(value, integer(column));
  return std::optional<std::int64_t>{value};
}

// ---- Error mapping ----

ErrorClass classifyErrorNumber(unsigned int number) {
  switch (number) {
    case ER_LOCK_DEADLOCK:
    case ER_LOCK_WAIT_TIMEOUT: return {ErrorCode::kUnavailable, false, true};
    // The server ended the session or is going away: nothing more will work on it.
    case ER_CONNECTION_KILLED:
    case ER_SERVER_SHUTDOWN:
    case ER_NET_READ_ERROR:
    case ER_NET_READ_INTERRUPTED:
    case ER_NET_ERROR_ON_WRITE:
    case ER_NET_WRITE_INTERRUPTED:
    // A read-only server is typically a demoted primary after a failover; a new connection
    // may reach the new primary.
    case ER_OPTION_PREVENTS_STATEMENT:
    case ER_READ_ONLY_MODE: return {ErrorCode::kUnavailable, true, false};
    // The server is busy or the statement was cut short; the connection itself is fine.
    case ER_CON_COUNT_ERROR:
    case ER_TOO_MANY_USER_CONNECTIONS:
    case ER_OUT_OF_RESOURCES:
    case ER_STATEMENT_TIMEOUT:
    case ER_QUERY_INTERRUPTED: return {ErrorCode::kUnavailable, false, false};
    // The network and the connection's own state: the connection is unusable.
    case CR_SOCKET_CREATE_ERROR:
    case CR_CONNECTION_ERROR:
    case CR_CONN_HOST_ERROR:
    case CR_IPSOCK_ERROR:
    case CR_UNKNOWN_HOST:
    case CR_SERVER_GONE_ERROR:
    case CR_SERVER_HANDSHAKE_ERR:
    case CR_SERVER_LOST:
    case CR_SSL_CONNECTION_ERROR:
    case CR_SERVER_LOST_EXTENDED:
    case CR_ERR_NET_READ:
    case CR_ERR_NET_WRITE:
    case CR_OUT_OF_MEMORY: return {ErrorCode::kUnavailable, true, false};
    default: break;
  }
  // Any other client-side error (out of sync, malformed packet, a bad bind) means this
  // program and the library disagree about the connection's state: do not reuse it.
  const bool client_side = (number >= CR_MIN_ERROR && number <= CR_MAX_ERROR) ||
                           (number >= CR_EVENT_CREATE_FAILED && number <= CR_INVALID_CLIENT_FLAG);
  return {ErrorCode::kInternal, client_side, false};
}

Error Connection::classify(unsigned int number, std::string_view sql_state,
                           std::string_view message, std::string_view during) {
  const ErrorClass error_class = classifyErrorNumber(number);
  broken_ = broken_ || error_class.broken;
  last_failure_retryable_ = error_class.retryable;
  last_error_number_ = number;
  std::string text = "mysql error " + std::to_string(number);
  if (!sql_state.empty()) text += " (" + std::string(sql_state) + ")";
  text += " during " + std::string(during) + ": " + std::string(message);
  return Error{error_class.code, std::move(text)};
}

Error Connection::connectionError(std::string_view during) {
  MYSQL* handle = handle_.get();
  return classify(mysql_errno(handle), mysql_sqlstate(handle), mysql_error(handle), during);
}

Error Connection::statementError(MYSQL_STMT* statement, std::string_view during) {
  return classify(mysql_stmt_errno(statement), mysql_stmt_sqlstate(statement),
                  mysql_stmt_error(statement), during);
}

// ---- Connection ----

namespace {

// The client library's global state must be set up once before threads use it; mysql_init
// would do it implicitly, but then its failure would go unnoticed.
Result<void> initLibraryOnce() {
  static std::once_flag once;
  static int status = 0;
  std::call_once(once, [] { status = mysql_library_init(0, nullptr, nullptr); });
  if (status != 0) return fail(ErrorCode::kInternal, "mysql_library_init failed");
  return {};
}

}  // namespace

Result<std::unique_ptr<Connection>> Connection::open(const MysqlOptions& options) {
  ALLOT_TRY_VOID(initLibraryOnce());
  MysqlHandle handle(mysql_init(nullptr));
  if (!handle) return fail(ErrorCode::kUnavailable, "mysql_init failed: out of memory");
  ALLOT_TRY_VOID(configure(handle.get(), options));
  const std::string where = options.user + "@" + options.host + ":" + std::to_string(options.port) +
                            "/" + options.database;
  if (mysql_real_connect(handle.get(), options.host.c_str(), options.user.c_str(),
                         options.password.c_str(), options.database.c_str(), options.port, nullptr,
                         0) == nullptr) {
    const ErrorClass error_class = classifyErrorNumber(mysql_errno(handle.get()));
    return fail(error_class.code, "cannot connect to mysql " + where + ": error " +
                                      std::to_string(mysql_errno(handle.get())) + ": " +
                                      mysql_error(handle.get()));
  }
  if (mysql_autocommit(handle.get(), 1) != 0) {
    return fail(ErrorCode::kUnavailable,
                "cannot enable autocommit on " + where + ": " + mysql_error(handle.get()));
  }
  return std::unique_ptr<Connection>(new Connection(std::move(handle)));
}

Connection::~Connection() {
  // Statements first: they belong to the connection (member order guarantees it too).
  statements_.clear();
}

void Connection::startCall() {
  last_failure_retryable_ = false;
  last_error_number_ = 0;
}

bool Connection::inTransaction() const {
  unsigned int status = 0;
  // Asking the library about a live handle does not fail in practice; if it ever did,
  // claiming a transaction is open makes the pool roll back, which is always safe.
  if (mariadb_get_infov(handle_.get(), MARIADB_CONNECTION_SERVER_STATUS, &status) != 0) return true;
  return (status & SERVER_STATUS_IN_TRANS) != 0;
}

std::uint64_t Connection::serverThreadId() const { return mysql_thread_id(handle_.get()); }

Result<MYSQL_STMT*> Connection::prepared(std::string_view sql) {
  const std::string key(sql);
  if (auto found = statements_.find(key); found != statements_.end()) return found->second.get();
  StatementHandle statement(mysql_stmt_init(handle_.get()));
  if (!statement) return std::unexpected(connectionError("mysql_stmt_init"));
  if (mysql_stmt_prepare(statement.get(), sql.data(), static_cast<unsigned long>(sql.size())) !=
      0) {
    return std::unexpected(statementError(statement.get(), "prepare of " + sqlExcerpt(sql)));
  }
  if (statements_.size() >= kStatementCacheMax) statements_.erase(statements_.begin());
  MYSQL_STMT* raw = statement.get();
  statements_.emplace(key, std::move(statement));
  return raw;
}

Result<Rows> Connection::fetchRows(MYSQL_STMT* statement) {
  ResultHandle metadata(mysql_stmt_result_metadata(statement));
  if (!metadata) return std::unexpected(statementError(statement, "result metadata"));
  const unsigned int columns = mysql_num_fields(metadata.get());
  if (mysql_stmt_store_result(statement) != 0) {
    return std::unexpected(statementError(statement, "store result"));
  }
  std::vector<MYSQL_BIND> binds(columns);
  std::vector<std::array<char, kInlineFetchBytes>> buffers(columns);
  std::vector<unsigned long> lengths(columns);
  std::vector<my_bool> nulls(columns);
  std::vector<my_bool> truncated(columns);
  for (unsigned int column = 0; column < columns; ++column) {
    binds[column] = MYSQL_BIND{};
    binds[column].buffer_type = MYSQL_TYPE_STRING;  // the library converts every type to text
    binds[column].buffer = buffers[column].data();
    binds[column].buffer_length = kInlineFetchBytes;
    binds[column].length = &lengths[column];
    binds[column].is_null = &nulls[column];
    binds[column].error = &truncated[column];
  }
  if (columns > 0 && mysql_stmt_bind_result(statement, binds.data()) != 0) {
    return std::unexpected(statementError(statement, "bind result"));
  }
  Rows rows;
  for (;;) {
    const int status = mysql_stmt_fetch(statement);
    if (status == MYSQL_NO_DATA) break;
    if (status != 0 && status != MYSQL_DATA_TRUNCATED) {
      return std::unexpected(statementError(statement, "fetch"));
    }
    std::vector<std::optional<std::string>> cells(columns);
    for (unsigned int column = 0; column < columns; ++column) {
      if (nulls[column]) continue;
      if (lengths[column] < kInlineFetchBytes) {
        cells[column] = std::string(buffers[column].data(), lengths[column]);
        continue;
      }
      // Too long for the inline buffer: fetch this one column again into one that fits.
      std::string value(lengths[column], '\0');
      unsigned long value_length = 0;
      MYSQL_BIND one{};
      one.buffer_type = MYSQL_TYPE_STRING;
      one.buffer = value.data();
      one.buffer_length = static_cast<unsigned long>(value.size());
      one.length = &value_length;
      if (mysql_stmt_fetch_column(statement, &one, column, 0) != 0) {
        return std::unexpected(statementError(statement, "fetch column"));
      }
      value.resize(std::min<std::size_t>(value_length, value.size()));
      cells[column] = std::move(value);
    }
    rows.emplace_back(std::move(cells));
  }
  if (mysql_stmt_free_result(statement) != 0) {
    return std::unexpected(statementError(statement, "free result"));
  }
  return rows;
}

Result<Connection::Outcome> Connection::run(std::string_view sql, std::span<const Param> params,
                                            bool fetch_rows) {
  startCall();
  if (broken_) return fail(ErrorCode::kUnavailable, "mysql connection is broken");
  ALLOT_TRY(statement, prepared(sql));
  // Any failure below leaves the statement in an unknown state: close it rather than cache it.
  auto failed = [&](Error error) -> Result<Outcome> {
    statements_.erase(std::string(sql));
    return std::unexpected(std::move(error));
  };
  if (mysql_stmt_param_count(statement) != params.size()) {
    return failed(Error{ErrorCode::kInternal, "mysql: " + std::to_string(params.size()) +
                                                  " parameters for " + sqlExcerpt(sql)});
  }
  std::vector<MYSQL_BIND> binds(params.size());
  std::vector<long long> integers(params.size());
  std::vector<unsigned long> lengths(params.size());
  for (std::size_t i = 0; i < params.size(); ++i) {
    bindParam(params[i], binds[i], integers[i], lengths[i]);
  }
  if (!params.empty() && mysql_stmt_bind_param(statement, binds.data()) != 0) {
    return failed(statementError(statement, "bind of " + sqlExcerpt(sql)));
  }
  if (mysql_stmt_execute(statement) != 0) {
    return failed(statementError(statement, "execute of " + sqlExcerpt(sql)));
  }
  Outcome outcome;
  outcome.affected_rows = mysql_stmt_affected_rows(statement);
  last_insert_id_ = mysql_stmt_insert_id(statement);
  // Rows must be read even when unwanted, or the connection is out of sync.
  if (mysql_stmt_field_count(statement) > 0) {
    auto rows = fetchRows(statement);
    if (!rows) return failed(rows.error());
    if (fetch_rows) outcome.rows = std::move(*rows);
  }
  last_used_ = std::chrono::steady_clock::now();
  return outcome;
}

Result<std::uint64_t> Connection::execute(std::string_view sql, std::span<const Param> params) {
  ALLOT_TRY(outcome, run(sql, params, false));
  return outcome.affected_rows;
}

Result<std::uint64_t> Connection::execute(std::string_view sql,
                                          std::initializer_list<Param> params) {
  return execute(sql, std::span<const Param>(params.begin(), params.size()));
}

Result<Rows> Connection::query(std::string_view sql, std::span<const Param> params) {
  ALLOT_TRY(outcome, run(sql, params, true));
  return std::move(outcome.rows);
}

Result<Rows> Connection::query(std::string_view sql, std::initializer_list<Param> params) {
  return query(sql, std::span<const Param>(params.begin(), params.size()));
}

Result<void> Connection::executeText(std::string_view sql) {
  startCall();
  if (broken_) return fail(ErrorCode::kUnavailable, "mysql connection is broken");
  MYSQL* handle = handle_.get();
  if (mysql_real_query(handle, sql.data(), static_cast<unsigned long>(sql.size())) != 0) {
    return std::unexpected(connectionError(sqlExcerpt(sql)));
  }
  // Drain every result the statement produced, or the connection would be out of sync.
  for (;;) {
    ResultHandle result(mysql_store_result(handle));
    if (!result && mysql_field_count(handle) != 0) {
      return std::unexpected(connectionError("result of " + sqlExcerpt(sql)));
    }
    const int next = mysql_next_result(handle);
    if (next == -1) break;
    if (next > 0) return std::unexpected(connectionError("next result of " + sqlExcerpt(sql)));
  }
  last_used_ = std::chrono::steady_clock::now();
  return {};
}

Result<void> Connection::begin() { return executeText("START TRANSACTION"); }

Result<void> Connection::commit() {
  startCall();
  if (broken_) return fail(ErrorCode::kUnavailable, "mysql connection is broken");
  if (mysql_commit(handle_.get()) != 0) return std::unexpected(connectionError("COMMIT"));
  last_used_ = std::chrono::steady_clock::now();
  return {};
}

Result<void> Connection::rollback() {
  startCall();
  if (broken_) return fail(ErrorCode::kUnavailable, "mysql connection is broken");
  if (mysql_rollback(handle_.get()) != 0) return std::unexpected(connectionError("ROLLBACK"));
  last_used_ = std::chrono::steady_clock::now();
  return {};
}

Result<void> Connection::ping() {
  startCall();
  if (broken_) return fail(ErrorCode::kUnavailable, "mysql connection is broken");
  if (mysql_ping(handle_.get()) != 0) {
    Error error = connectionError("ping");
    // A failed ping means the connection is not usable, whatever the error number says.
    broken_ = true;
    return std::unexpected(std::move(error));
  }
  last_used_ = std::chrono::steady_clock::now();
  return {};
}

}  // namespace allot::mysql

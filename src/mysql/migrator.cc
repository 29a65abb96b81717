// The migrator: parsing of the embedded migration files, statement splitting, and the
// locked apply-missing-versions loop.
#include "mysql/migrator.h"

#include <algorithm>
#include <map>

#include "allot_mysql_migrations.h"

namespace allot::mysql {
namespace {

constexpr std::string_view kCreateSchemaMigrations =
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version INT NOT NULL PRIMARY KEY,"
    " name VARCHAR(128) NOT NULL,"
    " applied_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)"
    ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4";

std::string_view trim(std::string_view text) {
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return {};
  const auto last = text.find_last_not_of(" \t\r\n");
  return text.substr(first, last - first + 1);
}

bool isCommentLine(std::string_view trimmed_line) {
  return trimmed_line.starts_with("--") || trimmed_line.starts_with("#");
}

// Holds the named lock for the lifetime of a migrate() call. The explicit release() is the
// checked path; the destructor only covers early returns, where the error already being
// returned matters more than a failed release (the server frees the lock with the
// connection in any case).
class MigrationLock {
 public:
  explicit MigrationLock(Connection& connection) : connection_(connection) {}
  MigrationLock(const MigrationLock&) = delete;
  MigrationLock& operator=(const MigrationLock&) = delete;
  ~MigrationLock() {
    if (held_) static_cast<void>(release());
  }

  [[nodiscard]] Result<void> acquire() {
    ALLOT_TRY(rows,
              connection_.query("SELECT GET_LOCK(?, ?)",
                                {kMigrationLockName, std::int64_t{kMigrationLockWaitSeconds}}));
    if (rows.size() != 1 || rows[0].isNull(0)) {
      return fail(ErrorCode::kInternal, "GET_LOCK('allot_migrations') returned NULL");
    }
    ALLOT_TRY(got, rows[0].integer(0));
    if (got != 1) {
      return fail(ErrorCode::kUnavailable, "another process held the migration lock for " +
                                               std::to_string(kMigrationLockWaitSeconds) + " s");
    }
    held_ = true;
    return {};
  }

  [[nodiscard]] Result<void> release() {
    held_ = false;
    ALLOT_TRY(rows, connection_.query("SELECT RELEASE_LOCK(?)", {kMigrationLockName}));
    if (rows.size() != 1 || rows[0].text(0) != "1") {
      return fail(ErrorCode::kInternal, "RELEASE_LOCK('allot_migrations') did not release it");
    }
    return {};
  }

 private:
  Connection& connection_;
  bool held_ = false;
};

Result<void> applyOne(Connection& connection, const Migration& migration) {
  const auto statements = splitStatements(migration.text);
  for (std::size_t i = 0; i < statements.size(); ++i) {
    auto done = connection.executeText(statements[i]);
    if (!done) {
      return fail(done.error().code, "migration " + migration.name + ", statement " +
                                         std::to_string(i + 1) + ": " + done.error().message);
    }
  }
  ALLOT_TRY_VOID(
      connection.execute("INSERT INTO schema_migrations (version, name, applied_at) "
                         "VALUES (?, ?, CURRENT_TIMESTAMP(6))",
                         {std::int64_t{migration.version}, std::string_view(migration.name)}));
  return {};
}

Result<MigrationReport> migrateLocked(Connection& connection,
                                      std::span<const Migration> migrations) {
  ALLOT_TRY_VOID(connection.executeText(kCreateSchemaMigrations));
  ALLOT_TRY(rows, connection.query("SELECT version, name FROM schema_migrations ORDER BY version"));
  std::map<int, std::string> present;
  for (const auto& row : rows) {
    ALLOT_TRY(version, row.integer(0));
    present.emplace(static_cast<int>(version), std::string(row.text(1)));
  }
  for (const auto& [version, name] : present) {
    const bool known = std::any_of(migrations.begin(), migrations.end(),
                                   [&](const Migration& m) { return m.version == version; });
    if (!known) {
      return fail(ErrorCode::kInternal,
                  "the database has schema version " + std::to_string(version) + " (" + name +
                      ") which this binary does not know: it was migrated by a newer allotd");
    }
  }
  MigrationReport report;
  for (const auto& migration : migrations) {
    if (present.contains(migration.version)) continue;
    ALLOT_TRY_VOID(applyOne(connection, migration));
    report.applied.push_back(migration.version);
    present.emplace(migration.version, migration.name);
  }
  report.schema_version = present.empty() ? 0 : present.rbegin()->first;
  return report;
}

}  // namespace

Result<Migration> parseMigration(std::string_view file_name, std::string_view text) {
  constexpr std::size_t kDigits = 4;
  constexpr std::string_view kSuffix = ".sql";
  auto bad = [&] {
    return fail(ErrorCode::kInternal, "migration file '" + std::string(file_name) +
                                          "' is not named NNNN_description.sql");
  };
  if (file_name.size() <= kDigits + 1 + kSuffix.size() || !file_name.ends_with(kSuffix) ||
      file_name[kDigits] != '_') {
    return bad();
  }
  int version = 0;
  for (std::size_t i = 0; i < kDigits; ++i) {
    if (file_name[i] < '0' || file_name[i] > '9') return bad();
    version = version * 10 + (file_name[i] - '0');
  }
  const auto description =
      file_name.substr(kDigits + 1, file_name.size() - kDigits - 1 - kSuffix.size());
  for (char c : description) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return bad();
  }
  if (version == 0) return bad();
  return Migration{version, std::string(file_name), text};
}

Result<std::vector<Migration>> embeddedMigrations() {
  std::vector<Migration> out;
  for (const auto& file : migrations::files()) {
    ALLOT_TRY(migration, parseMigration(file.name, file.text));
    out.push_back(std::move(migration));
  }
  std::sort(out.begin(), out.end(),
            [](const Migration& a, const Migration& b) { return a.version < b.version; });
  for (std::size_t i = 1; i < out.size(); ++i) {
    if (out[i].version == out[i - 1].version) {
      return fail(ErrorCode::kInternal,
                  "migrations " + out[i - 1].name + " and " + out[i].name + " share a version");
    }
  }
  return out;
}

std::vector<std::string> splitStatements(std::string_view text) {
  std::vector<std::string> statements;
  std::string current;
  auto finish = [&] {
    if (!trim(current).empty()) statements.emplace_back(trim(current));
    current.clear();
  };
  while (!text.empty()) {
    const auto newline = text.find('\n');
    const auto line = text.substr(0, newline);
    text = newline == std::string_view::npos ? std::string_view{} : text.substr(newline + 1);
    const auto trimmed = trim(line);
    if (isCommentLine(trimmed)) continue;
    if (trimmed.ends_with(';')) {
      current.append(line.substr(0, line.rfind(';')));
      finish();
      continue;
    }
    current.append(line).push_back('\n');
  }
  finish();
  return statements;
}

Result<std::unique_ptr<Connection>> openMigrationConnection(const MysqlOptions& options) {
  MysqlOptions migration_options = options;
  migration_options.read_timeout_s = std::max(options.read_timeout_s, kMigrationReadTimeoutSeconds);
  migration_options.write_timeout_s =
      std::max(options.write_timeout_s, kMigrationReadTimeoutSeconds);
  static_assert(kMigrationLockWaitSeconds < kMigrationReadTimeoutSeconds);
  return Connection::open(migration_options);
}

Result<MigrationReport> migrate(Connection& connection, std::span<const Migration> migrations) {
  MigrationLock lock(connection);
  ALLOT_TRY_VOID(lock.acquire());
  auto report = migrateLocked(connection, migrations);
  auto released = lock.release();
  if (!report) return report;
  if (!released) return std::unexpected(released.error());
  return report;
}

}  // namespace allot::mysql

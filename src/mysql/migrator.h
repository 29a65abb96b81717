// Versioned schema migrations, embedded in the binary at build time from
// src/mysql/migrations/NNNN_description.sql (NNNN: four digits, the version).
//
// migrate() runs at start-up. It takes the server-wide lock GET_LOCK('allot_migrations', 30)
// so that several allotd processes starting together migrate once, creates
// schema_migrations if needed, applies every version the database lacks in ascending order
// and records each one. Running it again is a no-op. A version recorded in the database that
// this binary does not carry is an error: the schema is newer than the code.
//
// MariaDB commits DDL implicitly, so a migration is not atomic: write each statement so that
// running it again after a crash half-way through a file is harmless (CREATE TABLE IF NOT
// EXISTS, ADD COLUMN IF NOT EXISTS, ...).
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "mysql/connection.h"
#include "mysql/url.h"

namespace allot::mysql {

inline constexpr std::string_view kMigrationLockName = "allot_migrations";
inline constexpr int kMigrationLockWaitSeconds = 30;
// DDL on a large table can run for minutes; the migration connection waits that long.
inline constexpr int kMigrationReadTimeoutSeconds = 600;

struct Migration {
  int version = 0;
  std::string name;       // the file name, e.g. "0001_core.sql"
  std::string_view text;  // the SQL (embedded, so it outlives the program's use of it)
};

struct MigrationReport {
  std::vector<int> applied;  // versions applied by this call, ascending
  int schema_version = 0;    // the highest version in the database afterwards
};

// Parses "NNNN_description.sql" (description: [a-z0-9_]+); kInternal on any other name.
[[nodiscard]] Result<Migration> parseMigration(std::string_view file_name, std::string_view text);
// The migrations compiled into this binary, sorted by version; kInternal on a bad file name
// or two files with one version.
[[nodiscard]] Result<std::vector<Migration>> embeddedMigrations();

// Splits a migration file into statements. The rule, kept deliberately simple: a statement
// ends at a line whose last non-blank character is ';' (the ';' is dropped). Lines whose
// first non-blank characters are "--" or "#" are comments: they are removed and never end
// a statement. So a ';' followed by a comment on the same line does NOT end a statement,
// and a ';' at the end of a line inside a string literal does; migrations avoid both.
// Text after the last ';' that is not blank is a final statement.
[[nodiscard]] std::vector<std::string> splitStatements(std::string_view text);

// A connection for migrate(): the options' address with a read timeout long enough for
// the lock wait and for slow DDL.
[[nodiscard]] Result<std::unique_ptr<Connection>> openMigrationConnection(
    const MysqlOptions& options);

// Applies `migrations` (sorted by version, as embeddedMigrations() returns them).
[[nodiscard]] Result<MigrationReport> migrate(Connection& connection,
                                              std::span<const Migration> migrations);

}  // namespace allot::mysql

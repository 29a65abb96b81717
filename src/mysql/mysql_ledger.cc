// The MariaDB Ledger. Each method documents which rows it locks; every transaction locks
// the stock_adjustments row before the stock row, so no two of them can wait on each other
// in a cycle.
#include "mysql/mysql_ledger.h"

#include <algorithm>
#include <array>
#include <unordered_map>

#include "mysql/record_params.h"

namespace allot::mysql {
namespace {

constexpr std::string_view kSelectStock =
    "SELECT on_hand, preallocated, shortage FROM stock WHERE dept_no = ? AND goods_no = ? "
    "AND warehouse_no = ? AND stock_status = ? AND stock_type = ? AND goods_level = ?";

// kSelectStock of many records: the row-constructor IN is a point lookup of the primary key
// per record. Followed by one "(?, ?, ?, ?, ?, ?)" per record, joined by commas, and ")".
constexpr std::string_view kSelectStocksPrefix =
    "SELECT dept_no, goods_no, warehouse_no, stock_status, stock_type, goods_level, on_hand,"
    " preallocated, shortage FROM stock WHERE (dept_no, goods_no, warehouse_no, stock_status,"
    " stock_type, goods_level) IN (";
// Records per statement of findRecords: an order's lines at most, as it is used.
constexpr std::size_t kSelectStocksBatchMax = 200;

// A no-op update on a duplicate, rather than INSERT IGNORE, because IGNORE also turns real
// data errors (an over-long value) into warnings.
constexpr std::string_view kEnsureStock =
    "INSERT INTO stock (dept_no, goods_no, warehouse_no, stock_status, stock_type, goods_level)"
    " VALUES (?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE dept_no = dept_no";

constexpr std::string_view kAddStock =
    "INSERT INTO stock (dept_no, goods_no, warehouse_no, stock_status, stock_type, goods_level,"
    " on_hand) VALUES (?, ?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE on_hand = on_hand + "
    "VALUES(on_hand)";

constexpr std::string_view kSubtractStock =
    "UPDATE stock SET on_hand = on_hand + ? WHERE dept_no = ? AND goods_no = ? AND "
    "warehouse_no = ? AND stock_status = ? AND stock_type = ? AND goods_level = ? AND "
    "on_hand + ? >= 0";

// Affected rows: 1 when the row was inserted, 0 when it already existed (untouched).
constexpr std::string_view kInsertAdjustment =
    "INSERT INTO stock_adjustments (dept_no, ref, goods_no, warehouse_no, stock_status,"
    " stock_type, goods_level, body_digest, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending')"
    " ON DUPLICATE KEY UPDATE ref = ref";

constexpr std::string_view kSelectAdjustment =
    "SELECT goods_no, warehouse_no, stock_status, stock_type, goods_level, body_digest, state,"
    " answer_on_hand, answer_preallocated, answer_shortage FROM stock_adjustments"
    " WHERE dept_no = ? AND ref = ?";

// An adjustment row as read back (columns of kSelectAdjustment).
struct AdjustmentRow {
  RecordKey key;
  std::optional<std::string> digest;
  std::string state;
  std::optional<Quantities> answer;
};

Result<AdjustmentRow> decodeAdjustment(const std::string& dept_no, const Row& row) {
  AdjustmentRow out;
  out.key = recordKeyOf(dept_no, row, 0);
  if (!row.isNull(5)) out.digest = std::string(row.text(5));
  out.state = std::string(row.text(6));
  if (out.state == "complete") {
    ALLOT_TRY(on_hand, row.integer(7));
    ALLOT_TRY(preallocated, row.integer(8));
    ALLOT_TRY(shortage, row.integer(9));
    out.answer = Quantities{on_hand, preallocated, shortage};
  }
  return out;
}

Result<std::optional<AdjustmentRow>> readAdjustment(Connection& connection,
                                                    const std::string& dept_no,
                                                    const std::string& ref, bool for_update) {
  const std::string sql = std::string(kSelectAdjustment) + (for_update ? " FOR UPDATE" : "");
  ALLOT_TRY(rows, connection.query(sql, {dept_no, ref}));
  if (rows.empty()) return std::optional<AdjustmentRow>{};
  ALLOT_TRY(decoded, decodeAdjustment(dept_no, rows[0]));
  return std::optional<AdjustmentRow>{std::move(decoded)};
}

// Adds delta to on_hand, never below zero. A missing row counts as zero on hand.
Result<void> changeOnHand(Connection& connection, const RecordKey& key, std::int64_t delta) {
  if (delta >= 0) {
    ALLOT_TRY_VOID(connection.execute(kAddStock, keyParams(key, delta)));
    return {};
  }
  auto params = keyParams(key, delta);
  std::array<Param, 8> subtract{Param{delta}, params[0], params[1], params[2],
                                params[3],    params[4], params[5], Param{delta}};
  ALLOT_TRY(changed, connection.execute(kSubtractStock, subtract));
  if (changed == 0) {
    return fail(ErrorCode::kInsufficientStock,
                "on_hand of " + key.index() + " is less than " + std::to_string(-delta));
  }
  return {};
}

// Compensation reasons come from error messages of any origin: keep printable ASCII only,
// so the row can never fail on an invalid UTF-8 sequence, and cut it to the column size.
std::string sanitizeReason(std::string_view reason) {
  std::string out;
  out.reserve(std::min(reason.size(), kCompensationReasonLengthMax));
  for (char c : reason) {
    if (out.size() == kCompensationReasonLengthMax) break;
    const auto byte = static_cast<unsigned char>(c);
    out.push_back(byte >= 0x20 && byte < 0x7f ? c : '?');
  }
  return out;
}

}  // namespace

Result<std::unique_ptr<MysqlLedger>> MysqlLedger::open(const MysqlOptions& options) {
  ALLOT_TRY_VOID(validateOptions(options));
  ALLOT_TRY(migrations, embeddedMigrations());
  MigrationReport report;
  {
    ALLOT_TRY(connection, openMigrationConnection(options));
    ALLOT_TRY(done, migrate(*connection, migrations));
    report = std::move(done);
  }
  ALLOT_TRY(pool, Pool::create(options));
  return std::unique_ptr<MysqlLedger>(new MysqlLedger(std::move(pool), std::move(report)));
}

Result<std::optional<Quantities>> MysqlLedger::findRecord(const RecordKey& key) {
  ALLOT_TRY(lease, pool_->acquire());
  ALLOT_TRY(rows, lease->query(kSelectStock, keyParams(key)));
  if (rows.empty()) return std::optional<Quantities>{};
  ALLOT_TRY(on_hand, rows[0].integer(0));
  ALLOT_TRY(preallocated, rows[0].integer(1));
  ALLOT_TRY(shortage, rows[0].integer(2));
  return std::optional<Quantities>{Quantities{on_hand, preallocated, shortage}};
}

Result<std::vector<std::optional<Quantities>>> MysqlLedger::findRecords(
    const std::vector<RecordKey>& keys) {
  std::vector<std::optional<Quantities>> found(keys.size());
  if (keys.empty()) return found;
  std::unordered_map<std::string, std::vector<std::size_t>> positions;  // index -> keys' i
  for (std::size_t i = 0; i < keys.size(); ++i) positions[keys[i].index()].push_back(i);
  ALLOT_TRY(lease, pool_->acquire());
  for (std::size_t begin = 0; begin < keys.size(); begin += kSelectStocksBatchMax) {
    const std::size_t end = std::min(keys.size(), begin + kSelectStocksBatchMax);
    std::string sql(kSelectStocksPrefix);
    std::vector<Param> params;
    params.reserve((end - begin) * 6);
    for (std::size_t i = begin; i < end; ++i) {
      sql += i == begin ? "(?, ?, ?, ?, ?, ?)" : ", (?, ?, ?, ?, ?, ?)";
      const auto key_params = keyParams(keys[i]);
      params.insert(params.end(), key_params.begin(), key_params.end());
    }
    sql += ")";
    ALLOT_TRY(rows, lease->query(sql, params));
    for (const Row& row : rows) {
      const RecordKey key = recordKeyOf(std::string(row.text(0)), row, 1);
      ALLOT_TRY(on_hand, row.integer(6));
      ALLOT_TRY(preallocated, row.integer(7));
      ALLOT_TRY(shortage, row.integer(8));
      const auto at = positions.find(key.index());
      if (at == positions.end()) continue;  // not asked for: cannot happen
      for (const std::size_t i : at->second) found[i] = Quantities{on_hand, preallocated, shortage};
    }
  }
  return found;
}

Result<void> MysqlLedger::ensureRecord(const RecordKey& key) {
  ALLOT_TRY(lease, pool_->acquire());
  ALLOT_TRY_VOID(lease->execute(kEnsureStock, keyParams(key)));
  return {};
}

// No transaction: the INSERT alone decides who claims the ref (the primary key), and the
// SELECT after a duplicate only reads a row that, once it exists, changes only forward
// (pending -> applied -> complete) or disappears (a dropped claim; then claim again).
Result<AdjustmentClaim> MysqlLedger::claimAdjustment(const RecordKey& key, const std::string& ref,
                                                     const std::string& digest) {
  ALLOT_TRY(lease, pool_->acquire());
  Connection& connection = *lease;
  constexpr int kClaimAttemptsMax = 3;
  for (int attempt = 0; attempt < kClaimAttemptsMax; ++attempt) {
    auto params = keyParams(key, std::string_view(digest));
    const std::array<Param, 8> insert{params[0], Param{std::string_view(ref)},
                                      params[1], params[2],
                                      params[3], params[4],
                                      params[5], params[6]};
    ALLOT_TRY(inserted, connection.execute(kInsertAdjustment, insert));
    if (inserted == 1) return AdjustmentClaim{AdjustmentClaim::Kind::kNew, std::nullopt};

    ALLOT_TRY(found, readAdjustment(connection, key.dept_no, ref, false));
    if (!found) continue;  // dropped between the two statements: claim again
    if (found->key != key) return AdjustmentClaim{AdjustmentClaim::Kind::kConflict, std::nullopt};
    if (!found->digest) {
      // Written by the write-back without a body: the first claim with this record adopts it.
      ALLOT_TRY(adopted,
                connection.execute("UPDATE stock_adjustments SET body_digest = ? WHERE dept_no = ? "
                                   "AND ref = ? AND body_digest IS NULL",
                                   {digest, key.dept_no, ref}));
      if (adopted == 0) continue;  // another claim adopted it first: read it again
      found->digest = digest;
    }
    if (*found->digest != digest) {
      return AdjustmentClaim{AdjustmentClaim::Kind::kConflict, std::nullopt};
    }
    if (found->state == "complete") {
      return AdjustmentClaim{AdjustmentClaim::Kind::kReplay, found->answer};
    }
    return AdjustmentClaim{AdjustmentClaim::Kind::kResume, std::nullopt};
  }
  return fail(ErrorCode::kUnavailable, "adjust ref " + ref + " kept changing while claimed");
}

// The adjustment row (created here if the claim is missing) is locked first, and on_hand
// changes only while that row is still pending, so a second call for the same ref finds it
// applied and changes nothing.
Result<void> applyAdjustmentIn(Connection& connection, const RecordKey& key, const std::string& ref,
                               std::int64_t delta) {
  auto params = keyParams(key, nullptr);
  const std::array<Param, 8> insert{params[0], Param{std::string_view(ref)},
                                    params[1], params[2],
                                    params[3], params[4],
                                    params[5], params[6]};
  ALLOT_TRY_VOID(connection.execute(kInsertAdjustment, insert));
  ALLOT_TRY(found, readAdjustment(connection, key.dept_no, ref, true));
  if (!found) {
    return fail(ErrorCode::kInternal, "adjust ref " + ref + " vanished inside its transaction");
  }
  if (found->key != key) {
    return fail(ErrorCode::kIdempotencyConflict,
                "adjust ref " + ref + " belongs to another record: " + found->key.index());
  }
  if (found->state != "pending") return {};
  ALLOT_TRY_VOID(changeOnHand(connection, key, delta));
  ALLOT_TRY_VOID(connection.execute(
      "UPDATE stock_adjustments SET state = 'applied', delta = ? WHERE dept_no = ? AND ref = ?",
      {delta, key.dept_no, ref}));
  return {};
}

// One transaction around applyAdjustmentIn.
Result<void> MysqlLedger::applyAdjustment(const RecordKey& key, const std::string& ref,
                                          std::int64_t delta) {
  return pool_->withTransaction([&](Connection& connection) -> Result<void> {
    return applyAdjustmentIn(connection, key, ref, delta);
  });
}

// The first answer wins: completing an already complete ref keeps the answer it replays.
Result<Quantities> MysqlLedger::completeAdjustment(const std::string& dept_no,
                                                   const std::string& ref,
                                                   const Quantities& answer) {
  ALLOT_TRY(lease, pool_->acquire());
  ALLOT_TRY(changed,
            lease->execute("UPDATE stock_adjustments SET state = 'complete', answer_on_hand = ?, "
                           "answer_preallocated = ?, answer_shortage = ? WHERE dept_no = ? AND "
                           "ref = ? AND state <> 'complete'",
                           {answer.on_hand, answer.preallocated, answer.shortage, dept_no, ref}));
  if (changed == 1) return answer;
  ALLOT_TRY(found, readAdjustment(*lease, dept_no, ref, false));
  if (!found) return fail(ErrorCode::kNotFound, "no adjust ref " + ref + " for " + dept_no);
  if (!found->answer) {
    return fail(ErrorCode::kInternal,
                "adjust ref " + ref + " of " + dept_no + " is complete without its answer");
  }
  return *found->answer;  // already complete: the first answer
}

Result<void> MysqlLedger::dropAdjustmentClaim(const std::string& dept_no, const std::string& ref) {
  ALLOT_TRY(lease, pool_->acquire());
  // Only a pending claim: once applied, the ref changed on_hand and must stay recorded.
  ALLOT_TRY_VOID(lease->execute(
      "DELETE FROM stock_adjustments WHERE dept_no = ? AND ref = ? AND state = 'pending'",
      {dept_no, ref}));
  return {};
}

Result<void> MysqlLedger::recordCompensation(const CompensationTask& task) {
  if (task.kind.empty() || task.kind.size() > kCompensationKindLengthMax) {
    return fail(ErrorCode::kInvalidRequest, "compensation kind must be 1-32 characters");
  }
  const std::string reason = sanitizeReason(task.reason);
  auto params = keyParams(task.key, std::string_view(task.order_no), std::string_view(reason));
  const std::array<Param, 9> insert{Param{std::string_view(task.kind)},
                                    params[0],
                                    params[1],
                                    params[2],
                                    params[3],
                                    params[4],
                                    params[5],
                                    params[6],
                                    params[7]};
  ALLOT_TRY(lease, pool_->acquire());
  ALLOT_TRY_VOID(lease->execute(
      "INSERT INTO compensation_tasks (kind, dept_no, goods_no, warehouse_no, stock_status, "
      "stock_type, goods_level, order_no, reason, state, attempts, next_attempt_at) VALUES "
      "(?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0, CURRENT_TIMESTAMP(6))",
      insert));
  return {};
}

Result<void> MysqlLedger::ping() {
  ALLOT_TRY(lease, pool_->acquire());
  ALLOT_TRY(rows, lease->query("SELECT 1"));
  if (rows.size() != 1 || rows[0].text(0) != "1") {
    return fail(ErrorCode::kInternal, "mysql answered SELECT 1 with something else");
  }
  return {};
}

}  // namespace allot::mysql

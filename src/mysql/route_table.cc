#include "mysql/route_table.h"

namespace allot::mysql {

Result<std::optional<StoredRoute>> MysqlRouteTable::findRoute(const std::string& dept_no) {
  ALLOT_TRY(lease, pool_.acquire());
  ALLOT_TRY(rows, lease->query("SELECT route, switching FROM merchant_routes WHERE dept_no = ?",
                               {std::string_view(dept_no)}));
  if (rows.empty()) return std::optional<StoredRoute>();
  const auto route = rows[0].text(0);
  if (route != "redis" && route != "mysql") {
    return fail(ErrorCode::kInternal, "merchant_routes holds an unknown route for " + dept_no);
  }
  ALLOT_TRY(switching, rows[0].integer(1));
  return std::optional<StoredRoute>(
      StoredRoute{route == "redis" ? Route::kRedis : Route::kMysql, switching != 0});
}

Result<void> MysqlRouteTable::saveRoute(const std::string& dept_no, const StoredRoute& route) {
  const std::int64_t switching = route.switching ? 1 : 0;
  // The merchant's fence first, exclusively: this waits for the MySQL path's transactions
  // running for the merchant on any allotd (they hold it shared, mysql/mysql_path.h), and
  // every later one reads the route saved here. In the MySQL path's lock order (the fence,
  // then the route row), so the two never wait on each other in a cycle.
  return pool_.withTransaction([&](Connection& connection) -> Result<void> {
    ALLOT_TRY_VOID(
        connection.execute("INSERT INTO merchant_fences (dept_no, epoch) VALUES (?, 1) "
                           "ON DUPLICATE KEY UPDATE epoch = epoch + 1",
                           {std::string_view(dept_no)}));
    ALLOT_TRY_VOID(connection.execute(
        "INSERT INTO merchant_routes (dept_no, route, switching) VALUES (?, ?, ?) "
        "ON DUPLICATE KEY UPDATE route = VALUES(route), switching = VALUES(switching)",
        {std::string_view(dept_no), routeName(route.route), switching}));
    return {};
  });
}

Result<void> MysqlRouteTable::forgetRoute(const std::string& dept_no) {
  ALLOT_TRY(lease, pool_.acquire());
  ALLOT_TRY_VOID(
      lease->execute("DELETE FROM merchant_routes WHERE dept_no = ?", {std::string_view(dept_no)}));
  return {};
}

}  // namespace allot::mysql

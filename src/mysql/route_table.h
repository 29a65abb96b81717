// The merchant_routes table behind the MerchantRouter: the route of each configured merchant
// and whether a switch of it is in progress.
#pragma once

#include <optional>
#include <string>

#include "domain/merchant_router.h"
#include "mysql/pool.h"

namespace allot::mysql {

class MysqlRouteTable final : public RouteTable {
 public:
  explicit MysqlRouteTable(Pool& pool) : pool_(pool) {}

  Result<std::optional<StoredRoute>> findRoute(const std::string& dept_no) override;
  Result<void> saveRoute(const std::string& dept_no, const StoredRoute& route) override;
  Result<void> forgetRoute(const std::string& dept_no) override;

 private:
  Pool& pool_;
};

}  // namespace allot::mysql

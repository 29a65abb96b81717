// The command line of allotctl (CLI11) and the run of one command; see allotctl.h.
//
// Each subcommand registers its options and a builder that turns them into an ApiCall once
// parsing is done. Every check that can fail without the server (the line specs, the lines
// file, the URL) runs before anything is sent, so a usage error never leaves half a change.
#include "cli/allotctl.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "cli/output.h"

namespace allot::cli {

namespace {

using CallBuilder = std::function<Result<ApiCall>()>;

// A subcommand and the builder of its call, used when that subcommand was the one parsed.
struct Command {
  CLI::App* app = nullptr;
  CallBuilder build;
};

void addRecordOptions(CLI::App& command, RecordFields& record) {
  command.add_option("--dept", record.dept_no, "merchant (dept_no)")->required();
  command.add_option("--goods", record.goods_no, "SKU (goods_no)")->required();
  command.add_option("--warehouse", record.warehouse_no, "warehouse_no")->required();
  command.add_option("--status", record.stock_status, "stock_status (server default \"1\")");
  command.add_option("--type", record.stock_type, "stock_type (server default \"1\")");
  command.add_option("--level", record.goods_level, "goods_level (server default \"A\")");
}

Command addAdjust(CLI::App& app) {
  struct Args {
    RecordFields record;
    std::optional<std::int64_t> delta;
    std::optional<std::int64_t> on_hand;
    std::string ref;
  };
  auto args = std::make_shared<Args>();
  CLI::App* command = app.add_subcommand(
      "adjust", "Change a record's on_hand: inbound stock, counts, losses (POST /v1/stock/adjust)");
  addRecordOptions(*command, args->record);
  CLI::Option_group* change = command->add_option_group("change", "exactly one of");
  change->add_option("--delta", args->delta, "add N to on_hand (negative to remove)");
  change->add_option("--on-hand", args->on_hand, "set on_hand to N");
  change->require_option(1);
  command->add_option("--ref", args->ref, "idempotency key, unique per merchant")->required();
  return {command, [args]() -> Result<ApiCall> {
            const StockChange stock_change =
                args->delta.has_value() ? StockChange{StockChange::Kind::kDelta, *args->delta}
                                        : StockChange{StockChange::Kind::kOnHand, *args->on_hand};
            return adjustCall(args->record, stock_change, args->ref);
          }};
}

Command addStock(CLI::App& app) {
  auto record = std::make_shared<RecordFields>();
  CLI::App* command = app.add_subcommand("stock", "Show a record's quantities (GET /v1/stock)");
  addRecordOptions(*command, *record);
  return {command, [record]() -> Result<ApiCall> { return stockCall(*record); }};
}

Result<std::string> readLinesFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return fail(ErrorCode::kInvalidRequest, "cannot open lines file " + path);
  std::string content(kLinesFileBytesMax + 1, '\0');
  file.read(content.data(), static_cast<std::streamsize>(content.size()));
  if (file.bad()) return fail(ErrorCode::kInvalidRequest, "cannot read lines file " + path);
  content.resize(static_cast<std::size_t>(file.gcount()));
  if (content.size() > kLinesFileBytesMax) {
    return fail(ErrorCode::kInvalidRequest, "lines file " + path + " is larger than " +
                                                std::to_string(kLinesFileBytesMax) + " bytes");
  }
  return content;
}

Command addPreallocate(CLI::App& app) {
  struct Args {
    std::string dept_no;
    std::string order_no;
    std::vector<std::string> line_specs;
    std::optional<std::string> lines_file;
    bool allow_shortage = false;
  };
  auto args = std::make_shared<Args>();
  CLI::App* command =
      app.add_subcommand("preallocate", "Hold stock for an order (POST /v1/preallocations)");
  command->add_option("--dept", args->dept_no, "merchant (dept_no)")->required();
  command->add_option("--order", args->order_no, "order_no, unique per merchant")->required();
  CLI::Option_group* source = command->add_option_group("lines", "exactly one of");
  source->add_option("--line", args->line_specs,
                     "GOODS:WAREHOUSE[:STATUS:TYPE:LEVEL]=QTY (repeatable)");
  source->add_option("--lines-file", args->lines_file,
                     "JSON file: an array of line objects, or one line object per text line");
  source->require_option(1);
  command->add_flag("--allow-shortage", args->allow_shortage,
                    "take what is available and record the rest as shortage");
  return {command, [args]() -> Result<ApiCall> {
            std::vector<LineSpec> lines;
            if (args->lines_file.has_value()) {
              ALLOT_TRY(content, readLinesFile(*args->lines_file));
              ALLOT_TRY(parsed, parseLinesFile(content));
              lines = std::move(parsed);
            }
            for (const std::string& spec : args->line_specs) {
              ALLOT_TRY(line, parseLineSpec(spec));
              lines.push_back(std::move(line));
            }
            return preallocateCall(args->dept_no, args->order_no, lines, args->allow_shortage);
          }};
}

// rollback, deduct and order take the same two options and differ only in the call.
Command addOrderCommand(CLI::App& app, std::string name, std::string description,
                        ApiCall (*makeCall)(std::string_view, std::string_view)) {
  auto order = std::make_shared<std::pair<std::string, std::string>>();
  CLI::App* command = app.add_subcommand(std::move(name), std::move(description));
  command->add_option("--dept", order->first, "merchant (dept_no)")->required();
  command->add_option("--order", order->second, "order_no")->required();
  return {command,
          [order, makeCall]() -> Result<ApiCall> { return makeCall(order->first, order->second); }};
}

std::vector<Command> addRoute(CLI::App& app) {
  auto args = std::make_shared<std::pair<std::string, std::string>>();
  CLI::App* route = app.add_subcommand(
      "route", "Show or switch which path serves a merchant (admin: /v1/admin/merchants)");
  route->require_subcommand(1);
  CLI::App* get = route->add_subcommand("get", "Show the merchant's route");
  get->add_option("dept_no", args->first, "merchant")->required();
  CLI::App* set = route->add_subcommand("set", "Switch the merchant's route live");
  set->add_option("dept_no", args->first, "merchant")->required();
  set->add_option("route", args->second, "redis or mysql")
      ->required()
      ->check(CLI::IsMember({"redis", "mysql"}));
  return {{get, [args]() -> Result<ApiCall> { return routeGetCall(args->first); }},
          {set, [args]() -> Result<ApiCall> { return routeSetCall(args->first, args->second); }}};
}

Command addReconcile(CLI::App& app) {
  auto dept_no = std::make_shared<std::optional<std::string>>();
  CLI::App* command =
      app.add_subcommand("reconcile", "Run a reconciliation now (admin: POST /v1/admin/reconcile)");
  command->add_option("--dept", *dept_no, "only this merchant");
  return {command, [dept_no]() -> Result<ApiCall> { return reconcileCall(*dept_no); }};
}

void addGlobalOptions(CLI::App& app, GlobalOptions& options) {
  app.add_option("--url", options.url, "allotd base URL, http://host:port")
      ->envname("ALLOT_URL")
      ->capture_default_str();
  app.add_option("--token", options.token, "API bearer token")->envname("ALLOT_API_TOKEN");
  app.add_option("--admin-token", options.admin_token, "admin bearer token (route, reconcile)")
      ->envname("ALLOT_ADMIN_TOKEN");
  app.add_flag("--json", options.json, "print the raw JSON answer");
  app.add_option("--timeout-ms", options.timeout_ms, "connect/read/write timeout")
      ->check(CLI::Range(std::int64_t{1}, kTimeoutMsMax))
      ->capture_default_str();
}

std::vector<Command> addCommands(CLI::App& app) {
  std::vector<Command> commands;
  commands.push_back(addAdjust(app));
  commands.push_back(addStock(app));
  commands.push_back(addPreallocate(app));
  commands.push_back(addOrderCommand(
      app, "rollback", "Cancel an order's hold (POST /v1/preallocations/rollback)", rollbackCall));
  commands.push_back(addOrderCommand(
      app, "deduct", "The order shipped: its hold leaves stock (POST /v1/preallocations/deduct)",
      deductCall));
  commands.push_back(
      addOrderCommand(app, "order", "Show an order (GET /v1/preallocations)", orderCall));
  for (Command& command : addRoute(app)) commands.push_back(std::move(command));
  commands.push_back(addReconcile(app));
  return commands;
}

}  // namespace

std::variant<Invocation, int> parseCommandLine(int argc, const char* const* argv, std::ostream& out,
                                               std::ostream& err) {
  CLI::App app{"allotctl: the command-line client of the allot inventory pre-allocation service",
               "allotctl"};
  app.footer(
      "Exit codes: 0 success, 1 API error answer, 2 usage error, 3 no answer "
      "(server unreachable or timed out).");
  app.require_subcommand(1);
  app.fallthrough();  // global options may follow the subcommand too
  GlobalOptions options;
  addGlobalOptions(app, options);
  const std::vector<Command> commands = addCommands(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    // --help is a ParseError with exit code 0; every other one is a usage error.
    return app.exit(error, out, err) == 0 ? kExitOk : kExitUsage;
  }
  auto endpoint = parseBaseUrl(options.url);
  if (!endpoint) {
    err << "error: usage: --url: " << endpoint.error().message << "\n";
    return kExitUsage;
  }
  for (const Command& command : commands) {
    if (!command.app->parsed()) continue;
    auto call = command.build();
    if (!call) {
      err << "error: usage: " << call.error().message << "\n";
      return kExitUsage;
    }
    if (app.get_option("--timeout-ms")->count() == 0) {
      options.timeout_ms = std::max(options.timeout_ms, call->timeout_ms);
    }
    return Invocation{std::move(options), std::move(*endpoint), std::move(*call)};
  }
  err << "error: usage: no command given\n";  // unreachable while a subcommand is required
  return kExitUsage;
}

int execute(const Invocation& invocation, std::ostream& out, std::ostream& err) {
  const GlobalOptions& options = invocation.options;
  const ApiCall& call = invocation.call;
  HttpClient client(invocation.endpoint, call.admin ? options.admin_token : options.token,
                    std::chrono::milliseconds(options.timeout_ms));
  const auto response = client.request(call.method, call.target, call.body);
  if (!response) {
    err << "error: " << errorCodeName(response.error().code) << ": " << response.error().message
        << "\n";
    return kExitUnreachable;
  }
  const bool success = response->status >= 200 && response->status < 300;
  if (options.json) {
    // The raw answer goes to stdout either way, so scripts can read error bodies too.
    out << response->body;
    if (response->body.empty() || response->body.back() != '\n') out << "\n";
  }
  if (!success) {
    err << formatApiError(response->status, response->body);
    return kExitApiError;
  }
  if (!options.json) out << formatAnswer(call.shape, response->body);
  return kExitOk;
}

int runAllotctl(int argc, const char* const* argv, std::ostream& out, std::ostream& err) {
  auto parsed = parseCommandLine(argc, argv, out, err);
  if (const int* exit_code = std::get_if<int>(&parsed)) return *exit_code;
  return execute(std::get<Invocation>(parsed), out, err);
}

}  // namespace allot::cli

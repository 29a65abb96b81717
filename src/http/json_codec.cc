// The JSON codec: strict parsing of request bodies and query strings into domain requests, and
// the encoding of domain answers. See json_codec.h for the rules every input must meet.
//
// Bodies are parsed twice: once by boost::json::parse into a tree, and once by a scanner that
// builds nothing and only looks for a key repeated inside one object, which parse() would
// silently resolve by keeping the last value. The tree lives in a monotonic arena that dies
// with the call, because every field is copied into a domain type before the call returns.
// A preallocation body of the contract's keys only, all valid, is first tried by a one-pass
// reader that builds the request directly (PreallocateReader); the hot path's bodies take
// that way, and whatever it does not take whole is parsed as above.
#include "http/json_codec.h"

#include <algorithm>
#include <array>
#include <boost/json.hpp>
#include <boost/json/basic_parser_impl.hpp>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <new>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "core/assert.h"
#include "core/decimal.h"
#include "core/limits.h"
#include "core/percent_decode.h"

namespace allot::http {
namespace {

namespace json = boost::json;

// Large enough for an ordinary order, so most requests parse without touching the heap.
constexpr std::size_t kArenaBytes = 4096;
// A refusal names this many short lines in its message; the "lines" array names them all.
constexpr std::size_t kRefusalNamedLinesMax = 10;

// The ref is checked with isValidField, so it must share the field length limit.
static_assert(limits::kRefLengthMax == limits::kFieldLengthMax);

constexpr std::array<std::string_view, 6> kRecordFieldNames = {
    "dept_no", "goods_no", "warehouse_no", "stock_status", "stock_type", "goods_level"};
constexpr std::array<std::string_view, 2> kOrderFieldNames = {"dept_no", "order_no"};

[[nodiscard]] std::unexpected<Error> invalid(std::string message) {
  return fail(ErrorCode::kInvalidRequest, std::move(message));
}

// ---- Messages ----

[[nodiscard]] std::string fieldRule() {
  return "must be a string of 1-" + std::to_string(limits::kFieldLengthMax) +
         " characters of [A-Za-z0-9_.-]";
}

// Where a value sits in the request: "dept_no", "lines[3].qty".
[[nodiscard]] std::string fieldPath(std::string_view prefix, std::string_view name) {
  std::string path(prefix);
  if (!path.empty()) path += '.';
  path += name;
  return path;
}

// The type of a JSON value, for "must be ..., not a string". Numbers are left out: a number
// of the wrong sort (1.5, 1e3, 2^63) is described by the rule itself.
[[nodiscard]] std::string notKind(const json::value& value) {
  switch (value.kind()) {
    case json::kind::null: return ", not null";
    case json::kind::bool_: return ", not a boolean";
    case json::kind::string: return ", not a string";
    case json::kind::array: return ", not an array";
    case json::kind::object: return ", not an object";
    case json::kind::int64:
    case json::kind::uint64:
    case json::kind::double_: return "";
  }
  return "";
}

// Request text quoted in a message: printable ASCII only, bounded, so a message can neither
// grow with the input nor carry bytes that are not UTF-8.
[[nodiscard]] std::string quoted(std::string_view text) {
  std::string out = "\"";
  for (std::size_t i = 0; i < text.size() && i < limits::kFieldLengthMax; ++i) {
    const char c = text[i];
    out += (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') ? c : '?';
  }
  if (text.size() > limits::kFieldLengthMax) out += "...";
  return out + "\"";
}

// ---- Parsing a body ----

// A boost::json::basic_parser handler that builds nothing and only tracks the keys of every
// open object, to find a key given twice in one object. The lowercase member names are the
// handler interface that basic_parser requires.
class DuplicateKeyScanner {
 public:
  static constexpr std::size_t max_object_size = static_cast<std::size_t>(-1);
  static constexpr std::size_t max_array_size = static_cast<std::size_t>(-1);
  static constexpr std::size_t max_key_size = static_cast<std::size_t>(-1);
  static constexpr std::size_t max_string_size = static_cast<std::size_t>(-1);

  [[nodiscard]] const std::optional<std::string>& duplicate() const { return duplicate_; }

  bool on_document_begin(json::error_code&) { return true; }
  bool on_document_end(json::error_code&) { return true; }
  bool on_array_begin(json::error_code&) { return true; }
  bool on_array_end(std::size_t, json::error_code&) { return true; }
  bool on_object_begin(json::error_code&) {
    open_objects_.push_back({keys_.size(), nullptr});
    return true;
  }
  bool on_object_end(std::size_t, json::error_code&) {
    keys_.resize(open_objects_.back().first_key);
    open_objects_.pop_back();
    return true;
  }
  bool on_string_part(json::string_view, std::size_t, json::error_code&) { return true; }
  bool on_string(json::string_view, std::size_t, json::error_code&) { return true; }
  bool on_key_part(json::string_view part, std::size_t, json::error_code&) {
    key_.append(part.data(), part.size());
    return true;
  }
  bool on_key(json::string_view part, std::size_t, json::error_code& ec) {
    key_.append(part.data(), part.size());
    if (!insert(open_objects_.back())) {
      duplicate_ = std::move(key_);
      ec = json::error::syntax;
      return false;
    }
    key_.clear();
    return true;
  }
  bool on_number_part(json::string_view, json::error_code&) { return true; }
  bool on_int64(std::int64_t, json::string_view, json::error_code&) { return true; }
  bool on_uint64(std::uint64_t, json::string_view, json::error_code&) { return true; }
  bool on_double(double, json::string_view, json::error_code&) { return true; }
  bool on_bool(bool, json::error_code&) { return true; }
  bool on_null(json::error_code&) { return true; }
  bool on_comment_part(json::string_view, json::error_code&) { return true; }
  bool on_comment(json::string_view, json::error_code&) { return true; }

 private:
  // The keys of an ordinary object are a few, compared in place; an object of many keys (a
  // body may carry thousands of unknown ones) moves to a hash set, so the scan stays linear.
  static constexpr std::size_t kKeysComparedInPlace = 16;
  struct OpenObject {
    std::size_t first_key;  // its keys are keys_[first_key..] while it has few
    std::unique_ptr<std::unordered_set<std::string>> many;
  };

  // False when key_ is already a key of the object.
  bool insert(OpenObject& object) {
    if (object.many) return object.many->insert(key_).second;
    const auto first = static_cast<std::ptrdiff_t>(object.first_key);
    if (std::find(keys_.begin() + first, keys_.end(), key_) != keys_.end()) return false;
    keys_.push_back(key_);
    if (keys_.size() - object.first_key > kKeysComparedInPlace) {
      object.many = std::make_unique<std::unordered_set<std::string>>(
          std::make_move_iterator(keys_.begin() + first), std::make_move_iterator(keys_.end()));
      keys_.resize(object.first_key);
    }
    return true;
  }

  std::vector<OpenObject> open_objects_;
  std::vector<std::string> keys_;  // the keys of the open objects that have few, outermost first
  std::string key_;                // the key being read, maybe in parts
  std::optional<std::string> duplicate_;
};

[[nodiscard]] json::parse_options parseOptions() {
  json::parse_options options;
  options.max_depth = limits::kJsonDepthMax;
  // Comments, trailing commas and invalid UTF-8 stay refused (the defaults): strict JSON only.
  return options;
}

// One well-formed JSON document of bounded size and depth with no key repeated in an object.
[[nodiscard]] Result<json::value> parseDocument(std::string_view body, json::storage_ptr arena) {
  if (body.size() > limits::kRequestBodyBytesMax) {
    return invalid("the body exceeds " + std::to_string(limits::kRequestBodyBytesMax) + " bytes");
  }
  const json::parse_options options = parseOptions();
  json::error_code ec;
  json::value document =
      json::parse(json::string_view(body.data(), body.size()), ec, std::move(arena), options);
  if (ec == json::error::too_deep) {
    return invalid("the body nests arrays and objects deeper than " +
                   std::to_string(limits::kJsonDepthMax) + " levels");
  }
  if (ec) return invalid("the body is not valid JSON: " + ec.message());

  json::basic_parser<DuplicateKeyScanner> scanner(options);
  scanner.write_some(false, body.data(), body.size(), ec);
  if (const auto& key = scanner.handler().duplicate()) {
    return invalid("the body gives the key " + quoted(*key) + " twice in one object");
  }
  if (ec) return invalid("the body is not valid JSON: " + ec.message());
  return document;
}

// Parses `body` as a JSON object and hands it to `read`, which copies what it needs; the tree
// and its arena die when this returns.
template <typename Read>
auto readObject(std::string_view body, Read read)
    -> decltype(read(std::declval<const json::object&>())) {
  std::array<unsigned char, kArenaBytes> buffer;
  json::monotonic_resource arena(buffer.data(), buffer.size());
  ALLOT_TRY(document, parseDocument(body, json::storage_ptr(&arena)));
  const json::object* object = document.if_object();
  if (object == nullptr) return invalid("the body must be a JSON object" + notKind(document));
  return read(*object);
}

// Keeps exceptions inside the codec: Boost may throw std::bad_alloc or std::length_error.
// Running out of memory is not the caller's fault, and nothing has changed yet, so it is
// kUnavailable (retry), while anything else Boost refuses is the input's fault.
template <typename Parse>
auto guarded(Parse parse) -> decltype(parse()) {
  try {
    return parse();
  } catch (const std::bad_alloc&) {
    return fail(ErrorCode::kUnavailable, "out of memory while reading the request");
  } catch (const std::exception& error) {
    return invalid(std::string("the request cannot be read: ") + error.what());
  }
}

// ---- Fields and values ----

[[nodiscard]] Result<std::string> checkedField(std::string_view text, std::string_view path) {
  if (!isValidField(text)) return invalid(std::string(path) + " " + fieldRule());
  return std::string(text);
}

// Where a value sits, named by its prefix and field: the path is only spelled out for an
// error message, so that a valid request builds no strings for it.
struct FieldName {
  std::string_view prefix;
  std::string_view name;
  [[nodiscard]] std::string path() const { return fieldPath(prefix, name); }
};

[[nodiscard]] Result<std::string> fieldValue(const json::value& value, const FieldName& field) {
  const json::string* text = value.if_string();
  if (text == nullptr) return invalid(field.path() + " " + fieldRule() + notKind(value));
  const std::string_view view(text->data(), text->size());
  if (!isValidField(view)) return invalid(field.path() + " " + fieldRule());
  return std::string(view);  // (checkedField would build the path before it is needed)
}

[[nodiscard]] Result<std::string> requiredField(const json::object& object, std::string_view name,
                                                std::string_view prefix = {}) {
  const json::value* value = object.if_contains(json::string_view(name.data(), name.size()));
  if (value == nullptr) return invalid(fieldPath(prefix, name) + " is required");
  return fieldValue(*value, FieldName{prefix, name});
}

[[nodiscard]] Result<std::string> optionalField(const json::object& object, std::string_view name,
                                                std::string_view prefix,
                                                std::string_view fallback) {
  const json::value* value = object.if_contains(json::string_view(name.data(), name.size()));
  if (value == nullptr) return std::string(fallback);
  return fieldValue(*value, FieldName{prefix, name});
}

struct IntegerRange {
  std::int64_t min = 0;
  std::int64_t max = 0;
};

// Quantities are counted, never measured, so only a JSON integer that Boost.JSON reads as an
// int64 passes: it reads 1.0, 1.5 and 1e3 as doubles and numbers beyond int64 as uint64 or
// double, and each of those is refused rather than rounded.
[[nodiscard]] Result<std::int64_t> integerValue(const json::value& value, const FieldName& field,
                                                IntegerRange range) {
  const std::int64_t* number = value.if_int64();
  if (number == nullptr || *number < range.min || *number > range.max) {
    return invalid(field.path() + " must be an integer " + std::to_string(range.min) + ".." +
                   std::to_string(range.max) + notKind(value));
  }
  return *number;
}

[[nodiscard]] Result<std::int64_t> requiredInteger(const json::object& object,
                                                   std::string_view name, std::string_view prefix,
                                                   IntegerRange range) {
  const json::value* value = object.if_contains(json::string_view(name.data(), name.size()));
  if (value == nullptr) return invalid(fieldPath(prefix, name) + " is required");
  return integerValue(*value, FieldName{prefix, name}, range);
}

[[nodiscard]] Result<bool> optionalBool(const json::object& object, std::string_view name,
                                        bool fallback) {
  const json::value* value = object.if_contains(json::string_view(name.data(), name.size()));
  if (value == nullptr) return fallback;
  const bool* flag = value->if_bool();
  if (flag == nullptr) {
    return invalid(std::string(name) + " must be true or false" + notKind(*value));
  }
  return *flag;
}

// The record fields of one object after dept_no, which the caller supplies (an order line
// takes its order's), with the defaults of the optional three.
[[nodiscard]] Result<RecordKey> recordFields(const json::object& object, std::string dept_no,
                                             std::string_view prefix) {
  ALLOT_TRY(goods_no, requiredField(object, "goods_no", prefix));
  ALLOT_TRY(warehouse_no, requiredField(object, "warehouse_no", prefix));
  ALLOT_TRY(stock_status, optionalField(object, "stock_status", prefix, kDefaultStockStatus));
  ALLOT_TRY(stock_type, optionalField(object, "stock_type", prefix, kDefaultStockType));
  ALLOT_TRY(goods_level, optionalField(object, "goods_level", prefix, kDefaultGoodsLevel));
  return RecordKey{std::move(dept_no),      std::move(goods_no),   std::move(warehouse_no),
                   std::move(stock_status), std::move(stock_type), std::move(goods_level)};
}

// ---- Requests ----

// A line may repeat its order's dept_no but never name another merchant: serving it from the
// order's dept_no instead would silently touch the wrong stock.
[[nodiscard]] Result<void> lineDeptMatches(const json::object& line, const std::string& dept_no,
                                           const std::string& prefix) {
  const json::value* value = line.if_contains("dept_no");
  if (value == nullptr) return {};
  ALLOT_TRY(line_dept_no, fieldValue(*value, FieldName{prefix, "dept_no"}));
  if (line_dept_no != dept_no) {
    return invalid(prefix + ".dept_no must equal the order's dept_no or be left out");
  }
  return {};
}

[[nodiscard]] Result<LineRequest> lineRequest(const json::value& value, const std::string& dept_no,
                                              std::size_t index) {
  const std::string prefix = "lines[" + std::to_string(index) + "]";
  const json::object* line = value.if_object();
  if (line == nullptr) return invalid(prefix + " must be an object" + notKind(value));
  ALLOT_TRY_VOID(lineDeptMatches(*line, dept_no, prefix));
  ALLOT_TRY(key, recordFields(*line, dept_no, prefix));
  ALLOT_TRY(qty, requiredInteger(*line, "qty", prefix, {limits::kLineQtyMin, limits::kLineQtyMax}));
  return LineRequest{std::move(key), qty};
}

[[nodiscard]] Result<std::vector<LineRequest>> lineRequests(const json::object& order,
                                                            const std::string& dept_no) {
  const auto rule = [] {
    return "lines must be an array of 1-" + std::to_string(limits::kOrderLinesMax) + " lines";
  };
  const json::value* value = order.if_contains("lines");
  if (value == nullptr) return invalid("lines is required");
  const json::array* array = value->if_array();
  if (array == nullptr) return invalid(rule() + notKind(*value));
  if (array->empty() || array->size() > limits::kOrderLinesMax) {
    return invalid(rule() + ", not " + std::to_string(array->size()));
  }
  std::vector<LineRequest> lines;
  lines.reserve(array->size());
  // Two lines of one record would hold it twice under one order_no, which the per-record
  // hold (keyed by order_no) cannot represent.
  std::map<RecordKey, std::size_t> first_index;
  for (std::size_t i = 0; i < array->size(); ++i) {
    ALLOT_TRY(line, lineRequest((*array)[i], dept_no, i));
    if (array->size() == 1) {  // nothing to repeat (the commonest order)
      lines.push_back(std::move(line));
      break;
    }
    const auto [it, fresh] = first_index.emplace(line.key, i);
    if (!fresh) {
      return invalid("lines[" + std::to_string(i) + "] names the same record as lines[" +
                     std::to_string(it->second) + "]");
    }
    lines.push_back(std::move(line));
  }
  return lines;
}

[[nodiscard]] Result<PreallocateRequest> preallocateRequest(const json::object& object) {
  ALLOT_TRY(dept_no, requiredField(object, "dept_no"));
  ALLOT_TRY(order_no, requiredField(object, "order_no"));
  ALLOT_TRY(lines, lineRequests(object, dept_no));
  ALLOT_TRY(allow_shortage, optionalBool(object, "allow_shortage", false));
  return PreallocateRequest{std::move(dept_no), std::move(order_no), std::move(lines),
                            allow_shortage};
}

// ---- The preallocation body in one pass ----

// Reads the commonest preallocation body in one pass of basic_parser, with no tree and no
// second scan: the contract's keys only, each at most once, every value of its kind and
// within its rule. Anything else (an unknown or escaped key, a value out of its rule, a
// malformed document) makes it give up, and the caller parses the body the thorough way,
// which accepts what it accepts and words the refusal of everything else. So this reader
// only ever accepts bodies the thorough parse accepts, with the same result
// (json_codec_test holds the two against each other).
class PreallocateReader {
 public:
  static constexpr std::size_t max_object_size = static_cast<std::size_t>(-1);
  static constexpr std::size_t max_array_size = limits::kOrderLinesMax;
  static constexpr std::size_t max_key_size = limits::kFieldLengthMax;
  static constexpr std::size_t max_string_size = limits::kFieldLengthMax;

  // The request once a whole document was read; nullopt when the reader gave up.
  [[nodiscard]] std::optional<PreallocateRequest> take() {
    const unsigned required = bit(kDeptNo) | bit(kOrderNo) | bit(kLines);
    if ((seen_ & required) != required || !finished_) return std::nullopt;
    for (LineRequest& line : request_.lines) {
      if (line.key.dept_no.empty()) {
        line.key.dept_no = request_.dept_no;
      } else if (line.key.dept_no != request_.dept_no) {
        return std::nullopt;
      }
    }
    if (request_.lines.size() > 1) {
      std::vector<const RecordKey*> keys;
      keys.reserve(request_.lines.size());
      for (const LineRequest& line : request_.lines) keys.push_back(&line.key);
      std::sort(keys.begin(), keys.end(), [](auto* a, auto* b) { return *a < *b; });
      const auto same = [](auto* a, auto* b) { return *a == *b; };
      if (std::adjacent_find(keys.begin(), keys.end(), same) != keys.end()) return std::nullopt;
    }
    return std::move(request_);
  }

  bool on_document_begin(json::error_code&) { return true; }
  bool on_document_end(json::error_code&) {
    finished_ = true;
    return true;
  }
  bool on_object_begin(json::error_code& ec) {
    if (place_ == Place::kNothing) {
      place_ = Place::kOrder;
      return true;
    }
    if (place_ == Place::kLines) {
      place_ = Place::kLine;
      line_seen_ = 0;
      request_.lines.emplace_back();
      return true;
    }
    return giveUp(ec);
  }
  bool on_object_end(std::size_t, json::error_code& ec) {
    if (place_ == Place::kLine) {
      const unsigned required = bit(kGoodsNo) | bit(kWarehouseNo) | bit(kQty);
      if ((line_seen_ & required) != required) return giveUp(ec);
      place_ = Place::kLines;
      return true;
    }
    place_ = Place::kDone;
    return true;
  }
  bool on_array_begin(json::error_code& ec) {
    if (place_ != Place::kOrder || key_ != kLines) return giveUp(ec);
    place_ = Place::kLines;
    return true;
  }
  bool on_array_end(std::size_t size, json::error_code& ec) {
    if (size == 0) return giveUp(ec);
    place_ = Place::kOrder;
    return true;
  }
  bool on_key_part(json::string_view, std::size_t, json::error_code& ec) { return giveUp(ec); }
  bool on_key(json::string_view name, std::size_t, json::error_code& ec) {
    const std::string_view text(name.data(), name.size());
    if (place_ == Place::kOrder) {
      key_ = orderKey(text);
      if (key_ == kUnknown || (seen_ & bit(key_)) != 0) return giveUp(ec);
      seen_ |= bit(key_);
      return true;
    }
    key_ = lineKey(text);
    if (key_ == kUnknown || (line_seen_ & bit(key_)) != 0) return giveUp(ec);
    line_seen_ |= bit(key_);
    return true;
  }
  bool on_string_part(json::string_view, std::size_t, json::error_code& ec) { return giveUp(ec); }
  bool on_string(json::string_view value, std::size_t, json::error_code& ec) {
    const std::string_view text(value.data(), value.size());
    std::string* field = stringField();
    if (field == nullptr || !isValidField(text)) return giveUp(ec);
    field->assign(text);
    return true;
  }
  bool on_int64(std::int64_t value, json::string_view, json::error_code& ec) {
    if (place_ != Place::kLine || key_ != kQty || value < limits::kLineQtyMin ||
        value > limits::kLineQtyMax) {
      return giveUp(ec);
    }
    request_.lines.back().qty = value;
    return true;
  }
  bool on_bool(bool value, json::error_code& ec) {
    if (place_ != Place::kOrder || key_ != kAllowShortage) return giveUp(ec);
    request_.allow_shortage = value;
    return true;
  }
  bool on_number_part(json::string_view, json::error_code&) { return true; }
  bool on_uint64(std::uint64_t, json::string_view, json::error_code& ec) { return giveUp(ec); }
  bool on_double(double, json::string_view, json::error_code& ec) { return giveUp(ec); }
  bool on_null(json::error_code& ec) { return giveUp(ec); }
  bool on_comment_part(json::string_view, json::error_code& ec) { return giveUp(ec); }
  bool on_comment(json::string_view, json::error_code& ec) { return giveUp(ec); }

 private:
  enum class Place { kNothing, kOrder, kLines, kLine, kDone };
  enum Key : unsigned {
    kUnknown,
    kDeptNo,  // in the order or in a line
    kOrderNo,
    kLines,
    kAllowShortage,
    kGoodsNo,
    kWarehouseNo,
    kStockStatus,
    kStockType,
    kGoodsLevel,
    kQty,
  };
  static constexpr unsigned bit(Key key) { return 1U << key; }

  static Key orderKey(std::string_view name) {
    if (name == "dept_no") return kDeptNo;
    if (name == "order_no") return kOrderNo;
    if (name == "lines") return kLines;
    if (name == "allow_shortage") return kAllowShortage;
    return kUnknown;
  }
  static Key lineKey(std::string_view name) {
    if (name == "goods_no") return kGoodsNo;
    if (name == "warehouse_no") return kWarehouseNo;
    if (name == "qty") return kQty;
    if (name == "stock_status") return kStockStatus;
    if (name == "stock_type") return kStockType;
    if (name == "goods_level") return kGoodsLevel;
    if (name == "dept_no") return kDeptNo;
    return kUnknown;
  }

  // Where the string value of the current key goes; nullptr where no string belongs.
  std::string* stringField() {
    if (place_ == Place::kOrder) {
      if (key_ == kDeptNo) return &request_.dept_no;
      if (key_ == kOrderNo) return &request_.order_no;
      return nullptr;
    }
    if (place_ != Place::kLine) return nullptr;
    RecordKey& key = request_.lines.back().key;
    switch (key_) {
      case kDeptNo: return &key.dept_no;  // held against the order's in take()
      case kGoodsNo: return &key.goods_no;
      case kWarehouseNo: return &key.warehouse_no;
      case kStockStatus: return &key.stock_status;
      case kStockType: return &key.stock_type;
      case kGoodsLevel: return &key.goods_level;
      default: return nullptr;
    }
  }

  static bool giveUp(json::error_code& ec) {
    ec = json::error::syntax;
    return false;
  }

  PreallocateRequest request_;
  Place place_ = Place::kNothing;
  Key key_ = kUnknown;
  unsigned seen_ = 0;       // the order's keys read so far
  unsigned line_seen_ = 0;  // the current line's
  bool finished_ = false;
};

// The request when the one-pass reader takes the body whole; nullopt: parse it thoroughly.
[[nodiscard]] std::optional<PreallocateRequest> readPreallocateQuickly(std::string_view body) {
  if (body.size() > limits::kRequestBodyBytesMax) return std::nullopt;
  json::basic_parser<PreallocateReader> reader(parseOptions());
  json::error_code ec;
  const std::size_t used = reader.write_some(false, body.data(), body.size(), ec);
  if (ec || used != body.size()) return std::nullopt;
  return reader.handler().take();
}

[[nodiscard]] Result<OrderRef> orderRefRequest(const json::object& object) {
  ALLOT_TRY(dept_no, requiredField(object, "dept_no"));
  ALLOT_TRY(order_no, requiredField(object, "order_no"));
  return OrderRef{std::move(dept_no), std::move(order_no)};
}

[[nodiscard]] Result<std::optional<std::string>> reconcileRequest(const json::object& object) {
  if (!object.contains("dept_no")) return std::optional<std::string>();
  ALLOT_TRY(dept_no, requiredField(object, "dept_no"));
  return std::optional<std::string>(std::move(dept_no));
}

[[nodiscard]] Result<Route> routeRequest(const json::object& object) {
  const json::value* value = object.if_contains("route");
  if (value == nullptr) return invalid("route is required");
  if (!value->is_string()) return invalid("route must be \"redis\" or \"mysql\"");
  const auto& text = value->get_string();
  if (text == "redis") return Route::kRedis;
  if (text == "mysql") return Route::kMysql;
  return invalid("route must be \"redis\" or \"mysql\"");
}

[[nodiscard]] Result<AdjustRequest> adjustRequest(const json::object& object) {
  ALLOT_TRY(dept_no, requiredField(object, "dept_no"));
  ALLOT_TRY(key, recordFields(object, std::move(dept_no), {}));
  ALLOT_TRY(ref, requiredField(object, "ref"));
  const bool has_delta = object.contains("delta");
  const bool has_on_hand = object.contains("on_hand");
  if (has_delta && has_on_hand) return invalid("give exactly one of delta and on_hand, not both");
  if (!has_delta && !has_on_hand) return invalid("give exactly one of delta and on_hand");

  AdjustRequest request{std::move(key), std::move(ref), std::nullopt, std::nullopt};
  if (has_delta) {
    ALLOT_TRY(delta, requiredInteger(object, "delta", {},
                                     {-limits::kAdjustDeltaMax, limits::kAdjustDeltaMax}));
    request.delta = delta;
  } else {
    ALLOT_TRY(on_hand, requiredInteger(object, "on_hand", {}, {0, limits::kOnHandMax}));
    request.on_hand = on_hand;
  }
  return request;
}

// ---- Query strings ----

using QueryParameters = std::map<std::string, std::string, std::less<>>;

// Decodes one component of the request target (`where` names it in the error).
[[nodiscard]] Result<std::string> percentDecoded(std::string_view text,
                                                 std::string_view where = "the query string") {
  auto decoded = percentDecode(text);
  if (!decoded) {
    return invalid(std::string(where) + " is malformed: a %-escape that is not two hex digits");
  }
  return std::move(*decoded);
}

// The percent-decoded values of the wanted parameters. Others are ignored; a wanted one given
// twice is refused. A parameter without '=' has the empty value, which no field accepts.
[[nodiscard]] Result<QueryParameters> queryParameters(std::string_view query,
                                                      std::span<const std::string_view> wanted) {
  if (query.size() > limits::kRequestHeaderBytesMax) {
    return invalid("the query string exceeds " + std::to_string(limits::kRequestHeaderBytesMax) +
                   " bytes");
  }
  QueryParameters found;
  while (!query.empty()) {
    const auto amp = query.find('&');
    const auto pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (pair.empty()) continue;
    const auto equals = pair.find('=');
    ALLOT_TRY(name, percentDecoded(pair.substr(0, equals)));
    bool is_wanted = false;
    for (const std::string_view want : wanted) is_wanted = is_wanted || want == name;
    if (!is_wanted) continue;
    std::string value;
    if (equals != std::string_view::npos) {
      ALLOT_TRY(decoded, percentDecoded(pair.substr(equals + 1)));
      value = std::move(decoded);
    }
    const auto [it, fresh] = found.emplace(std::move(name), std::move(value));
    if (!fresh) return invalid("the query parameter " + it->first + " is given twice");
  }
  return found;
}

[[nodiscard]] Result<std::string> requiredParameter(const QueryParameters& params,
                                                    std::string_view name) {
  const auto it = params.find(name);
  if (it == params.end()) return invalid(std::string(name) + " is required");
  return checkedField(it->second, name);
}

[[nodiscard]] Result<std::string> optionalParameter(const QueryParameters& params,
                                                    std::string_view name,
                                                    std::string_view fallback) {
  const auto it = params.find(name);
  if (it == params.end()) return std::string(fallback);
  return checkedField(it->second, name);
}

[[nodiscard]] Result<RecordKey> recordQuery(std::string_view query) {
  ALLOT_TRY(params, queryParameters(query, kRecordFieldNames));
  ALLOT_TRY(dept_no, requiredParameter(params, "dept_no"));
  ALLOT_TRY(goods_no, requiredParameter(params, "goods_no"));
  ALLOT_TRY(warehouse_no, requiredParameter(params, "warehouse_no"));
  ALLOT_TRY(stock_status, optionalParameter(params, "stock_status", kDefaultStockStatus));
  ALLOT_TRY(stock_type, optionalParameter(params, "stock_type", kDefaultStockType));
  ALLOT_TRY(goods_level, optionalParameter(params, "goods_level", kDefaultGoodsLevel));
  return RecordKey{std::move(dept_no),      std::move(goods_no),   std::move(warehouse_no),
                   std::move(stock_status), std::move(stock_type), std::move(goods_level)};
}

[[nodiscard]] Result<OrderRef> orderQuery(std::string_view query) {
  ALLOT_TRY(params, queryParameters(query, kOrderFieldNames));
  ALLOT_TRY(dept_no, requiredParameter(params, "dept_no"));
  ALLOT_TRY(order_no, requiredParameter(params, "order_no"));
  return OrderRef{std::move(dept_no), std::move(order_no)};
}

// ---- Encoding ----

[[nodiscard]] json::string_view jsonText(std::string_view text) {
  return json::string_view(text.data(), text.size());
}

void putRecordFields(json::object& out, const RecordKey& key) {
  out["dept_no"] = jsonText(key.dept_no);
  out["goods_no"] = jsonText(key.goods_no);
  out["warehouse_no"] = jsonText(key.warehouse_no);
  out["stock_status"] = jsonText(key.stock_status);
  out["stock_type"] = jsonText(key.stock_type);
  out["goods_level"] = jsonText(key.goods_level);
}

[[nodiscard]] json::object orderHead(const std::string& order_no, OrderStatus status) {
  json::object out;
  out["order_no"] = jsonText(order_no);
  out["status"] = jsonText(orderStatusName(status));
  return out;
}

// The length of the well-formed UTF-8 sequence at text[at], or 0 if there is none
// (Unicode 15, table 3-7: no overlong forms, no surrogates, nothing above U+10FFFF).
[[nodiscard]] std::size_t utf8SequenceLength(std::string_view text, std::size_t at) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[at + i]); };
  const unsigned char lead = byte(0);
  if (lead < 0x80) return 1;
  std::size_t length = 0;
  unsigned char second_min = 0x80;
  unsigned char second_max = 0xbf;
  if (lead >= 0xc2 && lead <= 0xdf) {
    length = 2;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    length = 3;
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    length = 4;
  } else {
    return 0;  // a continuation byte, an overlong lead (C0, C1) or beyond U+10FFFF
  }
  if (lead == 0xe0) second_min = 0xa0;
  if (lead == 0xed) second_max = 0x9f;
  if (lead == 0xf0) second_min = 0x90;
  if (lead == 0xf4) second_max = 0x8f;
  if (at + length > text.size()) return 0;
  if (byte(1) < second_min || byte(1) > second_max) return 0;
  for (std::size_t i = 2; i < length; ++i) {
    if (byte(i) < 0x80 || byte(i) > 0xbf) return 0;
  }
  return length;
}

// An error message may quote a dependency's text (a MariaDB error, say) that is not UTF-8.
// Boost.JSON copies string bytes as they are, which would make the answer invalid JSON, so
// each byte that does not begin a well-formed sequence becomes '?'.
[[nodiscard]] std::string validUtf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t at = 0; at < text.size();) {
    const std::size_t length = utf8SequenceLength(text, at);
    if (length == 0) {
      out += '?';
      ++at;
    } else {
      out.append(text.substr(at, length));
      at += length;
    }
  }
  return out;
}

[[nodiscard]] std::string refusalMessage(const PreallocateRefusal& refusal) {
  const std::size_t count = refusal.short_lines.size();
  std::string message =
      "insufficient stock for " + std::to_string(count) + (count == 1 ? " line: " : " lines: ");
  for (std::size_t i = 0; i < count && i < kRefusalNamedLinesMax; ++i) {
    const ShortLine& line = refusal.short_lines[i];
    if (i > 0) message += "; ";
    message += "goods_no " + line.key.goods_no + " in warehouse_no " + line.key.warehouse_no +
               " (" + line.key.stock_status + "/" + line.key.stock_type + "/" +
               line.key.goods_level + ") wants " + std::to_string(line.qty) + ", available " +
               std::to_string(line.available);
  }
  if (count > kRefusalNamedLinesMax) {
    message += "; and " + std::to_string(count - kRefusalNamedLinesMax) + " more";
  }
  return message;
}

}  // namespace

namespace detail {

std::optional<PreallocateRequest> parsePreallocateRequestInOnePass(std::string_view body) {
  try {
    return readPreallocateQuickly(body);
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

Result<PreallocateRequest> parsePreallocateRequestThoroughly(std::string_view body) {
  return guarded([&] { return readObject(body, preallocateRequest); });
}

}  // namespace detail

Result<PreallocateRequest> parsePreallocateRequest(std::string_view body) {
  if (auto request = detail::parsePreallocateRequestInOnePass(body)) return std::move(*request);
  return detail::parsePreallocateRequestThoroughly(body);
}

Result<OrderRef> parseOrderRefRequest(std::string_view body) {
  return guarded([&] { return readObject(body, orderRefRequest); });
}

Result<std::optional<std::string>> parseReconcileRequest(std::string_view body) {
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) {
    return std::optional<std::string>();  // no body: every merchant
  }
  return guarded([&] { return readObject(body, reconcileRequest); });
}

Result<Route> parseRouteRequest(std::string_view body) {
  return guarded([&] { return readObject(body, routeRequest); });
}

Result<std::string> parseMerchantPath(std::string_view segment) {
  ALLOT_TRY(dept_no, percentDecoded(segment, "dept_no in the path"));
  if (!isValidField(dept_no)) return invalid("dept_no in the path " + fieldRule());
  return dept_no;
}

std::string encodeMerchantRoute(const MerchantRouteView& view) {
  json::object out;
  out["dept_no"] = view.dept_no;
  out["route"] = routeName(view.route);
  out["configured"] = view.configured;
  out["switching"] = view.switching;
  return json::serialize(out);
}

Result<AdjustRequest> parseAdjustRequest(std::string_view body) {
  return guarded([&] { return readObject(body, adjustRequest); });
}

Result<RecordKey> parseRecordQuery(std::string_view query) {
  return guarded([&] { return recordQuery(query); });
}

Result<OrderRef> parseOrderQuery(std::string_view query) {
  return guarded([&] { return orderQuery(query); });
}

std::string adjustDigest(const AdjustRequest& request) {
  // Exactly one is set by parseAdjustRequest; anything else is a bug in the caller.
  ALLOT_ASSERT(request.delta.has_value() != request.on_hand.has_value());
  // '|' cannot occur in a field, so the index and the change cannot run into each other.
  if (request.delta) return request.key.index() + "|d:" + std::to_string(*request.delta);
  return request.key.index() + "|s:" + std::to_string(*request.on_hand);
}

namespace {

// The answers of the hot path are written straight into their text (no tree, one allocation),
// their fields in the contract's order.
void appendJsonString(std::string& out, std::string_view text) {
  out.push_back('"');
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (byte < 0x20) {
      constexpr char kHex[] = "0123456789abcdef";
      out.append("\\u00");
      out.push_back(kHex[byte >> 4]);
      out.push_back(kHex[byte & 0xf]);
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
}

void appendJsonField(std::string& out, std::string_view name, std::string_view text) {
  out.push_back('"');
  out.append(name);
  out.append("\":");
  appendJsonString(out, text);
}

void appendJsonField(std::string& out, std::string_view name, std::int64_t number) {
  out.push_back('"');
  out.append(name);
  out.append("\":");
  appendDecimal(out, number);
}

std::string orderText(const OrderAnswer& answer, bool with_replayed) {
  std::string out;
  out.reserve(96 + answer.lines.size() * 192);
  out.push_back('{');
  appendJsonField(out, "order_no", answer.order_no);
  out.push_back(',');
  appendJsonField(out, "status", orderStatusName(answer.status));
  if (with_replayed) out.append(answer.replayed ? ",\"replayed\":true" : ",\"replayed\":false");
  out.append(",\"lines\":[");
  for (std::size_t i = 0; i < answer.lines.size(); ++i) {
    const LineOutcome& line = answer.lines[i];
    out.append(i == 0 ? "{" : ",{");
    const RecordKey& k = line.key;
    const std::array<std::string_view, kRecordFieldNames.size()> values{
        k.dept_no, k.goods_no, k.warehouse_no, k.stock_status, k.stock_type, k.goods_level};
    for (std::size_t f = 0; f < values.size(); ++f) {
      appendJsonField(out, kRecordFieldNames[f], values[f]);
      out.push_back(',');
    }
    appendJsonField(out, "qty", line.qty);
    out.push_back(',');
    appendJsonField(out, "allocated", line.allocated);
    out.push_back(',');
    appendJsonField(out, "shortage", line.shortage);
    out.push_back('}');
  }
  out.append("]}");
  return out;
}

}  // namespace

std::string encodeOrderAnswer(const OrderAnswer& answer) { return orderText(answer, true); }

std::string encodeOrderView(const OrderAnswer& answer) { return orderText(answer, false); }

std::string encodeEndAnswer(const EndAnswer& answer) {
  json::object out = orderHead(answer.order_no, answer.status);
  out["replayed"] = answer.replayed;
  return json::serialize(out);
}

std::string encodeRecord(const RecordKey& key, const Quantities& quantities, Route route) {
  json::object out;
  putRecordFields(out, key);
  out["on_hand"] = quantities.on_hand;
  out["preallocated"] = quantities.preallocated;
  out["available"] = quantities.available();
  out["shortage"] = quantities.shortage;
  out["route"] = jsonText(routeName(route));
  return json::serialize(out);
}

std::string encodeError(const Error& error) {
  json::object out;
  out["error"] = jsonText(errorCodeName(error.code));
  out["message"] = jsonText(validUtf8(error.message));
  return json::serialize(out);
}

std::string encodeRefusal(const std::string& order_no, const PreallocateRefusal& refusal) {
  json::object out;
  out["error"] = jsonText(errorCodeName(ErrorCode::kInsufficientStock));
  out["message"] = jsonText(refusalMessage(refusal));
  out["order_no"] = jsonText(order_no);
  json::array lines;
  lines.reserve(refusal.short_lines.size());
  for (const ShortLine& line : refusal.short_lines) {
    json::object item;
    putRecordFields(item, line.key);
    item["qty"] = line.qty;
    item["available"] = line.available;
    lines.push_back(std::move(item));
  }
  out["lines"] = std::move(lines);
  return json::serialize(out);
}

}  // namespace allot::http

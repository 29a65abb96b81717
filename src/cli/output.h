// allotctl's readable output: answers as small aligned tables, errors as
// "error: <code>: <message>". Pure text-to-text functions, so tests can pin the format.
//
// The formatting is driven by the JSON the server sends, not by a fixed schema: known fields
// come first in a fixed order, fields the server adds later are shown after them, and an
// answer that is not JSON is shown as it came.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "cli/requests.h"

namespace allot::cli {

struct Table {
  std::vector<std::string> headers;
  std::vector<bool> right_aligned;  // one per column; numbers are right-aligned
  std::vector<std::vector<std::string>> rows;
  bool show_headers = true;
};

// Columns separated by two spaces, each as wide as its widest cell; no trailing blanks.
[[nodiscard]] std::string renderTable(const Table& table);

// The readable form of a 2xx answer body; ends with a newline.
[[nodiscard]] std::string formatAnswer(AnswerShape shape, std::string_view body);

// The readable form of a non-2xx answer, for stderr: "error: <code>: <message>\n", followed by
// a table of any list the error carries (the short lines of an insufficient_stock refusal).
// A body that is not an API error becomes "error: http_<status>: <start of the body>".
[[nodiscard]] std::string formatApiError(int status, std::string_view body);

}  // namespace allot::cli

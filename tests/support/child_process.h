// Runs a program of the build (allot-bench, write-back-bench) as a child process and waits for
// it, for the tests that check a tool as its users run it.
#pragma once

#include <string>
#include <vector>

namespace allot::testing {

// Runs `arguments` (the program's path first) and returns its exit status, or -1 when it did
// not exit normally (killed by a signal, or could not be started).
[[nodiscard]] int runProcess(const std::vector<std::string>& arguments);

}  // namespace allot::testing

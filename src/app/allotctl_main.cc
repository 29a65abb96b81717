// allotctl: the command-line client of allotd. All of it lives in src/cli (allotctl.h), where
// tests can run it in-process; main only binds it to the process's streams.
#include <iostream>

#include "cli/allotctl.h"

int main(int argc, char** argv) {
  return allot::cli::runAllotctl(argc, argv, std::cout, std::cerr);
}

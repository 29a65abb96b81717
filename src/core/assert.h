// Assertions are for programmer errors only: a broken invariant inside allot, never bad
// input or a surprising reply from Redis or MariaDB (those become Error values). A failed
// assertion aborts, because continuing with a broken invariant could sell stock twice.
#pragma once

#include <cstdio>
#include <cstdlib>

#define ALLOT_ASSERT(condition)                                                              \
  do {                                                                                       \
    if (!(condition)) {                                                                      \
      std::fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__, #condition); \
      std::abort();                                                                          \
    }                                                                                        \
  } while (false)

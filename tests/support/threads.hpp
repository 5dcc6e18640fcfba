// A test's thread count (stoch::set_threads) for one scope, restored when the scope ends, also when a check
// throws: the tests that compare one thread with two share it.
#pragma once

#include "stoch/core/threads.hpp"

namespace stoch::test {

class ThreadCount {
 public:
  explicit ThreadCount(int count) : before_(threads()) { set_threads(count); }
  ~ThreadCount() { set_threads(before_); }
  ThreadCount(const ThreadCount&) = delete;
  ThreadCount& operator=(const ThreadCount&) = delete;

 private:
  int before_;
};

}  // namespace stoch::test

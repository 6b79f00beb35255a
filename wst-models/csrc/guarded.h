// Shared by the C shims of wst-models: C++ exceptions turned into a heap-allocated message
// (the caller frees it with the shim's free function) and a status, 0 meaning success.
#pragma once

#include <cstdlib>
#include <cstring>
#include <exception>

namespace wst_shim {

inline char* copy_message(const char* what) {
  size_t n = std::strlen(what);
  char* out = static_cast<char*>(std::malloc(n + 1));
  if (out != nullptr) {
    std::memcpy(out, what, n + 1);
  }
  return out;
}

template <typename F>
int guarded(char** err, F&& f) {
  try {
    f();
    return 0;
  } catch (const std::exception& e) {
    if (err != nullptr) *err = copy_message(e.what());
  } catch (...) {
    if (err != nullptr) *err = copy_message("unknown C++ exception");
  }
  return 1;
}

}  // namespace wst_shim

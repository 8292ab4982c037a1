#include "cli_output.h"

#include <cstdio>

#include "json_print.h"

namespace wownet {

void print_error(bool json, const std::string& what, const std::string& code) {
  std::fprintf(stderr, "wownetctl: %s\n", what.c_str());
  if (!json) return;
  std::string doc = "{\"error\": " + json::quote(what);
  if (!code.empty()) doc += ", \"code\": " + json::quote(code);
  std::printf("%s}\n", doc.c_str());
}

void print_message(bool json, const std::string& what) {
  if (json)
    std::printf("{\"message\": %s}\n", json::quote(what).c_str());
  else
    std::printf("%s\n", what.c_str());
}

}  // namespace wownet

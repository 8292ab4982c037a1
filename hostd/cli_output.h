// How wownetctl reports a result or an error: as text, or with --json as
// exactly one JSON document on stdout.
#pragma once

#include <string>

namespace wownet {

// One line "wownetctl: WHAT" on stderr; with json also {"error": WHAT} (and
// "code": CODE, hostd's reply code, if not empty) on stdout.
void print_error(bool json, const std::string& what, const std::string& code = "");

// WHAT on stdout: one line, or with json {"message": WHAT}.
void print_message(bool json, const std::string& what);

}  // namespace wownet

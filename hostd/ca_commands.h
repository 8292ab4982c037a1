// wownetctl's offline PKI commands: `ca init|sign|revoke|crl` and
// `cert request|show`. They work on files only (no hostd) and are the one
// place in the crypto code that reads the wall clock.
#pragma once

#include <CLI/CLI.hpp>

namespace wownet {

// Registers the `ca` and `cert` subcommands on `app`. Their callbacks run
// at the end of parsing, print one result line (stdout) or one error line
// (stderr), as JSON on stdout if `json` (wownetctl's --json) is set by then,
// and set exit_code (0 or 1).
void add_ca_commands(CLI::App& app, int& exit_code, const bool& json);

// True if the parsed command line was a `ca` or `cert` command (already run).
bool ca_command_parsed(const CLI::App& app);

}  // namespace wownet

#!/bin/sh
# Fails if any file of the pure core includes a foreign library, does I/O,
# spawns threads or reads a clock.
dir=${1:?usage: check_core_purity.sh CORE_DIR}
pattern='#include *<(boost|netlink|linux|google|openssl|sys/|arpa/|netinet/|unistd|fcntl|thread|mutex|fstream|iostream|spdlog|toml|CLI)|#include *"(io|crypto|overlay|registry|util|proto)/|::now\(|std::thread|getenv|fopen|socket\('
if grep -En "$pattern" "$dir"/*.h "$dir"/*.cpp; then
  echo "core_purity: the lines above break the core's rules (hostd/core/README.md)" >&2
  exit 1
fi
echo "core_purity: $(ls "$dir"/*.h "$dir"/*.cpp | wc -l) files clean"

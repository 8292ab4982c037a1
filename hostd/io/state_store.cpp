#include "io/state_store.h"

#include "util/file_io.h"

#include <fcntl.h>
#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace wownet::io {
namespace {

std::error_code last_error() { return {errno, std::system_category()}; }

class CollectErrors : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, int column, const std::string& message) override {
    if (text.empty())
      text = "line " + std::to_string(line + 1) + " column " + std::to_string(column + 1) + ": " + message;
  }
  std::string text;
};

}  // namespace

std::error_code StateStore::prepare() {
  // Create each missing component, the last one private.
  for (std::size_t pos = 1; pos <= dir_.size(); ++pos) {
    if (pos != dir_.size() && dir_[pos] != '/') continue;
    std::string part = dir_.substr(0, pos);
    if (::mkdir(part.c_str(), pos == dir_.size() ? 0700 : 0755) < 0 && errno != EEXIST) return last_error();
  }
  struct stat st;
  if (::stat(dir_.c_str(), &st) < 0) return last_error();
  if (!S_ISDIR(st.st_mode)) return std::make_error_code(std::errc::not_a_directory);
  return {};
}

std::error_code StateStore::load(wownet::state::State& out, std::string& detail) const {
  out.Clear();
  std::string text;
  if (!util::read_file(path(), text, detail)) {
    if (errno == ENOENT) {
      detail.clear();
      return {};
    }
    return last_error();
  }
  google::protobuf::TextFormat::Parser parser;
  CollectErrors errors;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(text, &out)) {
    detail = path() + ": " + (errors.text.empty() ? "unreadable" : errors.text);
    return std::make_error_code(std::errc::illegal_byte_sequence);
  }
  return {};
}

std::error_code StateStore::save(const wownet::state::State& state) const {
  std::string text;
  if (!google::protobuf::TextFormat::PrintToString(state, &text))
    return std::make_error_code(std::errc::invalid_argument);
  return util::write_file_atomic(path(), text, 0600);
}

}  // namespace wownet::io

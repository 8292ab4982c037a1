#include "state_store.h"

#include <fcntl.h>
#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <sstream>

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

std::error_code write_all(int fd, const std::string& data) {
  std::size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return last_error();
    }
    off += std::size_t(n);
  }
  return {};
}

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
  std::ifstream in(path());
  if (!in) {
    if (errno == ENOENT) return {};
    return last_error();
  }
  std::stringstream ss;
  ss << in.rdbuf();
  google::protobuf::TextFormat::Parser parser;
  CollectErrors errors;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(ss.str(), &out)) {
    detail = path() + ": " + (errors.text.empty() ? "unreadable" : errors.text);
    return std::make_error_code(std::errc::illegal_byte_sequence);
  }
  return {};
}

std::error_code StateStore::save(const wownet::state::State& state) const {
  std::string text;
  if (!google::protobuf::TextFormat::PrintToString(state, &text))
    return std::make_error_code(std::errc::invalid_argument);
  std::string tmp = path() + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return last_error();
  std::error_code ec = write_all(fd, text);
  if (!ec && ::fsync(fd) < 0) ec = last_error();
  ::close(fd);
  if (!ec && ::rename(tmp.c_str(), path().c_str()) < 0) ec = last_error();
  if (ec) {
    ::unlink(tmp.c_str());
    return ec;
  }
  int dfd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return {};
}

}  // namespace wownet::io

// Values in etcd are protobuf messages as JSON (field names as in the
// .proto), so that `etcdctl get` shows them readably.
#pragma once

#include <string>

#include <google/protobuf/message.h>

namespace wownet::registry {

std::string to_json(const google::protobuf::Message& m);
// Unknown fields are ignored (a newer rendezvous may add some).
bool from_json(const std::string& text, google::protobuf::Message& m);
// The range_end that makes a range or watch cover every key under `prefix`.
std::string prefix_end(const std::string& prefix);

}  // namespace wownet::registry

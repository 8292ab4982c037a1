#include "core/datagram.h"

namespace wownet::agent {

std::optional<std::string> encode_datagram(std::string_view serialized_report) {
  if (serialized_report.size() > kMaxDatagramSize - kDatagramMagic.size()) return std::nullopt;
  std::string datagram;
  datagram.reserve(kDatagramMagic.size() + serialized_report.size());
  datagram.append(kDatagramMagic);
  datagram.append(serialized_report);
  return datagram;
}

std::optional<std::string_view> decode_datagram(std::string_view datagram) {
  if (datagram.size() > kMaxDatagramSize || !datagram.starts_with(kDatagramMagic)) return std::nullopt;
  datagram.remove_prefix(kDatagramMagic.size());
  return datagram;
}

}  // namespace wownet::agent

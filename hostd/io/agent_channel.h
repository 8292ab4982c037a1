// Receives wownet-agent reports (proto/agent.proto) on the host-only
// channel. The interface a datagram arrived on says which VM sent it;
// the caller decides whether that interface belongs to an attachment.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <system_error>
#include "asio.h"

#include "agent.pb.h"

namespace wownet::io {

class AgentChannel {
 public:
  // Called with the arrival interface index and the decoded report.
  using Handler = std::function<void(int ifindex, const wownet::agent::Report&)>;

  AgentChannel(boost::asio::io_context& io, Handler handler);
  // Binds UDP `port` on all IPv4 addresses, with arrival-interface info.
  std::error_code open(std::uint16_t port);
  void close();
  // Datagrams that were not a valid report ("WNA1" + Report, <= 1200 bytes).
  std::uint64_t malformed() const { return malformed_; }

 private:
  void wait();
  void drain();

  boost::asio::ip::udp::socket socket_;
  Handler handler_;
  std::uint64_t malformed_ = 0;
};

}  // namespace wownet::io

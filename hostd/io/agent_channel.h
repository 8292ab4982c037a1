// Receives wownet-agent reports (proto/agent.proto) on the host-only
// channel. The interface a datagram arrived on says which VM sent it: the
// caller's gate decides, before a byte of the datagram is parsed, whether
// that interface is an attachment's agent channel and within its rate.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <system_error>
#include "io/asio.h"

#include "io/agent_report.h"
#include "proto/agent.pb.h"

namespace wownet::io {

class AgentChannel {
 public:
  // Called with the arrival interface index before parsing; false drops
  // the datagram unread (the gate counts why).
  using Gate = std::function<bool(int ifindex)>;
  // Called with the arrival interface index and the decoded report.
  using Handler = std::function<void(int ifindex, const wownet::agent::Report&)>;

  AgentChannel(boost::asio::io_context& io, Gate gate, Handler handler);
  // Binds UDP `port` on all IPv4 addresses, with arrival-interface info.
  std::error_code open(std::uint16_t port);
  void close();
  // Datagrams the gate let through that were not a valid report, by reason
  // (indexed by AgentReportError).
  std::uint64_t malformed() const;
  std::uint64_t malformed(AgentReportError e) const { return malformed_[std::size_t(e)]; }

 private:
  void wait();
  void drain();

  boost::asio::ip::udp::socket socket_;
  Gate gate_;
  Handler handler_;
  std::array<std::uint64_t, 5> malformed_{};
};

}  // namespace wownet::io

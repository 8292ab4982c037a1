// What hostd's control socket does with the bytes a client writes, short
// of the daemon's state (hostd/io/control_server.cpp, Daemon::handle): a
// stream of frames, each a 4-byte big-endian length and a serialized
// control::Request; a length over 1 MiB ends the connection, a short
// body is an incomplete read. Each request that parses must serialize
// again, and the reply hostd builds from its fields (names echoed in the
// message, as the daemon's errors do) must reach a client as a Response
// that parses.

#include <string>

#include "fuzz_input.h"
#include "fuzz_target.h"
#include "proto/control.pb.h"
#include "quiet_protobuf.h"

using namespace wownet;
namespace control = wownet::control;

namespace {

constexpr std::uint32_t kMaxMessage = 1 << 20;  // as control_server.cpp and control.proto say

// The parts of Daemon::handle that look only at the request.
control::Response reply_to(const control::Request& req) {
  control::Response resp;
  switch (req.body_case()) {
    case control::Request::kAttach: {
      const auto& a = req.attach();
      const std::string vm = a.vm().empty() ? a.ifname() : a.vm();
      if (a.ifname().empty() || a.ifname().size() > 15) {
        resp.set_code(control::INVALID_ARGUMENT);
        resp.set_message("interface name must be 1 to 15 characters");
      } else {
        resp.set_code(control::NOT_FOUND);
        resp.set_message("no interface named " + a.ifname() + " (vm " + vm + ", agent " + a.agent_ifname() + ")");
      }
      break;
    }
    case control::Request::kDetach:
      resp.set_code(control::NOT_FOUND);
      resp.set_message("no VM or interface named " + req.detach().name());
      break;
    case control::Request::kCaDecide: {
      const auto& d = req.ca_decide();
      resp.set_message((d.approve() ? "approved " : "denied ") + d.id() + " for " +
                       std::to_string(d.days() ? d.days() : 365) + " days");
      break;
    }
    case control::Request::kCaPending:
    case control::Request::kList:
    case control::Request::kLeases:
    case control::Request::kStatus:
    case control::Request::kPeers:
    case control::Request::kNodes: resp.set_code(control::OK); break;
    case control::Request::kPath:
      // hostd/overlay_service_status.cpp: an unknown target is echoed.
      resp.set_code(control::NOT_FOUND);
      resp.set_message("no VM, address or node named " + req.path().target());
      break;
    case control::Request::kReload: resp.set_code(control::OK); break;
    case control::Request::kLeaseRelease:
      // hostd/daemon_leases.cpp: what is not an address is echoed.
      resp.set_code(control::INVALID_ARGUMENT);
      resp.set_message("expected an address inside the network 10.128.0.0/9, got \"" + req.lease_release().address() +
                       "\"");
      break;
    case control::Request::kVersion:
      resp.set_code(control::OK);
      resp.mutable_version()->set_version("0.0.0");
      break;
    case control::Request::kLogLevel:
      // hostd/control_logging.cpp: an unknown name is echoed in the error.
      resp.set_code(control::INVALID_ARGUMENT);
      resp.set_message("unknown log level '" + req.log_level().level() +
                       "': expected trace, debug, info, warn, error, critical or off");
      break;
    case control::Request::BODY_NOT_SET:
      resp.set_code(control::INVALID_ARGUMENT);
      resp.set_message("empty request");
      break;
  }
  return resp;
}

// Frames a response as the server writes it and reads it as wownetctl does.
void round_trip(const control::Response& resp) {
  std::string body;
  WOWNET_FUZZ_CHECK(resp.SerializeToString(&body));
  WOWNET_FUZZ_CHECK(body.size() <= kMaxMessage + 4096);
  control::Response back;
  WOWNET_FUZZ_CHECK(back.ParseFromString(body));
  WOWNET_FUZZ_CHECK(back.code() == resp.code() && back.message() == resp.message());
}

}  // namespace

WOWNET_FUZZ_TARGET(control_request)(const std::uint8_t* data, std::size_t size) {
  fuzz::quiet_protobuf();
  fuzz::FuzzReader in(data, size);
  while (in.remaining() >= 4) {
    const std::uint32_t len = in.u32();
    if (len > kMaxMessage) {
      control::Response r;
      r.set_code(control::INVALID_ARGUMENT);
      r.set_message("request larger than 1 MiB");
      round_trip(r);
      return;  // the server closes the connection
    }
    if (in.remaining() < len) return;  // the client went away mid-request
    const auto body = in.bytes(len);
    control::Request req;
    if (!req.ParseFromArray(body.data(), int(body.size()))) {
      control::Response r;
      r.set_code(control::INVALID_ARGUMENT);
      r.set_message("malformed request");
      round_trip(r);
      continue;
    }
    std::string again;
    WOWNET_FUZZ_CHECK(req.SerializeToString(&again));
    control::Request reparsed;
    WOWNET_FUZZ_CHECK(reparsed.ParseFromString(again) && reparsed.body_case() == req.body_case());
    round_trip(reply_to(req));
  }
}

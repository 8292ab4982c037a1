// Group commit for a host's DHCP replies: a reply that reports new state
// (a lease) may leave only once that state is on disk. Instead of one
// synchronous save per reply, the replies of one turn of the event loop
// are held here, the state is saved once, and then they all go out; if
// the save fails none goes out (the clients ask again).
//
// Pure: the caller saves and writes (flush() takes both as callbacks).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "core/packet.h"

namespace wownet {

class DurableReplies {
 public:
  struct Counters {
    std::uint64_t saves = 0;    // flushes that saved (one per batch)
    std::uint64_t replies = 0;  // replies sent after a save
    std::uint64_t dropped = 0;  // replies not sent: the save failed
    std::uint64_t largest_batch = 0;
  };

  // Holds a copy of `frame` for attachment `to`. True if it is the first
  // of a batch: the caller arranges a flush() at the end of this turn.
  bool hold(std::uint32_t to, ConstByteSpan frame);
  // Calls `save` once; if it succeeds, `write` for every held frame in the
  // order they were held, else drops them. Nothing is held afterwards.
  // Returns the number of frames written.
  std::size_t flush(const std::function<bool()>& save, const std::function<void(std::uint32_t, ConstByteSpan)>& write);
  std::size_t held() const { return frames_.size(); }
  const Counters& counters() const { return counters_; }

 private:
  struct Frame {
    std::uint32_t to = 0;
    std::size_t offset = 0, size = 0;
  };
  std::vector<Frame> frames_;
  std::vector<std::uint8_t> bytes_;  // the held frames, back to back
  Counters counters_;
};

}  // namespace wownet

#include "core/durable_replies.h"

#include <algorithm>

namespace wownet {

bool DurableReplies::hold(std::uint32_t to, ConstByteSpan frame) {
  const bool first = frames_.empty();
  frames_.push_back(Frame{to, bytes_.size(), frame.size()});
  bytes_.insert(bytes_.end(), frame.begin(), frame.end());
  return first;
}

std::size_t DurableReplies::flush(const std::function<bool()>& save,
                                  const std::function<void(std::uint32_t, ConstByteSpan)>& write) {
  if (frames_.empty()) return 0;
  // Taken first: a write may hold a new reply (it then starts a new batch).
  std::vector<Frame> frames = std::move(frames_);
  std::vector<std::uint8_t> bytes = std::move(bytes_);
  frames_.clear();
  bytes_.clear();
  if (!save()) {
    counters_.dropped += frames.size();
    return 0;
  }
  ++counters_.saves;
  counters_.replies += frames.size();
  counters_.largest_batch = std::max<std::uint64_t>(counters_.largest_batch, frames.size());
  for (const Frame& f : frames) write(f.to, ConstByteSpan(bytes.data() + f.offset, f.size));
  return frames.size();
}

}  // namespace wownet

// Receiver indexes: the 32-bit number a data packet carries (bytes 4..7,
// crypto/data_channel.h) to name the session that opens it. Each side picks
// its own for every session and tells the peer in its Hello; a data packet
// finds its session here with one hash lookup (no allocation).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <unordered_map>

namespace wownet::overlay {

// The untyped table behind ReceiverIndexTable<T>.
class ReceiverIndexMap {
 public:
  // `random32` proposes indexes (may be null or throw: then indexes are
  // probed upwards from 1).
  explicit ReceiverIndexMap(std::function<std::uint32_t()> random32) : random32_(std::move(random32)) {}

  // A nonzero index not in use, now bound to `value` (not null). Tries up to
  // 64 random proposals, then probes upwards from the last one. Throws only
  // std::bad_alloc.
  std::uint32_t allocate(void* value);
  // What `index` is bound to; null if nothing. Never allocates.
  void* find(std::uint32_t index) const {
    const auto it = map_.find(index);
    return it == map_.end() ? nullptr : it->second;
  }
  // Unbinds `index` if it is bound to `value` (a stale release is ignored).
  void release(std::uint32_t index, const void* value);
  std::size_t size() const { return map_.size(); }

 private:
  std::function<std::uint32_t()> random32_;
  std::unordered_map<std::uint32_t, void*> map_;
};

// Receiver indexes bound to sessions of type T (not owned).
template <class T>
class ReceiverIndexTable {
 public:
  explicit ReceiverIndexTable(std::function<std::uint32_t()> random32) : map_(std::move(random32)) {}
  std::uint32_t allocate(T& value) { return map_.allocate(&value); }
  T* find(std::uint32_t index) const { return static_cast<T*>(map_.find(index)); }
  void release(std::uint32_t index, const T& value) { map_.release(index, &value); }
  std::size_t size() const { return map_.size(); }

 private:
  ReceiverIndexMap map_;
};

}  // namespace wownet::overlay

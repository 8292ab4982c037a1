// DataOpener::open, the data channel's receive path, with one fresh
// session key per input. Input: a mode byte (bit 0: ChaCha20-Poly1305
// instead of AES-256-GCM), then steps of [op, 16-bit length, bytes]:
//   op % 3 == 0  the bytes are a datagram from anyone: opened as is
//   op % 3 == 1  the bytes are a plaintext: sealed by the peer, one byte
//                changed (position and XOR from the next 3 bytes; XOR 0
//                changes nothing), then opened: an unchanged packet must
//                open to the plaintext, a changed one must be refused
//   op % 3 == 2  the last sealed packet again: refused as a replay
#include <algorithm>
#include <array>
#include <vector>

#include "crypto/data_channel.h"
#include "fuzz_input.h"
#include "fuzz_target.h"

using namespace wownet;
using namespace wownet::crypto;
using E = DataOpener::OpenResult::Error;

namespace {

constexpr std::uint32_t kReceiverIndex = 0x01020304;

}  // namespace

WOWNET_FUZZ_TARGET(data_channel)(const std::uint8_t* data, std::size_t size) {
  static constexpr std::array<std::uint8_t, kDataKeySize> kKey = {
      0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xf0, 0x01,
      0x12, 0x23, 0x34, 0x45, 0x56, 0x67, 0x78, 0x89, 0x9a, 0xab, 0xbc, 0xcd, 0xde, 0xef, 0xf1, 0x02};
  fuzz::FuzzReader in(data, size);
  const Cipher cipher = (in.u8() & 1) ? Cipher::ChaCha20Poly1305 : Cipher::Aes256Gcm;
  DataOpener opener(cipher, kKey, kReceiverIndex);
  DataSealer sealer(cipher, kKey, kReceiverIndex);
  std::vector<std::uint8_t> last_sealed;
  for (int steps = 0; !in.empty() && steps < 32; ++steps) {
    const std::uint8_t op = in.u8();
    const auto bytes = in.chunk();
    switch (op % 3) {
      case 0: {
        std::vector<std::uint8_t> packet(bytes.begin(), bytes.end());
        const auto peeked = DataOpener::peek_receiver_index(packet);
        DataOpener::OpenResult r;
        if (op & 0x80 && packet.size() >= kDataHeaderSize) {  // in place
          r = opener.open(packet, std::span(packet).subspan(kDataHeaderSize));
        } else {
          const std::size_t want = packet.size() >= kDataOverhead ? packet.size() - kDataOverhead : 0;
          std::vector<std::uint8_t> out((op & 0x40) ? want / 2 : want + (op >> 3 & 7));
          r = opener.open(packet, out);
          WOWNET_FUZZ_CHECK(r.size <= out.size());
        }
        if (peeked) WOWNET_FUZZ_CHECK(r.error != E::Short && r.error != E::BadType && r.error != E::BadReserved);
        if (r.error != E::None) WOWNET_FUZZ_CHECK(r.size == 0);
        break;
      }
      case 1: {
        const std::uint16_t pos = in.u16();
        const std::uint8_t flip = in.u8();
        if (op & 0x80) sealer.advance_to(sealer.counter() + (op & 0x7f) * 1000);
        std::vector<std::uint8_t> packet(bytes.size() + kDataOverhead);
        const std::size_t n = sealer.seal(bytes, packet);
        WOWNET_FUZZ_CHECK(n == packet.size());
        last_sealed = packet;
        packet[pos % packet.size()] ^= flip;
        std::vector<std::uint8_t> out(bytes.size());
        const auto r = opener.open(packet, out);
        if (flip == 0) {
          WOWNET_FUZZ_CHECK(r.error == E::None && r.size == bytes.size());
          WOWNET_FUZZ_CHECK(std::equal(out.begin(), out.end(), bytes.begin(), bytes.end()));
        } else {
          WOWNET_FUZZ_CHECK(r.error != E::None);
        }
        break;
      }
      case 2: {
        if (last_sealed.empty()) break;
        std::vector<std::uint8_t> out(last_sealed.size());
        const auto r = opener.open(last_sealed, out);
        // Refused: seen already, or (if the changed copy was refused) now
        // accepted once and never again.
        if (r.error == E::None)
          WOWNET_FUZZ_CHECK(opener.open(last_sealed, out).error == E::Replayed);
        else
          WOWNET_FUZZ_CHECK(r.error == E::Replayed);
        break;
      }
    }
  }
}

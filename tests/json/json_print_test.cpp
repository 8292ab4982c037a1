// hostd/json_print: exact output for every field type, and valid JSON for
// any string bytes.
#include "json_print.h"

#include <gtest/gtest.h>

#include <cctype>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <utility>

#include "json_print_test.pb.h"
#include "proto/control.pb.h"

namespace wownet::json {
namespace {

using json_test::Empty;
using json_test::Everything;

// A minimal JSON validator (RFC 8259): true if `s` is exactly one value,
// with only whitespace around it. Strings must be valid UTF-8 with no raw
// control characters.
class Validator {
 public:
  explicit Validator(const std::string& s) : s_(s) {}
  bool valid() {
    ws();
    if (!value()) return false;
    ws();
    return i_ == s_.size();
  }

 private:
  bool value() {
    if (i_ >= s_.size()) return false;
    char c = s_[i_];
    if (c == '{') return object();
    if (c == '[') return array();
    if (c == '"') return string();
    if (lit("true") || lit("false") || lit("null")) return true;
    return number();
  }
  bool object() {
    ++i_;
    ws();
    if (peek('}')) return ++i_, true;
    for (;;) {
      ws();
      if (!string()) return false;
      ws();
      if (!peek(':')) return false;
      ++i_;
      ws();
      if (!value()) return false;
      ws();
      if (peek('}')) return ++i_, true;
      if (!peek(',')) return false;
      ++i_;
    }
  }
  bool array() {
    ++i_;
    ws();
    if (peek(']')) return ++i_, true;
    for (;;) {
      ws();
      if (!value()) return false;
      ws();
      if (peek(']')) return ++i_, true;
      if (!peek(',')) return false;
      ++i_;
    }
  }
  bool string() {
    if (!peek('"')) return false;
    ++i_;
    while (i_ < s_.size()) {
      unsigned char c = static_cast<unsigned char>(s_[i_]);
      if (c == '"') return ++i_, true;
      if (c < 0x20) return false;
      if (c == '\\') {
        ++i_;
        if (i_ >= s_.size()) return false;
        char e = s_[i_];
        if (e == 'u') {
          for (int k = 1; k <= 4; ++k)
            if (i_ + k >= s_.size() || !std::isxdigit(static_cast<unsigned char>(s_[i_ + k]))) return false;
          i_ += 5;
          continue;
        }
        if (std::string("\"\\/bfnrt").find(e) == std::string::npos) return false;
        ++i_;
        continue;
      }
      int len = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
      if (len == 0 || (len == 2 && c < 0xc2) || (len == 4 && c > 0xf4)) return false;
      for (int k = 1; k < len; ++k)
        if (i_ + k >= s_.size() || (static_cast<unsigned char>(s_[i_ + k]) & 0xc0) != 0x80) return false;
      i_ += std::size_t(len);
    }
    return false;
  }
  bool number() {
    std::size_t start = i_;
    if (peek('-')) ++i_;
    if (peek('0')) {
      ++i_;
    } else if (digits() == 0) {
      return false;
    }
    if (peek('.')) {
      ++i_;
      if (digits() == 0) return false;
    }
    if (peek('e') || peek('E')) {
      ++i_;
      if (peek('+') || peek('-')) ++i_;
      if (digits() == 0) return false;
    }
    return i_ > start;
  }
  std::size_t digits() {
    std::size_t n = 0;
    while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_]))) ++i_, ++n;
    return n;
  }
  bool lit(const char* w) {
    std::string_view v(w);
    if (s_.compare(i_, v.size(), v) != 0) return false;
    i_ += v.size();
    return true;
  }
  bool peek(char c) const { return i_ < s_.size() && s_[i_] == c; }
  void ws() {
    while (i_ < s_.size() && std::string(" \t\n\r").find(s_[i_]) != std::string::npos) ++i_;
  }
  const std::string& s_;
  std::size_t i_ = 0;
};

bool valid_json(const std::string& s) { return Validator(s).valid(); }

TEST(JsonValidator, RejectsWhatItShould) {
  EXPECT_TRUE(valid_json(R"({"a": [1, -2.5e+3, "x\u00e9", null, true], "b": {}})"));
  EXPECT_FALSE(valid_json("{\"a\": \"\x01\"}"));
  EXPECT_FALSE(valid_json("{\"a\": \"\xff\"}"));
  EXPECT_FALSE(valid_json(R"({"a": "12"} {})"));
  EXPECT_FALSE(valid_json(R"({"a": 01})"));
  EXPECT_FALSE(valid_json(R"({"a": nan})"));
}

TEST(JsonPrint, DefaultsPrintEveryFieldEmptyListsAndNulls) {
  Everything m;
  EXPECT_EQ(print(m), R"({
  "i32": 0,
  "i64": 0,
  "u32": 0,
  "u64": 0,
  "s64": 0,
  "f64": 0,
  "d": 0,
  "f": 0,
  "b": false,
  "s": "",
  "raw": "",
  "color": "COLOR_UNSPECIFIED",
  "inner": null,
  "numbers": [],
  "inners": [],
  "names": [],
  "counters": {},
  "by_id": {},
  "maybe": null,
  "rtt_ms": 0,
  "mtu": null,
  "mac": null,
  "colors": [],
  "text": null,
  "nested": null
})");
  EXPECT_EQ(print(Empty()), "{}");
}

TEST(JsonPrint, SixtyFourBitIntegersAreNumbers) {
  Everything m;
  m.set_i64(std::numeric_limits<std::int64_t>::min());
  m.set_u64(std::numeric_limits<std::uint64_t>::max());
  m.set_s64(-42);
  m.set_f64(1ull << 63);
  m.set_i32(std::numeric_limits<std::int32_t>::min());
  m.set_u32(std::numeric_limits<std::uint32_t>::max());
  std::string out = print(m);
  EXPECT_NE(out.find("\"i64\": -9223372036854775808,"), std::string::npos) << out;
  EXPECT_NE(out.find("\"u64\": 18446744073709551615,"), std::string::npos) << out;
  EXPECT_NE(out.find("\"s64\": -42,"), std::string::npos) << out;
  EXPECT_NE(out.find("\"f64\": 9223372036854775808,"), std::string::npos) << out;
  EXPECT_NE(out.find("\"i32\": -2147483648,"), std::string::npos) << out;
  EXPECT_NE(out.find("\"u32\": 4294967295,"), std::string::npos) << out;
  EXPECT_TRUE(valid_json(out)) << out;
}

TEST(JsonPrint, FloatingPointRoundTripsAndNonFiniteIsNull) {
  Everything m;
  m.set_d(0.1);
  m.set_f(1.5f);
  std::string out = print(m);
  EXPECT_NE(out.find("\"d\": 0.1,"), std::string::npos) << out;
  EXPECT_NE(out.find("\"f\": 1.5,"), std::string::npos) << out;
  m.set_d(std::numeric_limits<double>::quiet_NaN());
  m.set_f(std::numeric_limits<float>::infinity());
  out = print(m);
  EXPECT_NE(out.find("\"d\": null,"), std::string::npos) << out;
  EXPECT_NE(out.find("\"f\": null,"), std::string::npos) << out;
  EXPECT_TRUE(valid_json(out)) << out;
}

TEST(JsonPrint, NestedRepeatedAndMaps) {
  Everything m;
  m.mutable_inner()->set_name("a");
  m.mutable_inner()->set_count(7);
  m.add_numbers(-1);
  m.add_numbers(5000000000);
  m.add_inners()->set_name("x");
  m.add_names("p");
  (*m.mutable_counters())["zeta"] = 1;
  (*m.mutable_counters())["alpha"] = 18446744073709551615ull;
  (*m.mutable_by_id())[10].set_name("ten");
  (*m.mutable_by_id())[-2].set_name("minus two");
  (*m.mutable_by_id())[9].set_count(3);
  m.set_maybe(0);
  m.add_colors(json_test::GREEN);
  m.mutable_nested()->set_count(1);
  std::string out = print(m);
  EXPECT_TRUE(valid_json(out)) << out;
  EXPECT_NE(out.find(R"(  "inner": {
    "name": "a",
    "count": 7
  },
  "numbers": [
    -1,
    5000000000
  ],
  "inners": [
    {
      "name": "x",
      "count": 0
    }
  ],
  "names": [
    "p"
  ],
  "counters": {
    "alpha": 18446744073709551615,
    "zeta": 1
  },
  "by_id": {
    "-2": {
      "name": "minus two",
      "count": 0
    },
    "9": {
      "name": "",
      "count": 3
    },
    "10": {
      "name": "ten",
      "count": 0
    }
  },
  "maybe": 0,)"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find(R"(  "colors": [
    "GREEN"
  ],
  "text": null,
  "nested": {
    "name": "",
    "count": 1
  }
})"),
            std::string::npos)
      << out;
}

TEST(JsonPrint, EnumsByNameUnknownValuesByNumber) {
  Everything m;
  m.set_color(json_test::RED);
  EXPECT_NE(print(m).find("\"color\": \"RED\","), std::string::npos);
  m.set_color(static_cast<json_test::Color>(77));  // proto3 enums are open
  EXPECT_NE(print(m).find("\"color\": 77,"), std::string::npos) << print(m);
}

TEST(JsonPrint, NullIfOptions) {
  Everything m;
  m.set_rtt_ms(-1);
  m.set_mtu(1400);
  m.set_mac("52:54:00:00:00:01");
  std::string out = print(m);
  EXPECT_NE(out.find("\"rtt_ms\": null,"), std::string::npos) << out;
  EXPECT_NE(out.find("\"mtu\": 1400,"), std::string::npos) << out;
  EXPECT_NE(out.find("\"mac\": \"52:54:00:00:00:01\","), std::string::npos) << out;
  m.set_rtt_ms(12);
  m.set_mtu(0);
  m.clear_mac();
  out = print(m);
  EXPECT_NE(out.find("\"rtt_ms\": 12,"), std::string::npos) << out;
  EXPECT_NE(out.find("\"mtu\": null,"), std::string::npos) << out;
  EXPECT_NE(out.find("\"mac\": null,"), std::string::npos) << out;
}

TEST(JsonPrint, BytesAreBase64) {
  Everything m;
  for (const auto& [in, want] : {std::pair<std::string, std::string>{"", ""},
                                 {"f", "Zg=="},
                                 {"fo", "Zm8="},
                                 {"foo", "Zm9v"},
                                 {std::string("\0\xff\x80\x01", 4), "AP+AAQ=="}}) {
    m.set_raw(in);
    EXPECT_NE(print(m).find("\"raw\": \"" + want + "\","), std::string::npos) << print(m);
  }
}

TEST(JsonQuote, EscapesQuotesBackslashesAndControlCharacters) {
  EXPECT_EQ(quote(""), R"("")");
  EXPECT_EQ(quote("plain"), R"("plain")");
  EXPECT_EQ(quote("say \"hi\" \\ bye"), R"("say \"hi\" \\ bye")");
  EXPECT_EQ(quote("\b\f\n\r\t"), R"("\b\f\n\r\t")");
  EXPECT_EQ(quote(std::string("\0\x01\x1f\x7f", 4)), R"("\u0000\u0001\u001f\u007f")");
  EXPECT_EQ(quote("/"), R"("/")");
}

TEST(JsonQuote, CopiesValidUtf8) {
  EXPECT_EQ(quote("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80"), "\"h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80\"");
  EXPECT_EQ(quote("\xef\xbf\xbf\xf4\x8f\xbf\xbf"), "\"\xef\xbf\xbf\xf4\x8f\xbf\xbf\"");  // U+FFFF, U+10FFFF
}

TEST(JsonQuote, ReplacesInvalidUtf8) {
  EXPECT_EQ(quote("a\xff"
                  "b"),
            R"("a\ufffdb")");
  EXPECT_EQ(quote("\xc3"), R"("\ufffd")");                                // truncated sequence
  EXPECT_EQ(quote("\xc0\xaf"), R"("\ufffd\ufffd")");                      // overlong '/'
  EXPECT_EQ(quote("\xe0\x80\xaf"), R"("\ufffd\ufffd\ufffd")");            // overlong, 3 bytes
  EXPECT_EQ(quote("\xed\xa0\x80"), R"("\ufffd\ufffd\ufffd")");            // UTF-16 surrogate D800
  EXPECT_EQ(quote("\xf4\x90\x80\x80"), R"("\ufffd\ufffd\ufffd\ufffd")");  // above U+10FFFF
  EXPECT_EQ(quote("\x80x"), R"("\ufffdx")");                              // lone continuation byte
}

TEST(JsonQuote, AnyBytesGiveValidJson) {
  // Every single byte, every pair of bytes from an interesting set, and a
  // pseudo-random walk: always one valid JSON string.
  for (int c = 0; c < 256; ++c) {
    std::string s(1, char(c));
    ASSERT_TRUE(valid_json(quote(s))) << c;
  }
  const unsigned char interesting[] = {0x00, 0x1f, 0x22, 0x5c, 0x7f, 0x80, 0xbf, 0xc0, 0xc2,
                                       0xdf, 0xe0, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xff, 'a'};
  for (unsigned char a : interesting)
    for (unsigned char b : interesting)
      for (unsigned char c : interesting) {
        std::string s{char(a), char(b), char(c)};
        ASSERT_TRUE(valid_json(quote(s))) << int(a) << " " << int(b) << " " << int(c);
      }
  std::uint32_t x = 12345;
  std::string s;
  for (int i = 0; i < 20000; ++i) {
    x = x * 1103515245 + 12345;
    s += char(x >> 16);
  }
  EXPECT_TRUE(valid_json(quote(s)));
}

TEST(JsonPrint, ControlMessagesUseTheirNullMarkers) {
  control::Peer p;
  p.set_node_id("00112233");
  p.set_rtt_ms(-1);
  p.set_tx_bytes(std::uint64_t(1) << 40);
  std::string out = print(p);
  EXPECT_TRUE(valid_json(out)) << out;
  EXPECT_NE(out.find("\"node_name\": null,"), std::string::npos) << out;
  EXPECT_NE(out.find("\"tx_bytes\": 1099511627776,"), std::string::npos) << out;
  EXPECT_NE(out.find("\"last_handshake_unix\": null,"), std::string::npos) << out;
  EXPECT_NE(out.find("\"rtt_ms\": null,"), std::string::npos) << out;

  control::AttachmentList l;
  EXPECT_EQ(print(l), "{\n  \"attachments\": []\n}");
  auto* a = l.add_attachments();
  a->set_vm("vm1\n\"x\"\xff");
  a->mutable_counters()->set_rx_frames(3);
  out = print(l);
  EXPECT_TRUE(valid_json(out)) << out;
  EXPECT_NE(out.find(R"("vm": "vm1\n\"x\"\ufffd",)"), std::string::npos) << out;
  EXPECT_NE(out.find("\"agent\": null,"), std::string::npos) << out;
  EXPECT_NE(out.find("\"address\": null,"), std::string::npos) << out;
  EXPECT_NE(out.find("\"rx_frames\": 3,"), std::string::npos) << out;
  EXPECT_NE(out.find("\"drops\": {}"), std::string::npos) << out;
}

}  // namespace
}  // namespace wownet::json

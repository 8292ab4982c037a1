// ReceiverIndexTable: allocation from a supplied random source, lookup and
// release; no sessions needed.
#include "overlay/index_table.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <vector>

namespace wownet::overlay {
namespace {

struct Item {
  int id = 0;
};

// Hands out the given values in turn, then zeros.
std::function<std::uint32_t()> sequence(std::vector<std::uint32_t> values) {
  auto i = std::make_shared<std::size_t>(0);
  return [values, i]() -> std::uint32_t { return *i < values.size() ? values[(*i)++] : 0; };
}

TEST(ReceiverIndexTableTest, AllocatesTheRandomValueAndFindsIt) {
  ReceiverIndexTable<Item> table(sequence({0x12345678, 0x9abcdef0}));
  Item a{1}, b{2};
  EXPECT_EQ(table.allocate(a), 0x12345678u);
  EXPECT_EQ(table.allocate(b), 0x9abcdef0u);
  EXPECT_EQ(table.find(0x12345678), &a);
  EXPECT_EQ(table.find(0x9abcdef0), &b);
  EXPECT_EQ(table.find(7), nullptr);
  EXPECT_EQ(table.size(), 2u);
}

TEST(ReceiverIndexTableTest, SkipsZeroAndIndexesInUse) {
  ReceiverIndexTable<Item> table(sequence({5, 0, 5, 6}));
  Item a, b;
  EXPECT_EQ(table.allocate(a), 5u);
  EXPECT_EQ(table.allocate(b), 6u);  // 0 and the taken 5 were rejected
}

TEST(ReceiverIndexTableTest, ProbesUpwardsWhenTheSourceKeepsRepeating) {
  ReceiverIndexTable<Item> table([] { return 9u; });
  Item a, b, c;
  EXPECT_EQ(table.allocate(a), 9u);
  EXPECT_EQ(table.allocate(b), 10u);
  EXPECT_EQ(table.allocate(c), 11u);
}

TEST(ReceiverIndexTableTest, NullOrThrowingSourceStillGivesDistinctNonzeroIndexes) {
  ReceiverIndexTable<Item> none(nullptr);
  Item a, b;
  EXPECT_EQ(none.allocate(a), 1u);
  EXPECT_EQ(none.allocate(b), 2u);
  ReceiverIndexTable<Item> throwing([]() -> std::uint32_t { throw std::runtime_error("no entropy"); });
  EXPECT_EQ(throwing.allocate(a), 1u);
}

TEST(ReceiverIndexTableTest, ReleaseUnbindsOnlyTheOwner) {
  ReceiverIndexTable<Item> table(sequence({42, 42}));
  Item a, b;
  ASSERT_EQ(table.allocate(a), 42u);
  table.release(42, b);  // not b's: ignored
  EXPECT_EQ(table.find(42), &a);
  table.release(42, a);
  EXPECT_EQ(table.find(42), nullptr);
  EXPECT_EQ(table.allocate(b), 42u);  // free again
  EXPECT_EQ(table.find(42), &b);
}

}  // namespace
}  // namespace wownet::overlay

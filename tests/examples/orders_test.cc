// The orders example (examples/orders): a step that appends to a derived depot
// (TopologyContext::Append), duplicates, the derived topology, and the oracle.
#include <map>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "example_harness.h"

namespace strata::examples_test {
namespace {

Value Order(const std::string& id, const std::string& customer, int64_t amount) {
  return Value::MapOf({{"order_id", id}, {"customer", customer}, {"amount", amount}});
}

class OrdersTest : public ExampleTest {
 protected:
  OrdersTest() : ExampleTest("orders") {}

  // The ack return of `place` for a processed order (nil after a test failure).
  Value Place(const Value& order) {
    auto r = engine_->Append("orders", "*orders", order);
    EXPECT_TRUE(r.ok()) << order.ToString() << ": " << r.status().ToString();
    return r.ok() ? AckReturn(*r, "place") : Value();
  }

  // Every *shipments record, by order id: how many there are.
  std::map<Value, int> ShipmentCounts() {
    std::map<Value, int> counts;
    auto shipments = ReadWholeDepot(*engine_, "orders", "*shipments");
    EXPECT_TRUE(shipments.ok()) << shipments.status().ToString();
    if (!shipments.ok()) return counts;
    for (const auto& partition : *shipments) {
      for (const DepotEntry& e : partition) ++counts[Field(e.record, "order_id")];
    }
    return counts;
  }
};

TEST_F(OrdersTest, APlacedOrderIsShippedAndAProcessedAckCoversItsShipment) {
  EXPECT_EQ(Place(Order("o1", "ann", 30)), Value::MapOf({{"status", "placed"}}));
  // The processed ack covers the derived record and its topology: no wait needed.
  EXPECT_EQ(SelectOne("$$orders", Path().Key("o1")),
            Value::MapOf({{"customer", "ann"}, {"amount", 30}}));
  EXPECT_EQ(SelectOne("$$shipped", Path().Key("ann")), Value::SetOf({Value("o1")}));
  EXPECT_EQ(ShipmentCounts(), (std::map<Value, int>{{Value("o1"), 1}}));
}

TEST_F(OrdersTest, ADuplicateOrderIsNotShippedTwice) {
  EXPECT_EQ(Place(Order("o1", "ann", 30)), Value::MapOf({{"status", "placed"}}));
  EXPECT_EQ(Place(Order("o1", "ann", 30)), Value::MapOf({{"status", "duplicate"}}));
  EXPECT_EQ(ShipmentCounts(), (std::map<Value, int>{{Value("o1"), 1}}));
}

TEST_F(OrdersTest, ShipmentsLandOnTheOrdersPartition) {
  for (int i = 0; i < 20; ++i) Place(Order(Cat("o", i), Cat("c", i % 3), i));
  auto orders = ReadWholeDepot(*engine_, "orders", "*orders");
  auto shipments = ReadWholeDepot(*engine_, "orders", "*shipments");
  ASSERT_TRUE(orders.ok() && shipments.ok());
  for (size_t p = 0; p < orders->size(); ++p) {
    std::vector<Value> ordered, shipped;
    for (const DepotEntry& e : (*orders)[p]) ordered.push_back(Field(e.record, "order_id"));
    for (const DepotEntry& e : (*shipments)[p]) shipped.push_back(Field(e.record, "order_id"));
    EXPECT_EQ(ordered, shipped) << "partition " << p;
  }
}

TEST_F(OrdersTest, AMalformedOrderIsAUserErrorAndShipsNothing) {
  auto r =
      engine_->Append("orders", "*orders", Value::MapOf({{"order_id", "o9"}, {"customer", "ann"}}));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUserError) << r.status().ToString();
  EXPECT_TRUE(ShipmentCounts().empty());
}

TEST_F(OrdersTest, AMistypedOrderIsRefusedBeforeTheLog) {
  auto r =
      engine_->Append("orders", "*orders",
                      Value::MapOf({{"order_id", "o9"}, {"customer", "ann"}, {"amount", "ten"}}));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kSchemaViolation) << r.status().ToString();
  auto orders = ReadWholeDepot(*engine_, "orders", "*orders");
  ASSERT_TRUE(orders.ok());
  for (const auto& partition : *orders) EXPECT_TRUE(partition.empty());
}

TEST_F(OrdersTest, ViewsEqualTheirRecomputationFromOrdersAlone) {
  std::mt19937_64 rng(TestSeed(42));
  std::vector<Value> batch;
  for (int i = 0; i < 300; ++i) {
    const int id = static_cast<int>(rng() % 200);  // some ids repeat: duplicates
    batch.push_back(Order(Cat("o", id), Cat("c", rng() % 7), static_cast<int64_t>(rng() % 50)));
  }
  EX_ASSERT_OK(engine_->AppendBatch("orders", "*orders", std::move(batch), AckLevel::kNone));
  EX_ASSERT_OK(engine_->WaitProcessed("orders"));
  for (const auto& [id, n] : ShipmentCounts()) EXPECT_EQ(n, 1) << id.ToString();
  ExpectRecomputationEqual({"*orders"});
}

}  // namespace
}  // namespace strata::examples_test

// orders: orders and their shipments. Shows a topology appending to another depot of its
// module (TopologyContext::Append): the record a step appends is committed atomically with
// the step's PState writes, so after any crash an order that was placed always has its
// shipment record, exactly once (docs/runtime.md, "Topology appends"). The derived depot
// feeds a second topology like any client depot.
//
//   *orders      hash("order_id"): {"order_id": s, "customer": s, "amount": int64}
//   *shipments   no client appends: {"order_id": s, "customer": s}, appended by `place`
//                on the order's partition
//   $$orders     map<string, record{customer, amount}>: order id -> the order; the first
//                record of an id places it, later ones (client retries) are duplicates
//   $$shipped    map<string, set<string>>: customer -> ids of the orders shipped to them
//
// Topology `place` (source *orders, on the order's partition): a new order id is stored in
// $$orders and a shipment appended to *shipments; ack return {"status": "placed"} or
// {"status": "duplicate"}. Topology `ship` (source *shipments): hash hop by customer, then
// adds the order id to $$shipped. Both are idempotent, so the views equal their
// recomputation from *orders alone even after a crash, and *shipments holds exactly one
// record per key of $$orders.
//
// A mistyped field is refused at append by the record schema (SCHEMA_VIOLATION); a record
// missing a field, or with an empty order_id / customer, is a user error of `place`.
#include <cstdint>
#include <string>

#include "strata/module.h"

namespace {

using strata::DepotRef;
using strata::Path;
using strata::PStateRef;
using strata::Schema;
using strata::Status;
using strata::TopologyContext;
using strata::Value;

Status CheckOrder(const Value& order) {
  for (const char* field : {"order_id", "customer"}) {
    const Value* v = order.is_map() ? order.Find(Value(field)) : nullptr;
    if (v == nullptr || !v->is_string() || v->as_string().empty()) {
      return Status::InvalidArgument(std::string("*orders: field \"") + field +
                                     "\" must be a non-empty string in " + order.ToString());
    }
  }
  const Value* amount = order.Find(Value("amount"));
  if (amount == nullptr || !amount->is_int()) {
    return Status::InvalidArgument("*orders: field \"amount\" must be an int64 in " +
                                   order.ToString());
  }
  return Status::Ok();
}

// On the order's partition: places a new order and appends its shipment.
Status Place(const PStateRef& orders, const DepotRef& shipments, TopologyContext& ctx,
             const Value& order) {
  STRATA_RETURN_IF_ERROR(CheckOrder(order));
  const Value& id = *order.Find(Value("order_id"));
  const Value& customer = *order.Find(Value("customer"));
  STRATA_ASSIGN_OR_RETURN(Value existing, ctx.SelectOne(orders, Path().Key(id)));
  if (!existing.is_nil()) {
    ctx.SetAckReturn(Value::MapOf({{"status", "duplicate"}}));
    return Status::Ok();
  }
  Value stored = Value::MapOf({{"customer", customer}, {"amount", *order.Find(Value("amount"))}});
  STRATA_RETURN_IF_ERROR(ctx.Transform(orders, Path().Key(id).Set(std::move(stored))).status());
  STRATA_RETURN_IF_ERROR(
      ctx.Append(shipments, Value::MapOf({{"order_id", id}, {"customer", customer}})));
  ctx.SetAckReturn(Value::MapOf({{"status", "placed"}}));
  return Status::Ok();
}

void Define(strata::ModuleBuilder& m) {
  // The record schemas refuse a mistyped field at append; `place` checks that the fields
  // are present and the ids not empty.
  DepotRef orders_depot =
      m.Depot("*orders", strata::DepotPartitioning::Hash(Path().Key("order_id")),
              Schema::Record({{"order_id", Schema::String()},
                              {"customer", Schema::String()},
                              {"amount", Schema::Int64()}}));
  DepotRef shipments =
      m.Depot("*shipments", strata::DepotPartitioning::NoClientAppends(),
              Schema::Record({{"order_id", Schema::String()}, {"customer", Schema::String()}}));
  PStateRef orders = m.PState(
      "$$orders", Schema::Map(Schema::String(), Schema::Record({{"customer", Schema::String()},
                                                                {"amount", Schema::Int64()}})));
  PStateRef shipped =
      m.PState("$$shipped", Schema::Map(Schema::String(), Schema::Set(Schema::String())));

  m.Stream("place")
      .Source(orders_depot)
      .Each([orders, shipments](TopologyContext& ctx, const Value& order) {
        return Place(orders, shipments, ctx, order);
      });
  m.Stream("ship")
      .Source(shipments)
      .HashPartition([](const Value& s) { return *s.Find(Value("customer")); })
      .Each([shipped](TopologyContext& ctx, const Value& s) {
        return ctx
            .Transform(shipped,
                       Path().Key(*s.Find(Value("customer"))).AddToSet(*s.Find(Value("order_id"))))
            .status();
      });
}

}  // namespace

STRATA_MODULE(orders, Define)

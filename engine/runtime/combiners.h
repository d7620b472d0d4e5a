// The built-in combiners of microbatch aggregation (strata::agg, docs/modules.md,
// "Aggregation"): how one input becomes a partial value, and how partials merge — with
// each other while a batch pre-aggregates, and into the value stored at the location.
// Pure functions: any thread.
#pragma once

#include "strata/module.h"
#include "strata/value.h"

namespace strata::runtime {

// The value an input contributes: value_of(input), or the input itself. kUserError when
// value_of fails.
Result<Value> CombinerInput(const Combiner& combiner, Value input);

// The partial of one input value: value_of(input) (or the input), 1 for a count, a set of
// one element for a set union, a list of one item for a top-N. kUserError when value_of
// fails; kInvalidArgument when the value does not fit the combiner (a Sum of a string).
Result<Value> CombinerPartial(const Combiner& combiner, const Value& input);

// What a fold of nothing gives: a count or sum of no values is 0, a set union the empty
// set, a top-N the empty list; the others nil.
Value CombinerEmpty(const Combiner& combiner);

// `earlier` combined with `later` (both partials, or `earlier` the stored value; nil
// stands for "nothing yet"). Associative: merging partials in any grouping that keeps
// their order gives the same value. kInvalidArgument when the types do not fit (e.g. a
// stored string under a Sum, an int64 overflow).
Result<Value> CombinerMerge(const Combiner& combiner, const Value& earlier, const Value& later);

}  // namespace strata::runtime

// Which replica group a write belongs to (docs/cluster.md, "Replica groups").
#include "replication/group.h"

#include <string>

#include <gtest/gtest.h>

#include "strata/key_codec.h"
#include "strata/value.h"

namespace strata::replication {
namespace {

std::string Key(std::initializer_list<Value> parts) {
  std::string key;
  for (const Value& part : parts) AppendKey(part, &key);
  return key;
}

TEST(GroupTest, TablesOfAModuleBelongToTheirPartition) {
  EXPECT_EQ(OwnerOf("depot.bank.deposits.3", ""), (TableOwner{"bank", 3}));
  EXPECT_EQ(OwnerOf("depot.bank.deposits@2.1", ""), (TableOwner{"bank", 1}));
  EXPECT_EQ(OwnerOf("pstate.wordcount.word_counts.0", "k"), (TableOwner{"wordcount", 0}));
  EXPECT_EQ(OwnerOf("pstate.wordcount.word_counts@1.7", "k"), (TableOwner{"wordcount", 7}));
  EXPECT_EQ(OwnerOf("rescale.bank.deposits@1", "k"), (TableOwner{"bank", kModuleWide}));
}

TEST(GroupTest, MetaRowsAreMappedByTheirKeys) {
  EXPECT_EQ(OwnerOf("meta.progress", Key({"social", "fanout", "*posts", 2})),
            (TableOwner{"social", 2}));
  EXPECT_EQ(OwnerOf("meta.progress", Key({"social", "$migration", "$$timelines", 3})),
            (TableOwner{"social", 3}));
  EXPECT_EQ(OwnerOf("meta.progress", Key({"mbbank", "transfers", "$batch", 0})),
            (TableOwner{"mbbank", kModuleWide}));
  EXPECT_EQ(OwnerOf("meta.progress", Key({"mbbank", "transfers", "$plan", 17})),
            (TableOwner{"mbbank", kModuleWide}));
  EXPECT_EQ(OwnerOf("meta.failures", Key({"bank", "transfer", "*transfers", 1, int64_t{99}})),
            (TableOwner{"bank", 1}));
  EXPECT_EQ(OwnerOf("meta.outbox", Key({"social", int64_t{12}})),
            (TableOwner{"social", kModuleWide}));
  // A module's row travels with its data, so that a promoted follower can start it.
  EXPECT_EQ(OwnerOf("meta.modules", Key({"bank"})), (TableOwner{"bank", kModuleWide}));
}

TEST(GroupTest, NodeLocalWritesAreNotReplicated) {
  EXPECT_FALSE(OwnerOf("meta.modules", "not a key"));
  EXPECT_FALSE(OwnerOf("replog.bank.0", ""));
  EXPECT_FALSE(OwnerOf("replstate.bank.0", "applied"));
  EXPECT_FALSE(OwnerOf("scratch", "k"));
  EXPECT_FALSE(OwnerOf("depot.bank.deposits.x", ""));
  EXPECT_FALSE(OwnerOf("depot.bank.deposits", ""));
  EXPECT_FALSE(OwnerOf("meta.progress", "not a key tuple"));
  EXPECT_FALSE(OwnerOf("meta.progress", Key({"bank", "t"})));
}

TEST(GroupTest, PartitionsFormGroupsByModulo) {
  const GroupLayout layout(2, {{"bank", 3}});
  EXPECT_EQ(layout.GroupOf("depot.wordcount.sentences.5", ""), (GroupId{"wordcount", 1}));
  EXPECT_EQ(layout.GroupOf("depot.bank.deposits.5", ""), (GroupId{"bank", 2}));
  EXPECT_EQ(layout.GroupOf("meta.outbox", Key({"bank", int64_t{1}})), (GroupId{"bank", 0}));
  EXPECT_EQ(layout.GroupOf("meta.modules", Key({"bank"})), (GroupId{"bank", 0}));
  EXPECT_EQ((GroupId{"bank", 2}).ToString(), "bank/2");
}

}  // namespace
}  // namespace strata::replication

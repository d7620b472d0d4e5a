#include "cluster_url.h"

#include <gtest/gtest.h>

namespace strata::cluster {
namespace {

TEST(ClusterUrlTest, ParsesServersAndRoot) {
  Result<ClusterUrl> url = ParseClusterUrl("zk://zk1:2181,10.0.0.2:2182,[::1]:2183/strata/prod");
  ASSERT_TRUE(url.ok()) << url.status().ToString();
  EXPECT_EQ(url->servers, (std::vector<std::string>{"zk1:2181", "10.0.0.2:2182", "[::1]:2183"}));
  EXPECT_EQ(url->root, "/strata/prod");
  EXPECT_EQ(url->ServersText(), "zk1:2181,10.0.0.2:2182,[::1]:2183");
  EXPECT_EQ(url->ToString(), "zk://zk1:2181,10.0.0.2:2182,[::1]:2183/strata/prod");
}

TEST(ClusterUrlTest, OneServer) {
  Result<ClusterUrl> url = ParseClusterUrl("zk://localhost:2181/s");
  ASSERT_TRUE(url.ok()) << url.status().ToString();
  EXPECT_EQ(url->servers, std::vector<std::string>{"localhost:2181"});
  EXPECT_EQ(url->root, "/s");
}

TEST(ClusterUrlTest, RefusesMalformedUrlsSayingWhy) {
  const std::pair<const char*, const char*> cases[] = {
      {"http://zk:2181/s", "does not start with zk://"},
      {"zk:2181/s", "does not start with zk://"},
      {"zk://zk:2181", "has no root path"},
      {"zk://zk:2181/", "has no root path"},
      {"zk:///s", "names no server"},
      {"zk://zk:2181,/s", "empty server"},
      {"zk://,zk:2181/s", "empty server"},
      {"zk://zk/s", "not HOST:PORT"},
      {"zk://:2181/s", "without a host"},
      {"zk://zk:0/s", "not a number from 1 to 65535"},
      {"zk://zk:65536/s", "not a number from 1 to 65535"},
      {"zk://zk:21x/s", "not a number from 1 to 65535"},
      {"zk://zk:/s", "not a number from 1 to 65535"},
      {"zk://::1:2181/s", "not HOST:PORT"},
      {"zk://[::1]2181/s", "not [IPV6]:PORT"},
      {"zk://[]:2181/s", "without a host"},
      {"zk://zk:2181/s/", "ending in '/'"},
      {"zk://zk:2181/a//b", "empty, '.' or '..' segment"},
      {"zk://zk:2181/a/../b", "empty, '.' or '..' segment"},
      {"zk://zk:2181/a b", "space or control character"},
  };
  for (const auto& [text, why] : cases) {
    Result<ClusterUrl> url = ParseClusterUrl(text);
    ASSERT_FALSE(url.ok()) << text;
    EXPECT_EQ(url.status().code(), StatusCode::kInvalidArgument) << text;
    EXPECT_NE(url.status().message().find(why), std::string::npos)
        << text << ": " << url.status().message();
    EXPECT_NE(url.status().message().find(std::string("'") + text + "'"), std::string::npos)
        << url.status().message();
    EXPECT_NE(url.status().message().find("zk://HOST:PORT[,HOST:PORT...]/PATH"), std::string::npos);
  }
}

}  // namespace
}  // namespace strata::cluster

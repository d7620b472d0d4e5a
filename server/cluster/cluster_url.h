// The --cluster URL: zk://HOST:PORT[,HOST:PORT...]/PATH names the ZooKeeper ensemble and the
// cluster's root znode under it (docs/cluster.md). Every znode of the cluster lives under
// PATH: the client uses it as its chroot, so that several clusters share one ensemble.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "strata/status.h"

namespace strata::cluster {

struct ClusterUrl {
  std::vector<std::string> servers;  // "HOST:PORT" or "[IPV6]:PORT", in the URL's order
  std::string root;                  // "/a/b": absolute, no trailing slash, never "/"

  // "HOST:PORT,HOST:PORT" for zookeeper_init (without the chroot).
  std::string ServersText() const;
  // The URL again: "zk://HOST:PORT,.../PATH".
  std::string ToString() const;
};

// Parses a --cluster value. kInvalidArgument, quoting the text and saying what is wrong,
// for anything but zk:// with at least one HOST:PORT (port 1 to 65535) and a root path of
// non-empty segments other than "." and "..".
Result<ClusterUrl> ParseClusterUrl(std::string_view text);

}  // namespace strata::cluster

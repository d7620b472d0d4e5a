#include "cluster_url.h"

#include <charconv>

namespace strata::cluster {
namespace {

constexpr std::string_view kScheme = "zk://";
constexpr std::string_view kShape = "zk://HOST:PORT[,HOST:PORT...]/PATH";

Status Bad(std::string_view text, const std::string& why) {
  return Status::InvalidArgument("cluster URL '" + std::string(text) + "' " + why +
                                 " (it must look like " + std::string(kShape) + ")");
}

// "HOST:PORT" or "[IPV6]:PORT"; returns "" when well formed, else what is wrong.
std::string CheckServer(std::string_view server) {
  size_t colon;
  if (!server.empty() && server.front() == '[') {
    const size_t close = server.find(']');
    if (close == std::string_view::npos || close + 1 >= server.size() || server[close + 1] != ':') {
      return "has server '" + std::string(server) + "', not [IPV6]:PORT";
    }
    if (close == 1) return "has server '" + std::string(server) + "' without a host";
    colon = close + 1;
  } else {
    colon = server.rfind(':');
    if (colon == std::string_view::npos || server.find(':') != colon) {
      return "has server '" + std::string(server) + "', not HOST:PORT";
    }
    if (colon == 0) return "has server '" + std::string(server) + "' without a host";
  }
  const std::string_view port = server.substr(colon + 1);
  unsigned value = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || value == 0 ||
      value > 65535) {
    return "has server '" + std::string(server) + "' whose port '" + std::string(port) +
           "' is not a number from 1 to 65535";
  }
  return "";
}

// "/a/b": returns "" when well formed, else what is wrong.
std::string CheckRoot(std::string_view root) {
  if (root.empty() || root == "/") {
    return "has no root path: name the cluster's znode, e.g. /strata";
  }
  if (root.back() == '/') return "has root path '" + std::string(root) + "' ending in '/'";
  size_t start = 1;
  while (start <= root.size()) {
    size_t slash = root.find('/', start);
    if (slash == std::string_view::npos) slash = root.size();
    const std::string_view segment = root.substr(start, slash - start);
    if (segment.empty() || segment == "." || segment == "..") {
      return "has root path '" + std::string(root) + "' with an empty, '.' or '..' segment";
    }
    for (const char c : segment) {
      if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) {
        return "has root path '" + std::string(root) + "' with a space or control character";
      }
    }
    start = slash + 1;
  }
  return "";
}

}  // namespace

std::string ClusterUrl::ServersText() const {
  std::string text;
  for (const std::string& server : servers) text += (text.empty() ? "" : ",") + server;
  return text;
}

std::string ClusterUrl::ToString() const { return std::string(kScheme) + ServersText() + root; }

Result<ClusterUrl> ParseClusterUrl(std::string_view text) {
  if (text.substr(0, kScheme.size()) != kScheme) return Bad(text, "does not start with zk://");
  const std::string_view rest = text.substr(kScheme.size());
  const size_t slash = rest.find('/');
  if (slash == std::string_view::npos) {
    return Bad(text, "has no root path: name the cluster's znode, e.g. /strata");
  }
  ClusterUrl url;
  const std::string_view servers = rest.substr(0, slash);
  if (servers.empty()) return Bad(text, "names no server");
  size_t start = 0;
  for (;;) {
    const size_t comma = servers.find(',', start);
    const std::string_view server = servers.substr(
        start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    if (server.empty()) return Bad(text, "has an empty server between commas");
    if (std::string why = CheckServer(server); !why.empty()) return Bad(text, why);
    url.servers.emplace_back(server);
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  url.root = std::string(rest.substr(slash));
  if (std::string why = CheckRoot(url.root); !why.empty()) return Bad(text, why);
  return url;
}

}  // namespace strata::cluster

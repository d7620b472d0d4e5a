// A driver user outside the source tree (Strata::client from the installed package, no
// engine library): connects to a running stratad, deploys a module by its path on the
// server, appends with processed acks and reads the view back, printing what it saw for
// install_and_build_module.sh to compare. Exits 1 with the error when a call fails.
//
// usage: client_check PORT GREETER.so
#include <strata/client.h>

#include <iostream>
#include <string>

namespace {

int Fail(const std::string& what, const strata::ClientError& error) {
  std::cerr << "client_check: " << what << ": " << error.ToString() << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: client_check PORT GREETER.so\n";
    return 2;
  }
  strata::ClientOptions options;
  options.port = static_cast<uint16_t>(std::stoi(argv[1]));
  auto client = strata::Client::Connect(options);
  if (!client.ok()) return Fail("Connect", client.error());

  auto info = (*client)->Deploy(argv[2], 4);
  if (!info.ok()) return Fail("Deploy", info.error());
  std::cout << "module " << info->name << " (" << info->partitions << " partitions)\n";

  for (const char* name : {"ann", "bob", "ann"}) {
    auto appended = (*client)->Append("greeter", "*names", strata::Value(name));
    if (!appended.ok()) return Fail(std::string("Append ") + name, appended.error());
    std::cout << "append " << name << " ->";
    for (const auto& [topology, ack] : appended->ack_returns) {
      std::cout << " " << topology << ": " << ack.ToString();
    }
    std::cout << "\n";
  }
  for (const char* name : {"ann", "bob"}) {
    auto count = (*client)->SelectOne("greeter", "$$greetings", strata::Path().Key(name));
    if (!count.ok()) return Fail(std::string("SelectOne ") + name, count.error());
    std::cout << "$$greetings " << name << " = " << count->ToString() << "\n";
  }
  auto missing = (*client)->Describe("nope");
  // A typed server error: its wire code (the message is for people).
  std::cout << "describe nope: "
            << (missing.ok() ? "found" : strata::protocol::ErrorCodeName(missing.error().code))
            << "\n";
  return 0;
}

"""A TCP echo server for tests/netns/netns_test.py: `echo_server.py NAME HOST PORT` answers
each connection's first message (up to 4 KiB) with `NAME:<message>` and closes it, one
thread per connection, until killed."""

import socketserver
import sys


class Echo(socketserver.BaseRequestHandler):
    def handle(self):
        data = self.request.recv(4096)
        self.request.sendall(sys.argv[1].encode() + b":" + data)


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


if __name__ == "__main__":
    Server((sys.argv[2], int(sys.argv[3])), Echo).serve_forever()

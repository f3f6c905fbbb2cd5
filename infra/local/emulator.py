"""Runs the moto AWS emulator for the tests and the local stack.

Binds the given loopback port (0 = a free one), prints `READY <port>` once it serves, and stops
when its standard input closes, so the process that started it cannot leave it behind, even
when that process is killed.
"""

import argparse
import sys

from moto.server import ThreadedMotoServer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()

    server = ThreadedMotoServer(ip_address=args.host, port=args.port, verbose=False)
    server.start()
    _, port = server.get_host_and_port()
    print(f"READY {port}", flush=True)
    # Block until the parent goes away (EOF on stdin), then shut down cleanly.
    sys.stdin.read()
    server.stop()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""route_test.py - runs examples/line_router against two upstream listeners
on ephemeral ports and checks that every "alpha ..." and "beta ..." line
arrives whole and in order at its upstream however the client fragments it,
that other lines are dropped, and that two clients' lines never mix.

Usage: route_test.py path/to/line_router
"""
import random
import socket
import subprocess
import sys
import time


def listener():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(4)
    return s


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def connect(port, deadline):
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=5)
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.05)


def main():
    exe = sys.argv[1]
    alpha, beta = listener(), listener()
    port = free_port()
    proc = subprocess.Popen([exe, "--port", str(port), "--alpha-port",
                             str(alpha.getsockname()[1]), "--beta-port",
                             str(beta.getsockname()[1])])
    try:
        deadline = time.time() + 20
        alpha.settimeout(20)
        beta.settimeout(20)
        up = {"alpha": alpha.accept()[0], "beta": beta.accept()[0]}
        rng = random.Random(7)
        expect = {"alpha": [], "beta": []}
        clients = [connect(port, deadline) for _ in range(2)]
        for n, c in enumerate(clients):
            data = b""
            for i in range(300):
                word = rng.choice(["alpha", "beta", "gamma"])
                line = ("%s client%d line%d %s\n" % (word, n, i, "x" * rng.randrange(200)))
                data += line.encode()
                if word != "gamma":
                    expect[word].append(line)
            pos = 0
            while pos < len(data):  # fragments of 1 to 50 bytes
                k = rng.randrange(1, 51)
                c.sendall(data[pos:pos + k])
                pos += k
        for c in clients:
            c.close()
        for word, sock in up.items():
            want = sum(len(x) for x in expect[word])
            got = b""
            sock.settimeout(20)
            while len(got) < want:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                got += chunk
            lines = got.decode().splitlines(True)
            if sorted(lines) != sorted(expect[word]):
                print("FAIL: %s received %d lines, expected %d" % (word, len(lines),
                                                                   len(expect[word])))
                return 1
            for n in range(2):  # each client's lines in its order
                mine = [x for x in lines if (" client%d " % n) in x]
                if mine != [x for x in expect[word] if (" client%d " % n) in x]:
                    print("FAIL: %s got client%d's lines out of order" % (word, n))
                    return 1
        print("PASS: %d alpha and %d beta lines routed whole, gamma dropped" %
              (len(expect["alpha"]), len(expect["beta"])))
        return 0
    finally:
        proc.kill()
        proc.wait()


if __name__ == "__main__":
    sys.exit(main())

"""
Load for test/e2e/status.test.ts, run inside a fleet host (nsenter). argv: marker, mode, args.
Prints one line `ready <n>` when the load is in place, then holds it until killed (or its own
deadline, so nothing outlives a crashed test).
- server PORT BACKLOG ACCEPT: listens on 0.0.0.0:PORT; ACCEPT=1 accepts and holds, 0 never accepts.
- hold HOST PORT N: opens N connections to HOST:PORT and holds them.
- flood HOST PORT: keeps opening connections (non-blocking, never completed by us) to HOST:PORT.
- files N: opens N file descriptors (of /dev/null) and holds them.
"""
import os, select, socket, sys, time

marker, mode, args = sys.argv[1], sys.argv[2], sys.argv[3:]
DEADLINE = time.time() + 240


def ready(n):
    print("ready %d" % n, flush=True)


def hold_forever(keep):
    while time.time() < DEADLINE:
        time.sleep(0.5)


if mode == "server":
    port, backlog, accept = int(args[0]), int(args[1]), args[2] == "1"
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(backlog)
    ready(0)
    held = []
    while time.time() < DEADLINE:
        if not accept:
            time.sleep(0.5)
            continue
        r, _, _ = select.select([s], [], [], 0.5)
        if r:
            c, _ = s.accept()
            held.append(c)
elif mode == "hold":
    host, port, n = args[0], int(args[1]), int(args[2])
    held = []
    for _ in range(n):
        c = socket.create_connection((host, port), timeout=10)
        held.append(c)
    ready(len(held))
    hold_forever(held)
elif mode == "flood":
    host, port = args[0], int(args[1])
    pending = []
    ready(0)
    while time.time() < DEADLINE:
        c = socket.socket()
        c.setblocking(False)
        try:
            c.connect((host, port))
        except (BlockingIOError, OSError):
            pass
        pending.append(c)
        # Bounded: the oldest attempts are dropped, so neither fds nor ports run out.
        if len(pending) > 200:
            pending.pop(0).close()
        time.sleep(0.005)
elif mode == "files":
    n = int(args[0])
    held = [os.open("/dev/null", os.O_RDONLY) for _ in range(n)]
    ready(len(held))
    hold_forever(held)
else:
    sys.exit("unknown mode " + mode)

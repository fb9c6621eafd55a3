"""
The capacity probe's helper (`provision probe`): a Python 3 program (standard library only) sent
to each host as the stdin of `python3 -`, so nothing is installed and no file is written. argv =
[marker, "client" | "server", config JSON]; it prints one line `PROBE-RESULT <marker> <json>` and
exits. src/capacity/remote.ts reads this file at run time and builds the script that sends it.

- Both sides fork bounded workers (the config says how many) so no process needs more open files
  than its hard nofile allows. Workers die with their parent (PR_SET_PDEATHSIG) and on their own
  alarm; the caller also wraps the whole program in `timeout`.
- Every socket has SO_LINGER {on, 0}: closing it sends a reset, so nothing is left in TIME_WAIT
  holding the 4-tuples (a second probe right after the first sees the same wall).
- Client: non-blocking connects from each source IP in turn (bind((ip, 0)) with
  IP_BIND_ADDRESS_NO_PORT so each source IP has its own port range), a bounded number in flight,
  a deadline per connection; each worker stops at its share of the bound or at the error that
  stops it. Then the parent counts the ESTABLISHED sockets (ss), holds them, counts again, and
  releases the workers, which close everything.
- Server: one listener per worker on the same port (SO_REUSEPORT), all listening before the first
  fork; a worker accepts and holds until all its connections are gone, and reports the kernel's
  listen-queue counters.
"""
import errno, json, os, resource, select, signal, socket, struct, subprocess, sys, time

IP_BIND_ADDRESS_NO_PORT = 24
IP_LOCAL_PORT_RANGE = 51
# Asking for the whole port space is clamped by the kernel to net.ipv4.ip_local_port_range, so the
# wall stays the host's; but with a per-socket range connect() scans the range in one pass instead of
# trying one parity first, which near exhaustion costs a scan of half the range per connection.
WHOLE_PORT_SPACE = struct.pack("I", (65535 << 16) | 1)
PR_SET_PDEATHSIG = 1
LINGER_RESET = struct.pack("ii", 1, 0)
FAILURES_TO_STOP = 100
NETSTAT_KEYS = ("ListenOverflows", "ListenDrops", "TCPReqQFullDrop", "TCPReqQFullDoCookies", "SyncookiesSent")


def errname(code):
    return errno.errorcode.get(code, "E%d" % code)


def die_with_parent():
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except Exception:
        pass


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass
    return list(resource.getrlimit(resource.RLIMIT_NOFILE))


def family_of(address):
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def count_established(dst, port):
    """ESTABLISHED sockets to dst:port in this host's socket table, or None without ss."""
    host = "[%s]" % dst if ":" in dst else dst
    try:
        out = subprocess.run(["ss", "-Htn", "state", "established", "( dst %s and dport = :%d )" % (host, port)],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=10).stdout
        return out.count(b"\n")
    except Exception:
        return None


def fork_workers(count, work):
    """Forks workers; each gets a pipe to report on and a pipe whose end of file releases it."""
    workers = []
    for index in range(count):
        report_r, report_w = os.pipe()
        release_r, release_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                for _, r, w in workers:
                    os.close(r)
                    os.close(w)
                os.close(report_r)
                os.close(release_w)
                die_with_parent()
                work(index, report_w, release_r)
            except BaseException:
                import traceback
                traceback.print_exc()
                code = 3
            os._exit(code)
        os.close(report_w)
        os.close(release_r)
        workers.append((pid, report_r, release_w))
    return workers


def read_reports(workers, deadline, on_first=None):
    """One JSON line from each worker (None for a worker that died without one), until the deadline."""
    buffers = dict((r, b"") for _, r, _ in workers)
    done = {}
    while len(done) < len(workers) and time.monotonic() < deadline:
        if done and on_first is not None:
            on_first()
            on_first = None
        waiting = [r for r in buffers if r not in done]
        ready, _, _ = select.select(waiting, [], [], max(0.0, min(1.0, deadline - time.monotonic())))
        for r in ready:
            chunk = os.read(r, 65536)
            buffers[r] += chunk
            if not chunk or buffers[r].endswith(b"\n"):
                try:
                    done[r] = json.loads(buffers[r].decode() or "null")
                except ValueError:
                    done[r] = None
    return [done.get(r) for _, r, _ in workers]


def release(workers):
    """Closes the release pipes: each worker sees end of file and finishes."""
    for i, (pid, r, w) in enumerate(workers):
        if w is not None:
            os.close(w)
            workers[i] = (pid, r, None)


def release_and_reap(workers, seconds):
    """Releases every worker, waits for it to exit, kills what is left at the deadline; returns how many were killed."""
    release(workers)
    for _, r, _ in workers:
        os.close(r)
    deadline = time.monotonic() + seconds
    alive = set(pid for pid, _, _ in workers)
    while alive and time.monotonic() < deadline:
        for pid in list(alive):
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                alive.discard(pid)
        if alive:
            time.sleep(0.05)
    for pid in alive:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except OSError:
            pass
    return len(alive)


def send_report(fd, report):
    os.write(fd, (json.dumps(report) + "\n").encode())
    os.close(fd)


def client_worker(cfg, index, report_w, release_r):
    started = time.monotonic()
    signal.alarm(cfg["hardSeconds"])
    nofile = raise_nofile()
    target = cfg["targets"][index]
    sources = cfg["sources"]
    dst = (cfg["dst"], cfg["port"])
    fam = family_of(cfg["dst"])
    slots = max(1, len(sources))
    ep = select.epoll()
    pending = {}
    held = []
    per_source = [0] * slots
    source_stop = [None] * slots
    errors = {}
    state = {"stop": None, "listening": False, "next": 0, "portRange": True,
             "listenerDeadline": started + cfg["waitListenerSeconds"], "rampDeadline": started + cfg["waitListenerSeconds"] + cfg["rampSeconds"]}

    def count(name):
        errors[name] = errors.get(name, 0) + 1

    def exhaust(source, why):
        source_stop[source] = why
        if all(s is not None for s in source_stop):
            state["stop"] = "EADDRNOTAVAIL"

    def fail(code, source):
        if code == errno.ECONNREFUSED and not state["listening"] and time.monotonic() < state["listenerDeadline"]:
            time.sleep(0.05)
            return
        name = errname(code)
        count(name)
        if code == errno.EADDRNOTAVAIL:
            exhaust(source, name)
        elif code in (errno.EMFILE, errno.ENFILE) or errors[name] >= FAILURES_TO_STOP:
            state["stop"] = name

    def next_source():
        for _ in range(slots):
            i = state["next"]
            state["next"] = (i + 1) % slots
            if source_stop[i] is None:
                return i
        return None

    def open_one():
        source = next_source()
        if source is None:
            state["stop"] = "EADDRNOTAVAIL"
            return
        try:
            s = socket.socket(fam, socket.SOCK_STREAM)
        except OSError as e:
            fail(e.errno, source)
            return
        try:
            s.setblocking(False)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
            if state["portRange"]:
                try:
                    s.setsockopt(socket.SOL_IP, IP_LOCAL_PORT_RANGE, WHOLE_PORT_SPACE)
                except OSError:
                    state["portRange"] = False
            if sources:
                # Without it bind() would take a port for the source IP alone, and the source
                # would hold one port range in total instead of one per destination.
                s.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
                s.bind((sources[source], 0))
            code = s.connect_ex(dst)
        except OSError as e:
            s.close()
            if e.errno == errno.EADDRNOTAVAIL:
                count("bind EADDRNOTAVAIL")
                exhaust(source, "bind EADDRNOTAVAIL")
            else:
                fail(e.errno, source)
            return
        if code in (0, errno.EINPROGRESS):
            pending[s.fileno()] = (s, source, time.monotonic() + cfg["connectTimeoutSeconds"])
            ep.register(s.fileno(), select.EPOLLOUT)
        else:
            s.close()
            fail(code, source)

    def settle(fd):
        s, source, _ = pending.pop(fd)
        ep.unregister(fd)
        code = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code != 0:
            s.close()
            fail(code, source)
            return
        if not state["listening"]:
            state["listening"] = True
            state["rampDeadline"] = time.monotonic() + cfg["rampSeconds"]
        held.append(s)
        per_source[source] += 1

    def expire(now):
        for fd in [fd for fd, (_, _, deadline) in pending.items() if deadline < now]:
            s, source, _ = pending.pop(fd)
            ep.unregister(fd)
            s.close()
            fail(errno.ETIMEDOUT, source)

    last_sweep = started
    while True:
        now = time.monotonic()
        if state["stop"] is None:
            if len(held) >= target:
                state["stop"] = "bound"
            elif now > state["rampDeadline"]:
                state["stop"] = "time"
        if state["stop"] is not None and not pending:
            break
        in_flight = cfg["inFlight"] if state["listening"] else 1
        while state["stop"] is None and len(pending) < in_flight and len(held) + len(pending) < target:
            open_one()
        for fd, _ in ep.poll(0.05):
            settle(fd)
        if now - last_sweep > 0.2:
            last_sweep = now
            expire(now)
    first = held[0].getsockname()[0] if held and not sources else None
    send_report(report_w, {
        "held": len(held), "target": target, "stop": state["stop"], "errors": errors, "nofile": nofile,
        "perSource": [{"source": sources[i] if sources else first, "held": per_source[i], "stop": source_stop[i]} for i in range(slots)],
        "rampSeconds": round(time.monotonic() - started, 3),
    })
    os.read(release_r, 1)
    for s in held:
        s.close()


def client(cfg):
    started = time.monotonic()
    workers = fork_workers(cfg["processes"], lambda i, w, r: client_worker(cfg, i, w, r))
    reports = read_reports(workers, started + cfg["waitListenerSeconds"] + cfg["rampSeconds"] + cfg["connectTimeoutSeconds"] + 5)
    ramp = time.monotonic() - started
    at_start = count_established(cfg["dst"], cfg["port"])
    time.sleep(cfg["holdSeconds"])
    at_end = count_established(cfg["dst"], cfg["port"])
    killed = release_and_reap(workers, 10)
    return {"workers": reports, "rampSeconds": round(ramp, 3), "establishedAtHoldStart": at_start,
            "establishedAtHoldEnd": at_end, "holdSeconds": cfg["holdSeconds"], "killedWorkers": killed}


def netstat():
    counters = {}
    try:
        with open("/proc/net/netstat") as f:
            lines = f.read().splitlines()
        for names, values in zip(lines[0::2], lines[1::2]):
            if names.startswith("TcpExt:"):
                counters.update(zip(names.split()[1:], (int(v) for v in values.split()[1:])))
    except (OSError, ValueError):
        pass
    return dict((k, counters[k]) for k in NETSTAT_KEYS if k in counters)


def server_worker(cfg, listeners, index, report_w, release_r):
    started = time.monotonic()
    signal.alarm(cfg["hardSeconds"])
    nofile = raise_nofile()
    listener = listeners[index]
    for other in listeners:
        if other is not listener:
            other.close()
    ep = select.epoll()
    lfd = listener.fileno()
    ep.register(lfd, select.EPOLLIN)
    ep.register(release_r, select.EPOLLIN)
    conns = {}
    state = {"accepted": 0, "peak": 0, "last": started, "released": False}
    errors = {}
    while True:
        now = time.monotonic()
        # Done when the client has closed everything (and is not still connecting), when a sibling
        # is done (the client is), or when the client never came.
        if state["accepted"] > 0 and not conns and now - state["last"] > 1.0:
            break
        if state["released"] and not conns:
            break
        if state["accepted"] == 0 and now - started > cfg["idleSeconds"]:
            break
        for fd, _ in ep.poll(0.2):
            if fd == release_r:
                ep.unregister(release_r)
                state["released"] = True
                continue
            if fd != lfd:
                ep.unregister(fd)
                conns.pop(fd).close()
                continue
            for _ in range(512):
                try:
                    c, _ = listener.accept()
                except BlockingIOError:
                    break
                except OSError as e:
                    name = errname(e.errno)
                    errors[name] = errors.get(name, 0) + 1
                    if e.errno in (errno.EMFILE, errno.ENFILE):
                        # Full: what queues up behind shows as timeouts on the client.
                        ep.unregister(lfd)
                    break
                ep.register(c.fileno(), select.EPOLLIN | select.EPOLLRDHUP)
                conns[c.fileno()] = c
                state["accepted"] += 1
                state["last"] = time.monotonic()
            state["peak"] = max(state["peak"], len(conns))
    send_report(report_w, {"accepted": state["accepted"], "peak": state["peak"], "errors": errors, "nofile": nofile})
    for c in conns.values():
        c.close()
    listener.close()


def server(cfg):
    fam = family_of(cfg["dst"])
    listeners = []
    try:
        for _ in range(cfg["processes"]):
            s = socket.socket(fam, socket.SOCK_STREAM)
            listeners.append(s)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
            s.setblocking(False)
            s.bind(("::" if fam == socket.AF_INET6 else "0.0.0.0", cfg["port"]))
    except OSError as e:
        for s in listeners:
            s.close()
        return {"error": "cannot listen on port %d: %s (%s)" % (cfg["port"], errname(e.errno), os.strerror(e.errno))}
    # Every listener joins the SO_REUSEPORT group before the first connection can arrive.
    for s in listeners:
        s.listen(cfg["backlog"])
    before = netstat()
    started = time.monotonic()
    workers = fork_workers(cfg["processes"], lambda i, w, r: server_worker(cfg, listeners, i, w, r))
    for s in listeners:
        s.close()
    # The first worker done means the client has closed its connections: the others need not wait.
    reports = read_reports(workers, started + cfg["hardSeconds"], on_first=lambda: release(workers))
    killed = release_and_reap(workers, 10)
    after = netstat()
    return {"workers": reports, "netstat": dict((k, after[k] - before.get(k, 0)) for k in after), "killedWorkers": killed}


def main():
    marker, mode, cfg = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    signal.alarm(cfg["hardSeconds"] + 5)
    result = client(cfg) if mode == "client" else server(cfg)
    sys.stdout.write("PROBE-RESULT %s %s\n" % (marker, json.dumps(result)))
    sys.stdout.flush()


main()

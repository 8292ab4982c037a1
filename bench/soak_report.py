# Samples and the final report of bench/soak.sh, which runs it as
#   soak_report.py sample WORK_DIR BIN_DIR MINUTE NODE=PID...   (each minute)
#   soak_report.py report WORK_DIR BIN_DIR                      (at the end)
# reading the soak's work directory (vms.tsv, daemons.tsv and the logs).
import collections, json, os, re, subprocess, sys, time

TMP, BIN = sys.argv[2], sys.argv[3]
VMS = [l.rstrip("\n").split("\t") for l in open(f"{TMP}/vms.tsv")]  # vm ns host hostns mac client ip
DAEMONS = [l.rstrip("\n").split("\t") for l in open(f"{TMP}/daemons.tsv")]  # name ns sock log
FIRST = {v[0]: v[6] for v in VMS}
NSOF = {v[0]: v[1] for v in VMS}


def run(args, timeout=8):
    try:
        r = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
        return r.returncode, r.stdout
    except subprocess.TimeoutExpired:
        return -1, ""


def ctl(ns, sock, *args):
    rc, out = run(["ip", "netns", "exec", ns, f"{BIN}/wownetctl", "--socket", sock, *args, "--json"])
    if rc != 0:
        return None
    try:
        return json.loads(out)
    except ValueError:
        return None


def lines_in(path):
    try:
        with open(path, "rb") as f:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    except OSError:
        return 0


def vm_ip(vm):
    rc, out = run(["ip", "-n", NSOF[vm], "-4", "-o", "addr", "show", "dev", "eth0"])
    for line in out.splitlines():
        a = line.split()[3].split("/")[0]
        if not a.startswith("169.254."):
            return a
    return ""


def read_events(name):
    try:
        return [l.split() for l in open(f"{TMP}/{name}.log") if re.match(r"^\d+\.\d+(\s|$)", l)]
    except OSError:
        return []


def sample(minute, pids):
    s = {"t": time.time(), "minute": minute, "daemons": {}, "vms": {}}
    for name, ns, sock, log in DAEMONS:
        pid = pids[name]
        d = {"pid": pid, "alive": False, "rss_kib": None, "fds": None, "log_lines": lines_in(log)}
        try:
            state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
            m = re.search(r"^VmRSS:\s+(\d+) kB", open(f"/proc/{pid}/status").read(), re.M)
            d["rss_kib"] = int(m.group(1)) if m else None
            d["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
            d["alive"] = state != "Z"
        except (OSError, IndexError):
            pass
        st = ctl(ns, sock, "status")
        le = ctl(ns, sock, "leases", "--all")
        d["ctl_ok"] = st is not None and le is not None
        if st:
            d["active"] = int(st.get("active_leases", 0))
            d["attachments"] = int(st.get("attachments", 0))
            d["dhcp"] = {k: int(v) for k, v in st.get("dhcp", {}).items()}
            d["overlay"] = {k: int(v) for k, v in st.get("overlay", {}).items()}
            d["drops"] = {k: int(v) for k, v in st.get("drops", {}).items()}
        if le:
            ls = le.get("leases", [])
            d["leases"] = len(ls)
            d["lease_states"] = dict(collections.Counter(l.get("state", "") for l in ls))
        if name != "rv":
            at = ctl(ns, sock, "list")
            if at:
                d["bound"] = {a["vm"]: a.get("address", "") for a in at.get("attachments", [])}
            pe = ctl(ns, sock, "peers")
            if pe:
                d["paths"] = {p.get("node_name", ""): p.get("path", "") for p in pe.get("peers", []) if p.get("established")}
        s["daemons"][name] = d
    for v in VMS:
        s["vms"][v[0]] = vm_ip(v[0])
    # Ping sweep a<i> -> b<i>, skipping pairs with a VM detached by the churn.
    procs = []
    for v in VMS:
        a = v[0]
        if not a.startswith("a"):
            continue
        b = "b" + a[1:]
        if any(os.path.exists(f"{TMP}/detached-{x}") for x in (a, b)):
            continue
        procs.append(subprocess.Popen(["ip", "netns", "exec", NSOF[a], "ping", "-c", "2", "-i", "0.3", "-W", "2", FIRST[b]],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    s["sweep"] = [sum(p.wait() == 0 for p in procs), len(procs)]
    with open(f"{TMP}/samples.jsonl", "a") as f:
        f.write(json.dumps(s) + "\n")
    held = sum(s["vms"][vm] == FIRST[vm] for vm in FIRST)
    lost = len({e[1] for e in read_events("watch")})
    churn = sum(1 for e in read_events("churn") if e[2] == "attach" and e[3] == "0")
    dd = s["daemons"]
    mib = lambda n: f"{dd[n]['rss_kib'] / 1024:.1f}" if dd[n]["rss_kib"] else "dead"
    print(f"[{time.strftime('%H:%M:%S')}] minute {minute}: RSS MiB rv {mib('rv')} ha {mib('ha')} hb {mib('hb')}, "
          f"fds {'/'.join(str(dd[n]['fds']) for n in ('rv', 'ha', 'hb'))}, "
          f"active leases {dd['ha'].get('active', '?')}+{dd['hb'].get('active', '?')}, "
          f"VMs on their first address {held}/{len(FIRST)}, leases lost {lost}, re-attaches {churn}, "
          f"sweep {s['sweep'][0]}/{s['sweep'][1]}", file=sys.stderr, flush=True)


def report():
    samples = [json.loads(l) for l in open(f"{TMP}/samples.jsonl")]
    names = [d[0] for d in DAEMONS]
    churn = read_events("churn")
    watch = read_events("watch")
    rv_restarts = read_events("rv-restarts")
    flushes = read_events("flushes")
    died = [l.strip() for l in open(f"{TMP}/died.log")] if os.path.exists(f"{TMP}/died.log") else []
    # iperf3 rounds: per-second intervals for the per-minute column.
    rounds, iv = [], []
    for r in read_events("iperf"):
        t0, t1, rc, path = float(r[0]), float(r[1]), int(r[2]), r[3]
        try:
            j = json.load(open(path))
        except (OSError, ValueError):
            j = {}
        end = j.get("end", {})
        recv = end.get("sum_received", {}).get("bytes", 0)
        secs = end.get("sum_received", {}).get("seconds", 0)
        retr = end.get("sum_sent", {}).get("retransmits", 0)
        rounds.append({"t0": t0, "rc": rc, "bytes": recv, "secs": secs, "retr": retr, "error": j.get("error", ""),
                       "reverse": j.get("start", {}).get("test_start", {}).get("reverse", 0)})
        ts = j.get("start", {}).get("timestamp", {}).get("timesecs", t0)
        for i in j.get("intervals", []):
            iv.append((ts + i["sum"]["end"], i["sum"]["bytes"]))
    # Continuous pings: reply timestamps.
    replies = {}
    for p in ("ping-a02", "ping-b02"):
        ts = []
        try:
            for l in open(f"{TMP}/{p}.log"):
                m = re.match(r"^\[(\d+\.\d+)\] \d+ bytes from", l)
                if m:
                    ts.append(float(m.group(1)))
        except OSError:
            pass
        replies[p] = ts

    def between(ts, a, b):
        return sum(1 for t in ts if a < t <= b)

    def mib(k):
        return f"{k / 1024:.1f}" if k else "-"

    print()
    print("per minute: RSS MiB, open fds, leases in the table and active ones, DHCP acks in the minute (hosts), log")
    print("lines in the minute, of each hostd (rv: the rendezvous, its registry); VMs on their first address; re-attaches")
    print("ok/failed; ping sweep a<i> -> b<i> answered/tried; replies of the two continuous pings a02 <-> b02 (240")
    print("expected); iperf3 Mbit/s a01 <-> b01; events: R = rendezvous restarted, F = both NATs flushed")
    hdr = f"{'min':>3} | {'rv rss':>6} {'fd':>3} {'lease':>5} {'act':>3} {'log':>4} |"
    for h in ("ha", "hb"):
        hdr += f" {h + ' rss':>6} {'fd':>3} {'lease':>5} {'act':>3} {'acks':>4} {'log':>4} |"
    hdr += f" {'held':>5} {'churn':>5} {'sweep':>5} {'ping':>4} {'iperf':>5} ev"
    print(hdr)
    print("-" * len(hdr))
    for k, s in enumerate(samples):
        prev = samples[k - 1] if k else None
        a, b = (prev["t"] if prev else s["t"] - 60), s["t"]
        d = s["daemons"]

        def dl(n):
            return d[n]["log_lines"] - prev["daemons"][n]["log_lines"] if prev else d[n]["log_lines"]

        row = (f"{s['minute']:>3} | {mib(d['rv']['rss_kib']):>6} {d['rv']['fds'] or '-':>3} {d['rv'].get('leases', '?'):>5}"
               f" {d['rv'].get('active', '?'):>3} {dl('rv'):>4} |")
        for h in ("ha", "hb"):
            acks = d[h].get("dhcp", {}).get("acks", 0) - (prev["daemons"][h].get("dhcp", {}).get("acks", 0) if prev else 0)
            row += (f" {mib(d[h]['rss_kib']):>6} {d[h]['fds'] or '-':>3} {d[h].get('leases', '?'):>5}"
                    f" {d[h].get('active', '?'):>3} {acks:>4} {dl(h):>4} |")
        held = sum(s["vms"][vm] == FIRST[vm] for vm in FIRST)
        ok = sum(1 for e in churn if e[2] == "attach" and e[3] == "0" and a < float(e[0]) <= b)
        bad = sum(1 for e in churn if e[3] != "0" and a < float(e[0]) <= b)
        png = sum(between(replies[p], a, b) for p in replies)
        mbit = sum(by for t, by in iv if a < t <= b) * 8 / 60 / 1e6
        ev = "R" * sum(1 for e in rv_restarts if a < float(e[0]) <= b) + "F" * sum(1 for e in flushes if a < float(e[0]) <= b)
        row += (f" {held:>2}/{len(FIRST):<2} {ok:>2}/{bad:<2} {s['sweep'][0]:>2}/{s['sweep'][1]:<2}"
                f" {png if prev else '-':>4} {mbit if prev else 0:>5.0f} {ev}")
        print(row)

    print()
    print("summary")
    failures = []
    base = samples[1] if len(samples) > 1 else samples[0]
    print(f"{'hostd':<6} {'RSS MiB start':>13} {'@1min':>6} {'end':>6} {'max':>6} {'KiB/min':>8} | "
          f"{'fds start':>9} {'@1min':>5} {'end':>4} {'max':>4} | {'log lines/min max':>17} {'mean':>6}")
    g_mib, g_pct, g_fd = float(os.environ["SOAK_RSS_GROWTH_MIB"]), float(os.environ["SOAK_RSS_GROWTH_PCT"]), int(os.environ["SOAK_FD_GROWTH"])
    for n in names:
        rss = [s["daemons"][n]["rss_kib"] for s in samples]
        fds = [s["daemons"][n]["fds"] for s in samples]
        logs = [s["daemons"][n]["log_lines"] for s in samples]
        per_min = [logs[i] - logs[i - 1] for i in range(1, len(logs))] or [logs[0]]
        # Growth within the daemon's last run (the rendezvous restarts).
        pid_end = samples[-1]["daemons"][n]["pid"]
        run = [s for s in samples[1:] if s["daemons"][n]["pid"] == pid_end] or samples[-1:]
        b0 = run[0]["daemons"][n]
        e0 = samples[-1]["daemons"][n]
        xs = [(s["t"] - run[0]["t"]) / 60 for s in run]
        ys = [s["daemons"][n]["rss_kib"] or 0 for s in run]
        slope = 0.0
        if len(run) >= 3:
            mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
            den = sum((x - mx) ** 2 for x in xs)
            slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else 0.0
        print(f"{n:<6} {mib(rss[0]):>13} {mib(base['daemons'][n]['rss_kib']):>6} {mib(rss[-1]):>6} "
              f"{mib(max(r or 0 for r in rss)):>6} {slope:>8.0f} | {fds[0] or '-':>9} {base['daemons'][n]['fds'] or '-':>5} "
              f"{fds[-1] or '-':>4} {max(f or 0 for f in fds):>4} | {max(per_min):>17} {sum(per_min) / len(per_min):>6.0f}")
        if not e0["alive"]:
            failures.append(f"hostd {n} is not running at the end")
        elif b0["rss_kib"] and e0["rss_kib"]:
            grow = (e0["rss_kib"] - b0["rss_kib"]) / 1024
            if grow > max(g_mib, b0["rss_kib"] / 1024 * g_pct / 100):
                failures.append(f"hostd {n}: RSS grew {grow:.1f} MiB since minute {run[0]['minute']} "
                                f"(threshold max({g_mib:g} MiB, {g_pct:g} %))")
            if e0["fds"] - b0["fds"] > g_fd:
                failures.append(f"hostd {n}: open fds grew from {b0['fds']} to {e0['fds']} (threshold +{g_fd})")
        if not samples[-1]["daemons"][n].get("ctl_ok"):
            failures.append(f"hostd {n} did not answer wownetctl at the end")
    print(f"RSS growth thresholds: end vs. the minute-1 sample (or the first sample of the daemon's last run):"
          f" at most max({g_mib:g} MiB, {g_pct:g} %); fds at most +{g_fd}. KiB/min: least-squares RSS slope.")
    for d in died:
        failures.append(f"hostd died: {d}")
    bad_ctl = sum(1 for s in samples for n in names if not s["daemons"][n].get("ctl_ok"))
    if bad_ctl:
        print(f"wownetctl calls that failed or timed out in samples: {bad_ctl}")

    # DHCP clients that had to start over (DISCOVER after their first lease:
    # their lease ran out or was refused), whether or not a 2-s check saw it.
    again = {}
    for v in VMS:
        seen, n = False, 0
        try:
            for l in open(f"{TMP}/client-{v[0]}.log", errors="replace"):
                if "bound to" in l or "obtained from" in l:
                    seen = True
                elif seen and ("DHCPDISCOVER" in l or "broadcasting discover" in l):
                    n += 1
        except OSError:
            pass
        if n:
            again[v[0]] = n
    # A lease is lost when a VM ends up on another address, when a VM that
    # stayed attached is found without its address or had to start over,
    # or when a VM starts over more often than it was detached. A VM
    # detached while its renewal was due may let its own lease run out (the
    # client is cut off from every server; a 10 s lease leaves dhclient one
    # retry) and starts over with DISCOVER: that is the client's doing, and
    # it must get its first address back, which the checks see.
    detaches = collections.defaultdict(list)
    for e in churn:
        if e[2] == "detach":
            detaches[e[1]].append(float(e[0]))
    window = int(os.environ.get("SOAK_LEASE_TIME", "10")) + 10

    def after_detach(vm, t):
        return any(0 <= t - d <= window for d in detaches[vm])

    moved = [e for e in watch if e[3] != "none"]
    unexplained = [e for e in watch if e[3] == "none" and not after_detach(e[1], float(e[0]))]
    restarts = [e for e in watch if e[3] == "none" and after_detach(e[1], float(e[0]))]
    too_many = {vm: n for vm, n in again.items() if n > len(detaches[vm])}
    lost_vms = sorted({e[1] for e in moved + unexplained} | set(too_many))
    print(f"leases lost: {len(lost_vms)} VMs ({len(moved)} checks found a VM on another address, "
          f"{len(unexplained)} found a VM that stayed attached without one"
          + (f"; more DISCOVERs than detaches: {', '.join(f'{k} {v}x' for k, v in sorted(too_many.items()))}" if too_many else "")
          + ")")
    print(f"DHCP clients that started over after a detach (own lease ran out while cut off, same address back): "
          f"{len({e[1] for e in restarts})} VMs in {len(restarts)} checks; DISCOVER after the first lease: "
          + (", ".join(f"{k} {v}x ({len(detaches[k])} detaches)" for k, v in sorted(again.items())) if again else "none"))
    for vm in lost_vms:
        ev = [e for e in moved + unexplained if e[1] == vm]
        if not ev:
            continue
        print(f"  {vm}: first {FIRST[vm]}, seen {', '.join(sorted({e[3] for e in ev}))} from "
              f"{time.strftime('%H:%M:%S', time.localtime(float(ev[0][0])))} to "
              f"{time.strftime('%H:%M:%S', time.localtime(float(ev[-1][0])))} ({len(ev)} checks)")
    end_off = [vm for vm in FIRST if samples[-1]["vms"][vm] != FIRST[vm]]
    if lost_vms:
        failures.append(f"leases lost: {len(lost_vms)} VMs ({', '.join(lost_vms)})")
    if end_off:
        failures.append(f"VMs not on their first address at the end: {', '.join(end_off)}")
    for h in ("ha", "hb"):
        dh0 = samples[0]["daemons"][h].get("dhcp", {})
        dh1 = samples[-1]["daemons"][h].get("dhcp", {})
        delta = {k: dh1.get(k, 0) - dh0.get(k, 0) for k in ("discovers", "requests", "acks", "naks", "releases")}
        bound = samples[-1]["daemons"][h].get("bound", {})
        mism = [vm for vm, ip in bound.items() if ip and FIRST.get(vm) != ip]
        print(f"DHCP on {h} during the run: " + ", ".join(f"{k} {v}" for k, v in delta.items()) +
              f"; lease table {samples[0]['daemons'][h].get('leases')} -> {samples[-1]['daemons'][h].get('leases')}"
              f" {samples[-1]['daemons'][h].get('lease_states', {})}")
        if mism:
            print(f"  attachments on {h} bound to another address than the VM's first: {', '.join(mism)}")
    ok = sum(1 for e in churn if e[2] == "attach" and e[3] == "0")
    bad = [e for e in churn if e[3] != "0"]
    cycles = sum(1 for e in churn if e[2] == "detach")
    print(f"churn: {cycles} detach/attach cycles, {ok} re-attaches ok, {len(bad)} failed wownetctl calls")
    for e in bad[:5]:
        print("  " + " ".join(e[1:]))
    print(f"rendezvous restarts: {len(rv_restarts)}; NAT conntrack flushes: {len(flushes)} (each on both NATs)")
    sw = [s["sweep"] for s in samples]
    print(f"ping sweep a<i> -> b<i> (2 pings each, attached VMs): {sum(x[0] for x in sw)}/{sum(x[1] for x in sw)} pairs answered")
    t_end = samples[-1]["t"]
    outages = []
    for p, ts in replies.items():
        if not ts:
            print(f"{p}: no replies")
            continue
        span = t_end - ts[0]
        gaps = [b - a for a, b in zip(ts, ts[1:])]
        worst = max(gaps) if gaps else 0
        at = ts[gaps.index(worst)] if gaps else ts[0]
        print(f"{p} (every 0.5 s): {len(ts)} replies in {span:.0f} s ({100 * len(ts) / (span * 2):.1f} %), longest gap "
              f"{worst:.1f} s at {time.strftime('%H:%M:%S', time.localtime(at))}")
        outages.extend((a, b - a) for a, b in zip(ts, ts[1:]) if b - a > 5)
    # Outages (> 5 s without a reply) and the last event before each.
    events = [(float(e[0]), "rendezvous restart") for e in rv_restarts] + [(float(e[0]), "NAT flush") for e in flushes]
    merged = []
    for a, g in sorted(outages):
        if merged and a <= merged[-1][0] + merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], a + g - merged[-1][0]))
        else:
            merged.append((a, g))
    if merged:
        print(f"cross-host ping outages over 5 s (either direction): {len(merged)}, longest {max(g for _, g in merged):.0f} s")
    for a, g in merged:
        before = [(t, what) for t, what in events if t <= a + 2]
        cause = (f" (last event before it: {before[-1][1]} at {time.strftime('%H:%M:%S', time.localtime(before[-1][0]))})"
                 if before else "")
        print(f"  {time.strftime('%H:%M:%S', time.localtime(a))} for {g:.0f} s{cause}")
    okr = [r for r in rounds if r["rc"] == 0 and r["bytes"]]
    tot = sum(r["bytes"] for r in rounds)
    secs = sum(r["secs"] for r in okr)
    print(f"iperf3 a01 <-> b01 (-b {os.environ.get('SOAK_IPERF_RATE_SHOWN', '')}): {len(rounds)} rounds, {len(okr)} ok, "
          f"{tot / 1e9:.2f} GB received, {tot * 8 / secs / 1e6 if secs else 0:.0f} Mbit/s mean over ok rounds, "
          f"{sum(r['retr'] for r in rounds)} retransmits")
    failed = collections.defaultdict(list)
    for r in rounds:
        if r["rc"] != 0 or not r["bytes"]:
            failed[r["error"] or f"no result (exit status {r['rc']})"].append(time.strftime('%H:%M:%S', time.localtime(r['t0'])))
    for err, at in failed.items():
        print(f"  {len(at)} failed rounds: {err} (from {at[0]} to {at[-1]})")

    # What each hostd logged, by level, and its most frequent warnings.
    for name, ns, sock, log in DAEMONS:
        levels, msgs, downs = collections.Counter(), collections.Counter(), collections.Counter()
        try:
            for l in open(log, errors="replace"):
                m = re.match(r"^\S+ (trace|debug|info|warning|error|critical) (.*)", l)
                if not m:
                    levels["other"] += 1
                    continue
                levels[m.group(1)] += 1
                if " down: " in m.group(2):
                    downs[re.sub(r" [0-9a-f]{32} ", " ", re.sub(r"\d+ ms", "# ms", m.group(2)))] += 1
                if m.group(1) in ("warning", "error", "critical"):
                    msgs[re.sub(r"[0-9a-f]{8,}|\d+", "#", m.group(2))[:150]] += 1
        except OSError:
            pass
        print(f"hostd {name} log: " + ", ".join(f"{k} {v}" for k, v in levels.most_common()))
        for m, c in msgs.most_common(4) + downs.most_common(4):
            print(f"  {c:>6} x {m}")

    print()
    if failures:
        for f in failures:
            print("FAIL - " + f)
        return 1
    print("PASS - no lease lost, no hostd died, RSS and fds within the thresholds")
    return 0


if sys.argv[1] == "sample":
    sample(int(sys.argv[4]), dict(a.split("=") for a in sys.argv[5:]))
else:
    sys.exit(report())

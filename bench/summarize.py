#!/usr/bin/env python3
"""Turns one bench/run output (JSON lines) into bench/RESULTS.md: per workload, every
target's median over the rounds with min-max, latency, server CPU and peak memory, and
Portico's ratio against each peer; then the issue's targets, checked."""

import json
import os
import statistics
import sys
from collections import defaultdict

PORTICO = ["portico-sqlite", "portico-pg"]
ORDER = ["portico-sqlite", "portico-pg", "s3s-fs", "apache", "rclone", "dufs", "nginx"]
NAMES = {
    "portico-sqlite": "Portico (SQLite)",
    "portico-pg": "Portico (PostgreSQL)",
    "s3s-fs": "s3s-fs 0.14.1",
    "apache": "Apache httpd 2.4 mod_dav",
    "rclone": "rclone 1.60 serve webdav",
    "dufs": "dufs 0.47",
    "nginx": "nginx 1.22 (static files)",
}


def human(size):
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} B"


def workload_name(row):
    w, size, count, conc = row["workload"], row["size"], row["count"], row["concurrency"]
    proto = "S3" if row["protocol"] == "s3" else "WebDAV"
    if w == "list":
        what = "ListObjectsV2" if row["protocol"] == "s3" else "PROPFIND Depth 1"
        return f"{what} of {row['entries'] // max(row['ops'], 1):,} entries"
    if w == "tree":
        return f"{proto} deep tree: MKCOL + PUT 4 KiB, {count} trees × 10 levels"
    if w == "mixed":
        return f"{proto} mixed 70% GET / 20% PUT / 10% stat of 4 KiB, {count:,} ops, c{conc}"
    if w == "multipart":
        return f"{proto} multipart PUT {human(size)} in 8 MiB parts, {conc} in flight"
    if w in ("put", "get"):
        verb = w.upper()
        proto_label = "GET (static file)" if row["target"] == "nginx" else f"{proto} {verb}"
        if row["target"] == "nginx":
            proto_label = f"{proto} {verb}"
        return f"{proto_label} {human(size)} × {count:,}, c{conc}"
    return f"{proto} {w}"


def metric(row):
    """(value, unit, higher is better)"""
    w = row["workload"]
    if w == "list":
        return row["us_per_entry"], "µs per entry", False
    if w in ("put", "get", "multipart") and row["size"] >= (1 << 20):
        return row["mib_per_s"], "MiB/s", True
    return row["ops_per_s"], "ops/s", True


def fmt(v):
    if v >= 100:
        return f"{v:,.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def main(path):
    rows = [json.loads(line) for line in open(path) if line.strip()]
    machine = next((r for r in rows if r.get("workload") == "machine"), {})
    runs = [r for r in rows if r.get("workload") not in ("machine", "prepare", "materialize")]
    # Population puts of the listing phase are not workloads of their own.
    runs = [r for r in runs if not (r.get("phase") == "listing" and r["workload"] == "put")]
    groups = defaultdict(lambda: defaultdict(list))
    # GETs of nginx belong with the WebDAV/S3 GETs of the same size: one table per size.
    for r in runs:
        key = workload_name(r)
        if r["target"] == "nginx":
            key = key.replace("WebDAV GET", "GET")
        groups[key][r["target"]].append(r)

    out = []
    out.append("# Benchmark results\n")
    out.append(
        "Produced by `bench/run` (one run; raw lines in `bench/results/`). Every target runs on "
        "loopback on this machine, interleaved target by target within each round, fresh "
        "servers every round for transfers; medians over the rounds with [min–max]. The load "
        "client (`portico-bench`, one thread) checks every byte it reads back (BLAKE3) and "
        "counts errors. Server CPU is user+system seconds of the server process and its "
        "children during the workload; memory is their peak resident set (VmHWM after a "
        "reset). Portico runs with its defaults (`portico serve`): every write hashed (MD5, "
        "BLAKE3, CRC64NVME), fsynced and committed to the catalog before it is acknowledged; "
        "PostgreSQL runs with fsync on. Peers run with their defaults; WebDAV peers without "
        "authentication, s3s-fs with a key.\n"
    )
    out.append(
        f"This run: `bench/run` (3 rounds) at commit `{machine.get('commit', 'see git log')}`; raw lines "
        f"`bench/results/{os.path.basename(path)}`, one per `portico-bench` invocation (its "
        "arguments are the workload's name below: `--workload put --size 4096 --count 2000 "
        "--concurrency 16` is \"PUT 4 KiB × 2,000, c16\"). What ran: only the servers named in "
        "each table, the load client and, for Portico on PostgreSQL, PostgreSQL itself.\n"
    )
    if machine:
        out.append("## Machine\n")
        out.append(
            f"{machine.get('cores')} cores, kernel {machine.get('kernel')}. Sequential write with "
            f"fsync (dd, 2 GiB, on the data directory's filesystem): "
            f"**{machine.get('disk_write_fsync_mb_s')} MB/s**; read from disk after dropping the "
            f"page cache: **{machine.get('disk_read_cold_mb_s')} MB/s**; read from the page cache: "
            f"{machine.get('disk_read_cached_mb_s')} MB/s; loopback TCP (iperf3): "
            f"**{machine.get('loopback_gbit_s')} Gbit/s**.\n"
        )
    ratios = {}
    out.append("## Workloads\n")
    for name in sorted(groups):
        targets = groups[name]
        any_row = next(iter(targets.values()))[0]
        _, unit, higher = metric(any_row)
        medians = {t: statistics.median(metric(r)[0] for r in rs) for t, rs in targets.items()}
        out.append(f"### {name}\n")
        out.append(
            f"| target | {unit} (median) | [min–max] | p50 ms | p99 ms | server CPU s | peak RSS MB | errors | Portico (SQLite) ÷ target |"
        )
        out.append("|---|---|---|---|---|---|---|---|---|")
        for t in sorted(targets, key=lambda t: ORDER.index(t) if t in ORDER else 99):
            rs = targets[t]
            values = [metric(r)[0] for r in rs]
            med = medians[t]
            base = medians.get("portico-sqlite")
            ratio = ""
            if base and t != "portico-sqlite" and med:
                ratio = base / med if higher else med / base
                ratios[(name, t)] = ratio
                ratio = f"{ratio:.2f}×"
            cpu = [r["server_cpu_s"] for r in rs if r.get("server_cpu_s") is not None]
            rss = [r["server_peak_rss_mb"] for r in rs if r.get("server_peak_rss_mb") is not None]
            errors = sum(r["errors"] for r in rs)
            out.append(
                f"| {NAMES.get(t, t)} | **{fmt(med)}** | {fmt(min(values))}–{fmt(max(values))} | "
                f"{statistics.median(r['p50_ms'] for r in rs):.1f} | {statistics.median(r['p99_ms'] for r in rs):.1f} | "
                f"{statistics.median(cpu):.2f} | {max(rss):.0f} | {errors} | {ratio} |"
                if cpu and rss
                else f"| {NAMES.get(t, t)} | **{fmt(med)}** | {fmt(min(values))}–{fmt(max(values))} | "
                f"{statistics.median(r['p50_ms'] for r in rs):.1f} | {statistics.median(r['p99_ms'] for r in rs):.1f} | – | – | {errors} | {ratio} |"
            )
        firsts = [r.get("first_error") for rs in targets.values() for r in rs if r.get("first_error")]
        if firsts:
            out.append(f"\nFirst error seen: `{firsts[0][:200]}`")
        out.append("")
    out.extend(targets_section(runs))
    # Why a target is missed, profiles, before/after: written by hand beside the script.
    findings = os.path.join(os.path.dirname(os.path.abspath(__file__)), "FINDINGS.md")
    if os.path.exists(findings):
        out.append("")
        out.append(open(findings).read().rstrip())
    print("\n".join(out))
    return ratios


def targets_section(runs):
    """The issue's targets, each computed from this run's medians."""
    med = defaultdict(list)
    rss = defaultdict(list)
    for r in runs:
        k = (r["workload"], r["protocol"], r["size"], r["count"], r["target"])
        med[k].append(metric(r)[0])
        if r.get("server_peak_rss_mb") is not None:
            rss[k].append(r["server_peak_rss_mb"])
    m = {k: statistics.median(v) for k, v in med.items()}
    sizes = sorted({(r["size"], r["count"]) for r in runs if r["workload"] == "get" and r["size"] >= (1 << 20)})
    small = next((r["count"] for r in runs if r["workload"] == "put" and r["size"] == 4096 and r.get("phase") != "listing"), None)
    lines = ["## Targets\n", "| target | measured | met |", "|---|---|---|"]

    def check(label, value, threshold, higher=True):
        if value is None:
            lines.append(f"| {label} | not measured | – |")
            return
        ok = value >= threshold if higher else value <= threshold
        lines.append(f"| {label} | {value:.2f} | {'yes' if ok else '**no**'} |")

    def ratio(a, b, higher=True):
        if a not in m or b not in m or not m[a] or not m[b]:
            return None
        return m[a] / m[b] if higher else m[b] / m[a]

    for portico in PORTICO:
        for size, count in sizes:
            for proto in ("s3", "webdav"):
                check(
                    f"{NAMES[portico]} {proto} GET {human(size)} × {count} ÷ nginx ≥ 0.9",
                    ratio(("get", proto, size, count, portico), ("get", "webdav", size, count, "nginx")),
                    0.9,
                )
            check(
                f"{NAMES[portico]} WebDAV PUT {human(size)} × {count} ÷ Apache ≥ 1.0",
                ratio(("put", "webdav", size, count, portico), ("put", "webdav", size, count, "apache")),
                1.0,
            )
            check(
                f"{NAMES[portico]} S3 PUT {human(size)} × {count} ÷ s3s-fs ≥ 2.0",
                ratio(("put", "s3", size, count, portico), ("put", "s3", size, count, "s3s-fs")),
                2.0,
            )
        if small:
            check(
                f"{NAMES[portico]} S3 small GET ÷ s3s-fs ≥ 1.5",
                ratio(("get", "s3", 4096, small, portico), ("get", "s3", 4096, small, "s3s-fs")),
                1.5,
            )
            check(
                f"{NAMES[portico]} S3 small PUT (durable) ÷ s3s-fs ≥ 1.0",
                ratio(("put", "s3", 4096, small, portico), ("put", "s3", 4096, small, "s3s-fs")),
                1.0,
            )
        lists = sorted({r["entries"] // max(r["ops"], 1) for r in runs if r["workload"] == "list"})
        for entries in lists:
            for proto, peers in (("s3", ["s3s-fs"]), ("webdav", ["apache", "rclone", "dufs"])):
                mine = [v for k, v in m.items() if k[0] == "list" and k[1] == proto and k[4] == portico and _entries(runs, k) == entries]
                theirs = [v for k, v in m.items() if k[0] == "list" and k[1] == proto and k[4] in peers and _entries(runs, k) == entries]
                if mine and theirs:
                    check(
                        f"{NAMES[portico]} {'ListObjectsV2' if proto == 's3' else 'PROPFIND Depth 1'} of {entries:,}: best peer's µs/entry ÷ ours ≥ 1.0",
                        min(theirs) / mine[0],
                        1.0,
                    )
        per_entry = {(_entries(runs, k)): v for k, v in m.items() if k[0] == "list" and k[1] == "s3" and k[4] == portico}
        if len(per_entry) >= 2:
            lo, hi = min(per_entry), max(per_entry)
            check(
                f"{NAMES[portico]} ListObjectsV2 µs/entry at {hi:,} ÷ at {lo:,} (flat: ≤ 1.25)",
                per_entry[hi] / per_entry[lo],
                1.25,
                higher=False,
            )
        big_rss = [max(v) for k, v in rss.items() if k[0] == "put" and k[3] == 16 and k[2] >= (1 << 30) and k[4] == portico]
        if big_rss:
            check(f"{NAMES[portico]} peak RSS MB, 16 concurrent 1 GiB uploads (< 200)", max(big_rss), 200, higher=False)
    return lines


def _entries(runs, key):
    for r in runs:
        if (r["workload"], r["protocol"], r["size"], r["count"], r["target"]) == key and r["ops"]:
            return r["entries"] // r["ops"]
    return 0


if __name__ == "__main__":
    main(sys.argv[1])

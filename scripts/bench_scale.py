"""Growth of breakglass's commands with the size of a vault (run by scripts/bench).

Builds one vault per size (`breakglass init --dev-softhsm`, then `scale build` grows it with
credentials sealed by the library and a longer audit log of chained, checkpointed entries),
runs each command repeatedly as a whole process, going round the vaults in turn so that the
sizes are compared over the same minutes, and takes the median wall time, its spread
and the child's peak resident memory (wait4's ru_maxrss), beside the floors measured in the
same run: a bare PKCS#11 program doing a cold unseal's token operations, one warm token ECDH,
and SLIP-39's PBKDF2. Writes a Markdown section and an SVG chart of cost against size.
"""

import argparse
import atexit
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from xml.sax.saxutils import escape


def run(cmd, env, check=True):
    """Runs `cmd`; returns (milliseconds, peak RSS in MiB)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = (time.perf_counter() - start) * 1000
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if check and proc.returncode != 0:
        sys.exit(f"bench: {' '.join(cmd)} failed ({proc.returncode}): {err}")
    return elapsed, usage.ru_maxrss / 1024


def summarise(timed):
    """The figures of a command from its runs (milliseconds, peak MiB): the first apart (after
    the vault grew, this machine has verified none of the new lines: what it remembers is built
    then), then the median time of the others with its spread, median and largest peak
    memory."""
    (first, first_rss), rest = timed[0], timed[1:]
    times, rss = [t for t, _ in rest], [r for _, r in rest]
    return {"median": statistics.median(times), "min": min(times), "max": max(times),
            "rss": statistics.median(rss), "rss_max": max(rss), "runs": len(rest),
            "first": first, "first_rss": first_rss}


def measure_ceremonies(a, vaults, base, runs):
    """`ceremony open` (an unseal of `target`, signed by this machine's security officer) and
    `ceremony close` (the contributions combined, the credential opened) on each vault
    (size, tag, env, shares), each timed, the vaults in turn; between them, untimed, custodians
    a and b each contribute at home (their own directory and configuration, no vault, no
    token). Returns {size: (open figures, close figures)}."""
    opens = {s: [] for s, _, _, _ in vaults}
    closes = {s: [] for s, _, _, _ in vaults}
    for i in range(runs + 1):
        for s, tag, env, shares in vaults:
            request = f"{a.work}/request-{tag}-{i}.json"
            opens[s].append(run([a.bin, "ceremony", "open", "--purpose", "unseal", "--credential", "target",
                                 "--reason", "benchmark", "--expires", "2h", "--out", request], env))
            with open(request) as f:
                ceremony = json.load(f)["request"]["id"]
            contributions = []
            for custodian in ("a", "b"):
                home = f"{a.work}/home-{tag}-{i}-{custodian}"
                os.makedirs(home)
                custodian_env = dict(base, XDG_CONFIG_HOME=f"{home}/config", HOME=home)
                out = f"{home}/contribution.json"
                subprocess.run([a.bin, "ceremony", "contribute", request, "--share-file",
                                f"{shares}/{custodian}.share", "--yes", "--out", out],
                               env=custodian_env, cwd=home, check=True, stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                contributions += ["--contribution", out]
            closes[s].append(run([a.bin, "ceremony", "close", ceremony, *contributions, "--output", "json"], env))
    return {s: (summarise(opens[s]), summarise(closes[s])) for s in opens}


def start_aws(a, work):
    """A local moto server on a free port, an IAM user with an access key and a role it may
    assume; returns (the environment the AWS SDK needs, the key file, the role's ARN)."""
    port_socket = socket.socket()
    port_socket.bind(("127.0.0.1", 0))
    port = port_socket.getsockname()[1]
    port_socket.close()
    log = open(f"{work}/moto.log", "w")
    server = subprocess.Popen(["setpriv", "--pdeathsig", "KILL", "--", a.moto, "-H", "127.0.0.1",
                               "-p", str(port)], stdout=log, stderr=log)
    atexit.register(server.kill)
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/data.json", timeout=2)
            break
        except OSError:
            time.sleep(0.1)
    else:
        sys.exit(f"bench: moto_server did not answer on {endpoint} (see {work}/moto.log)")
    aws_env = {"AWS_ENDPOINT_URL": endpoint, "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
               "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
               "AWS_EC2_METADATA_DISABLED": "true"}
    setup = dict(os.environ, **aws_env, AWS_ACCESS_KEY_ID="AKIAIOSFODNN7EXAMPLE", AWS_SECRET_ACCESS_KEY="setup")
    role = "arn:aws:iam::123456789012:role/emergency"
    trust = json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:user/bench"},
        "Action": "sts:AssumeRole"}]})
    subprocess.run([a.aws, "iam", "create-user", "--user-name", "bench"], env=setup, check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run([a.aws, "iam", "create-role", "--role-name", "emergency", "--assume-role-policy-document",
                    trust], env=setup, check=True, stdout=subprocess.DEVNULL)
    key = f"{work}/aws-key.json"
    with open(key, "w") as f:
        subprocess.run([a.aws, "iam", "create-access-key", "--user-name", "bench"], env=setup, check=True,
                       stdout=f)
    return aws_env, key, role


def output(cmd, env):
    return subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout.strip()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--scale", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--sizes", required=True, help="CREDENTIALS:ENTRIES,... (0:0 first)")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--drill-runs", type=int, default=3)
    ap.add_argument("--markdown", required=True)
    ap.add_argument("--svg", required=True)
    ap.add_argument("--svg-name", required=True, help="how the Markdown links the chart")
    ap.add_argument("--moto", required=True, help="moto_server, the local AWS endpoint `assume` calls")
    ap.add_argument("--aws", required=True, help="the AWS CLI (sets up the endpoint's user and role)")
    ap.add_argument("--before", help="another build of breakglass (e.g. the previous release) to "
                    "run the same commands with on the largest vault, in the same run")
    a = ap.parse_args()

    sizes = [tuple(int(x) for x in s.split(":")) for s in a.sizes.split(",")]
    base = dict(os.environ)
    for var in ("BREAKGLASS_VAULT", "XDG_CONFIG_HOME", "SOFTHSM2_CONF", "BREAKGLASS_FINGERPRINT"):
        base.pop(var, None)
    base["BREAKGLASS_REASON"] = "benchmark"
    with open(os.path.join(a.work, "payload"), "w") as f:
        f.write("x" * 100)
    aws_env, aws_key, role = start_aws(a, a.work)

    commands = [
        ("unseal", "`unseal` one credential", lambda s: ["unseal", "target", *s, "--output", "json"]),
        ("seal", "`seal --replace` one credential", lambda s: ["seal", "target", "--kind", "secret",
                                                               "--from-file", f"{a.work}/payload", "--replace"]),
        ("status", "`status`", lambda s: ["status"]),
        ("list", "`list`", lambda s: ["list"]),
        ("verify", "`audit verify`", lambda s: ["audit", "verify"]),
        ("share", "`share verify`", lambda s: ["share", "verify", *s[:2]]),
        ("drill", "`drill` (every credential)", lambda s: ["drill", *s]),
        ("assume", "`assume` (STS, local endpoint)", lambda s: ["assume", "aws-target", *s, "--format", "json"]),
        # Measured together by measure_ceremony (open, two contributions, close).
        ("ceremony-open", "`ceremony open` (unseal)", None),
        ("ceremony-close", "`ceremony close` (2 contributions)", None),
    ]
    results = {}
    built = {}
    vaults = {}
    # Every vault is built first; then each command's runs go round the vaults in turn (and,
    # for `unseal`, the bare PKCS#11 floors): this machine's speed drifts by a fifth from one
    # minute to the next, and the ratios compare figures taken in the same minutes.
    for creds, entries in sizes:
        tag = f"{creds}-{entries}"
        env = dict(base, **aws_env, XDG_CONFIG_HOME=f"{a.work}/config-{tag}",
                   BREAKGLASS_VAULT=f"{a.work}/vault-{tag}")
        shares = f"{a.work}/shares-{tag}"
        subprocess.run([a.bin, "init", "--dev-softhsm", "--custodian", "a", "--custodian", "b",
                        "--custodian", "c", "--threshold", "2", "--iteration-exponent", "0",
                        "--shares-dir", shares], env=env, check=True, stdout=subprocess.DEVNULL)
        subprocess.run([a.bin, "seal", "target", "--kind", "secret", "--from-file", f"{a.work}/payload"],
                       env=env, check=True, stdout=subprocess.DEVNULL)
        subprocess.run([a.bin, "seal", "aws-target", "--kind", "aws", "--from-file", aws_key, "--role-arn", role,
                        "--duration", "900"], env=env, check=True, stdout=subprocess.DEVNULL)
        start = time.perf_counter()
        if creds or entries:
            # The development token inside the vault (what breakglass itself points SoftHSM at).
            build_env = dict(env, SOFTHSM2_CONF=f"{env['BREAKGLASS_VAULT']}/softhsm/softhsm2.conf")
            subprocess.run([a.scale, "build", env["BREAKGLASS_VAULT"], str(creds), str(entries),
                            f"{shares}/a.share", f"{shares}/b.share"], env=build_env, check=True)
        built[(creds, entries)] = time.perf_counter() - start
        vaults[(creds, entries)] = (tag, env, shares,
                                    ["--share-file", f"{shares}/a.share", "--share-file", f"{shares}/b.share"])
    # What the builds wrote goes to disk now, not during the first commands measured (a file
    # system's journal commit writes earlier dirty data first: the first fsyncs after a build of
    # 10,000 files and 40 MB of log waited for all of it).
    os.sync()

    floor_dir = f"{a.work}/floor"
    os.makedirs(floor_dir)
    fenv = dict(base, SOFTHSM2_CONF=f"{floor_dir}/softhsm2.conf")
    floor_key = output([a.scale, "floor-setup", floor_dir], fenv)

    big = sizes[-1]
    # The other build runs as another machine would, with a copy of this one's configuration
    # (pin, operator key, anchors, envelope records): the notes each build keeps of how far it
    # verified differ between releases, and shared they would send each into walks of the
    # other's lines that neither makes on its own.
    before_env = None
    if a.before:
        before_config = f"{a.work}/config-{vaults[big][0]}-before"
        shutil.copytree(vaults[big][1]["XDG_CONFIG_HOME"], before_config, symlinks=True)
        before_env = dict(vaults[big][1], XDG_CONFIG_HOME=before_config)
    for key, _, argv in commands:
        if argv is None:
            continue
        runs = a.drill_runs if key == "drill" else a.runs
        targets = [((key, *s), [a.bin, *argv(vaults[s][3])], vaults[s][1]) for s in sizes]
        if a.before:
            targets.append(((key, "before"), [a.before, *argv(vaults[big][3])], before_env))
        if key == "unseal":
            targets.append((("floor",), [a.scale, "floor", floor_dir, floor_key], fenv))
            targets.append((("floor-unseal",), [a.scale, "floor-unseal", floor_dir, floor_key], fenv))
        # The first run of each apart (after the vault grew, this machine has verified none of
        # the new lines), then the runs in turn.
        timed = {label: [] for label, _, _ in targets}
        for _ in range(runs + 1):
            for label, cmd, env in targets:
                timed[label].append(run(cmd, env))
        for label, series in timed.items():
            results[label] = summarise(series)
    ceremony_base = {k: v for k, v in base.items() if k not in ("BREAKGLASS_VAULT", "XDG_CONFIG_HOME")}
    ceremonies = measure_ceremonies(a, [(s, *vaults[s][:3]) for s in sizes], ceremony_base, a.runs)
    for s, (opened, closed) in ceremonies.items():
        results[("ceremony-open", *s)], results[("ceremony-close", *s)] = opened, closed
    for s in sizes:
        env = vaults[s][1]
        opened = output([a.scale, "open", env["BREAKGLASS_VAULT"], str(a.runs)], env).split()
        results[("open", *s)] = tuple(float(x) for x in opened)
        lines = sum(1 for _ in open(f"{env['BREAKGLASS_VAULT']}/audit.jsonl"))
        built[(*s, "lines")] = lines
        print(f"bench: measured {s[0]} credentials / {lines} audit lines", file=sys.stderr)

    floor, floor_unseal = results[("floor",)], results[("floor-unseal",)]
    warm_us = statistics.median(float(output([a.scale, "floor-warm", floor_dir, floor_key], fenv)) for _ in range(3))
    pbkdf2_ms = float(output([a.scale, "pbkdf2"], base))
    signatures = output([a.scale, "signature-floor", f"{a.work}/vault-{big[0]}-{big[1]}/audit.jsonl"], base).split()

    write_markdown(a, sizes, commands, results, built, floor, floor_unseal, warm_us, pbkdf2_ms, signatures)
    write_svg(a.svg, sizes, commands, results, built)


def fmt(r):
    return f"{r['median']:.1f} ms ({r['min']:.1f}–{r['max']:.1f}), {r['rss']:.1f} MiB"


def fmt_first(r):
    return f"{r['first']:.1f} ms, {r['first_rss']:.1f} MiB"


def size_label(sizes, built, s):
    creds, entries = s
    return f"{creds:,} credentials, {built[(creds, entries, 'lines')]:,} audit lines"


def targets(sizes, commands, results, built, floor_unseal, warm_us, pbkdf2_ms, signatures):
    """The scale targets beside what this run measured, each marked met or not."""
    fresh, big = sizes[0], sizes[-1]
    rows = []
    for key, label, _ in commands:
        if key in ("status", "list", "verify", "drill"):
            continue
        f, b = results[(key, *fresh)], results[(key, *big)]
        t, m = b["median"] / f["median"], b["rss"] / f["rss"]
        rows.append((f"{label}: largest ÷ fresh within 1.2×, time and memory", f"{t:.2f}×, {m:.2f}×",
                     t <= 1.2 and m <= 1.2))
    for key, label in (("status", "`status`"), ("list", "`list`")):
        ms = results[(key, *big)]["median"]
        rows.append((f"{label} under 200 ms at the largest", f"{ms:.0f} ms", ms < 200))
    verify = results[("verify", *big)]["median"]
    rows.append(("`audit verify` under 300 ms at the largest (every signature)",
                 f"{verify:.0f} ms; its signature checks alone take {float(signatures[1]):.0f} ms here",
                 verify < 300))
    creds = big[0]
    per = (results[("drill", *big)]["median"] - results[("drill", *fresh)]["median"]) * 1000 / creds
    rows.append(("`drill` per credential within 1.3× a warm token ECDH", f"{per / warm_us:.2f}×",
                 per / warm_us <= 1.3))
    cold = results[("unseal", *fresh)]["median"] / (floor_unseal["median"] + pbkdf2_ms)
    rows.append(("cold `unseal` within 1.5× its token operations + PBKDF2", f"{cold:.2f}×", cold <= 1.5))
    out = ["Against the scale targets (the figures below, at "
           f"{size_label(sizes, built, big)}):", "",
           "| target | measured | met |", "|---|---|---|"]
    out += [f"| {t} | {m} | {'yes' if ok else 'no'} |" for t, m, ok in rows]
    out += ["", "`rekey` and `hsm enroll` per credential, beside the same 1.3×, are in the whole-process "
            "section above (out of reach by design: their cryptography alone exceeds it).", ""]
    return out


def write_markdown(a, sizes, commands, results, built, floor, floor_unseal, warm_us, pbkdf2_ms, signatures):
    fresh = sizes[0]
    big = sizes[-1]
    out = []
    out.extend(targets(sizes, commands, results, built, floor_unseal, warm_us, pbkdf2_ms, signatures))
    out.append("| command | " + " | ".join(
        ("fresh vault" if s == fresh else size_label(sizes, built, s)) for s in sizes)
        + " | largest ÷ fresh (time, memory) |")
    out.append("|---" * (len(sizes) + 2) + "|")
    for key, label, _ in commands:
        cells = [fmt(results[(key, *s)]) for s in sizes]
        f, b = results[(key, *fresh)], results[(key, *big)]
        out.append(f"| {label} | " + " | ".join(cells)
                   + f" | {b['median'] / f['median']:.2f}×, {b['rss'] / f['rss']:.2f}× |")
    if a.before:
        out.append("")
        out.append(f"The same commands on the largest vault, in the same run, with the build before this "
                   f"change (`{os.path.basename(a.before)}`):")
        out.append("")
        out.append("| command | before | after | after ÷ before (time, memory) |")
        out.append("|---|---|---|---|")
        for key, label, _ in commands:
            if (key, "before") not in results:
                continue
            b, n = results[(key, "before")], results[(key, *big)]
            out.append(f"| {label} | {fmt(b)} | {fmt(n)} | {n['median'] / b['median']:.2f}×, "
                       f"{n['rss'] / b['rss']:.2f}× |")
    out.append("")
    out.append("Each figure is the median of the runs after the first (with the fastest and slowest, "
               "and the median peak memory). The first run of each command after the vault grew, "
               "apart: this machine had verified none of the lines the vault grew by, so `unseal` walks "
               "the whole log once for its anchor and envelope records, and `status` once for its note "
               "of the bytes it verified; every later run reads only what was appended since:")
    out.append("")
    out.append("| command | " + " | ".join(
        ("fresh vault" if s == fresh else size_label(sizes, built, s)) for s in sizes) + " |")
    out.append("|---" * (len(sizes) + 1) + "|")
    for key, label, _ in commands:
        out.append(f"| {label} | " + " | ".join(fmt_first(results[(key, *s)]) for s in sizes) + " |")
    one_core, per_cores, cores, signed, checkpoints, ed_us, ec_us = signatures
    verify = results[("verify", *big)]
    out.append("")
    out.append(f"`audit verify` checks every line's signature: at {size_label(sizes, built, big)} that is "
               f"{int(signed):,} Ed25519 operator signatures ({float(ed_us):.1f} µs each with ring here) and "
               f"{int(checkpoints):,} ECDSA P-256 checkpoints ({float(ec_us):.1f} µs each): {float(one_core):.0f} ms "
               f"on one core, {float(per_cores):.0f} ms divided among this machine's {cores} cores, which "
               f"`audit verify` uses. Its {verify['median']:.0f} ms is "
               f"{verify['median'] / float(per_cores):.2f}× that floor (the rest: reading, parsing and "
               f"hashing each line, and checking its signer's role).")
    out.append("")
    out.append("Opening the vault (`Vault::open`, in process, median of the runs), with the audit head "
               "this machine remembers (only the log after it is read and verified) and without one "
               "(the whole log read and verified, as on a machine that opens the vault for the first time):")
    out.append("")
    out.append("| vault | with the machine's anchor | without an anchor |")
    out.append("|---|---|---|")
    for s in sizes:
        anchored, full = results[("open", *s)]
        label = "fresh vault" if s == fresh else size_label(sizes, built, s)
        out.append(f"| {label} | {anchored:.2f} ms | {full:.2f} ms |")
    unseal = results[("unseal", *fresh)]
    out.append("")
    out.append("Floors, measured in the same run:")
    out.append("")
    out.append("| floor | figure | `unseal` on a fresh vault ÷ floor |")
    out.append("|---|---|---|")
    out.append(f"| bare PKCS#11 program, one process: load SoftHSM, open a session, log in, find the key, "
               f"one ECDH (derive, read, destroy) | {fmt(floor)} | "
               f"{unseal['median'] / floor['median']:.2f}× |")
    out.append(f"| the same program doing every token operation of an unseal: also the audit's (find the "
               f"signing key, sign the checkpoint's digest, read the data object holding the audit head and "
               f"replace it) | {fmt(floor_unseal)} | {unseal['median'] / floor_unseal['median']:.2f}× |")
    out.append(f"| SLIP-39 PBKDF2 (combining 2 shares at iteration exponent 0, in process) | {pbkdf2_ms:.1f} ms | |")
    out.append(f"| bare PKCS#11 floor + PBKDF2 | {floor['median'] + pbkdf2_ms:.1f} ms | "
               f"{unseal['median'] / (floor['median'] + pbkdf2_ms):.2f}× |")
    out.append(f"| every token operation of an unseal + PBKDF2 | {floor_unseal['median'] + pbkdf2_ms:.1f} ms | "
               f"{unseal['median'] / (floor_unseal['median'] + pbkdf2_ms):.2f}× |")
    out.append(f"| one warm token ECDH (bare cryptoki, same session, key found once) | {warm_us:.1f} µs | |")
    out.append("")
    for s in sizes[1:]:
        creds = s[0]
        if creds == 0:
            continue
        per = (results[("drill", *s)]["median"] - results[("drill", *fresh)]["median"]) * 1000 / creds
        out.append(f"`drill` per credential at {creds:,} credentials (its time less a fresh vault's drill, "
                   f"÷ {creds:,}): {per:.1f} µs, {per / warm_us:.2f}× a warm token ECDH.")
        out.append("")
    out.append("Building each vault (library sealing and audit growth, once per size): "
               + "; ".join(f"{size_label(sizes, built, s)} in {built[s]:.1f} s" for s in sizes[1:]) + ".")
    out.append("")
    out.append(f"![cost of each command against the size of the vault]({a.svg_name})")
    with open(a.markdown, "w") as f:
        f.write("\n".join(out) + "\n")


def write_svg(path, sizes, commands, results, built):
    """Median time of each command (log scale) against the vault's size."""
    import math
    w, h, left, right, top, bottom = 840, 420, 70, 250, 30, 60
    values = [results[(k, *s)]["median"] for k, _, _ in commands for s in sizes]
    lo = 10 ** math.floor(math.log10(max(min(values), 0.1)))
    hi = 10 ** math.ceil(math.log10(max(values)))

    def x(i):
        return left + (w - left - right) * (i / max(len(sizes) - 1, 1))

    def y(v):
        return top + (h - top - bottom) * (1 - (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)))

    colours = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d",
               "#666666", "#1f78b4", "#b2182b"]
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
           f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<text x="{left}" y="18" font-size="14">median wall time of each command (log scale) against the size of the vault</text>']
    decade = lo
    while decade <= hi:
        svg.append(f'<line x1="{left}" x2="{w - right}" y1="{y(decade):.1f}" y2="{y(decade):.1f}" stroke="#ddd"/>')
        svg.append(f'<text x="{left - 6}" y="{y(decade) + 4:.1f}" text-anchor="end">{decade:g} ms</text>')
        decade *= 10
    for i, s in enumerate(sizes):
        label = "fresh" if i == 0 else f"{s[0]:,} cred."
        lines = built.get((*s, "lines"), s[1])
        svg.append(f'<text x="{x(i):.1f}" y="{h - bottom + 18}" text-anchor="middle">{escape(label)}</text>')
        svg.append(f'<text x="{x(i):.1f}" y="{h - bottom + 34}" text-anchor="middle">{lines:,} lines</text>')
    for n, (key, label, _) in enumerate(commands):
        colour = colours[n % len(colours)]
        points = " ".join(f"{x(i):.1f},{y(results[(key, *s)]['median']):.1f}" for i, s in enumerate(sizes))
        svg.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for i, s in enumerate(sizes):
            svg.append(f'<circle cx="{x(i):.1f}" cy="{y(results[(key, *s)]["median"]):.1f}" r="3" fill="{colour}"/>')
        ly = top + 16 * n + 10
        svg.append(f'<line x1="{w - right + 15}" x2="{w - right + 35}" y1="{ly}" y2="{ly}" stroke="{colour}" stroke-width="2"/>')
        svg.append(f'<text x="{w - right + 40}" y="{ly + 4}">{escape(label.replace("`", ""))}</text>')
    svg.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(svg) + "\n")


if __name__ == "__main__":
    main()

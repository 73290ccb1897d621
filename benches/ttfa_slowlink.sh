#!/usr/bin/env bash
# Time-to-first-audio (TTFA) of a track held only by a remote node, through an emulated slow
# link (default 50 ms RTT, 20 Mbit/s), against a direct loopback baseline. Run by hand, as
# root (network namespaces, tc). Not part of CI. Nothing leaves the machine: the only
# interfaces used are veth pairs between namespaces this script creates, plus loopback.
#
#   bk-artist 10.77.1.2 ==veth== 10.77.1.1 bk-relay 10.77.2.1 ==veth== 10.77.2.2 bk-fan
#
# bk-relay has IP forwarding off and neither end has a route to the other's subnet, so the
# only path is benches/slowlink/relay.py (TCP and UDP, adds the one-way delay each way).
# The rate limit is a kernel tbf qdisc on the egress of each relay-side veth: one per
# direction, applied to TCP and UDP alike, with a real packet queue (drops for QUIC, TCP
# backpressure) and no Python in the per-packet timing. tbf rather than htb: one class, one
# rate per interface is all we need, and tbf is the classless shaper for exactly that.
# (SHAPER=relay moves the rate limit into relay.py instead, as a cross-check.)
# Caveat: relay.py splits TCP, so TCP's congestion control runs over ~0 ms legs and does not
# feel the 50 ms (no slow-start penalty); QUIC is relayed per datagram and does feel it
# (TRANSPORT=quic).
#
# Usage: benches/ttfa_slowlink.sh [options]          (from anywhere)
#   --check-link        only build the link, measure RTT and throughput through it, and exit
#   --plays N           tracks played per link, each a different track     [PLAYS=20]
#   --delay-ms MS       one-way delay, each direction (RTT = 2x)             [DELAY_MS=25]
#   --rate-mbit MBIT    link rate, each direction                            [RATE_MBIT=20]
#   --transport T       how the fan reaches the artist: tcp, quic or both     [TRANSPORT=tcp]
#   --baseline B        loopback: a fresh artist+fan daemon pair in one namespace over
#                       127.0.0.1; relay0: the same relay path, 0 ms and no rate limit
#                                                                            [BASELINE=loopback]
#   --shaper S          tc (tbf on the relay's veths) or relay (relay.py --rate) [SHAPER=tc]
#   --get               time `busker get ID` (whole-track fetch) instead of `busker play`
#   --build             run `cargo build --release` first (also done if the binary is missing)
#   --keep              keep the temp dir (data dirs, logs) for inspection
# Other env: BUSKER (binary), TBF_BURST [32kb], TBF_LATENCY [50ms], CHECK_BYTES [10000000],
#   TRACK_SECS [20], DISCOVERY_TIMEOUT [90] s, PLAY_TIMEOUT [60] s, RUST_LOG (daemons).
set -euo pipefail
export LC_ALL=C  # '.' as decimal point in $EPOCHREALTIME and printf

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HERE="$ROOT/benches/slowlink"

PLAYS="${PLAYS:-20}"
DELAY_MS="${DELAY_MS:-25}"
RATE_MBIT="${RATE_MBIT:-20}"
TRANSPORT="${TRANSPORT:-tcp}"
BASELINE="${BASELINE:-loopback}"
SHAPER="${SHAPER:-tc}"
MODE=play
CHECK_ONLY=0
BUILD=0
KEEP=0
BUSKER="${BUSKER:-$ROOT/target/release/busker}"
TBF_BURST="${TBF_BURST:-32kb}"
TBF_LATENCY="${TBF_LATENCY:-50ms}"
CHECK_BYTES="${CHECK_BYTES:-10000000}"
TRACK_SECS="${TRACK_SECS:-20}"
DISCOVERY_TIMEOUT="${DISCOVERY_TIMEOUT:-90}"
PLAY_TIMEOUT="${PLAY_TIMEOUT:-60}"

log() { printf '[ttfa] %s\n' "$*" >&2; }
die() { printf '[ttfa] error: %s\n' "$*" >&2; exit 1; }

while [ $# -gt 0 ]; do
    case "$1" in
        --check-link) CHECK_ONLY=1 ;;
        --plays) PLAYS="$2"; shift ;;
        --delay-ms) DELAY_MS="$2"; shift ;;
        --rate-mbit) RATE_MBIT="$2"; shift ;;
        --transport) TRANSPORT="$2"; shift ;;
        --baseline) BASELINE="$2"; shift ;;
        --shaper) SHAPER="$2"; shift ;;
        --get) MODE=get ;;
        --build) BUILD=1 ;;
        --keep) KEEP=1 ;;
        -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument $1 (try --help)" ;;
    esac
    shift
done

[[ "$PLAYS" =~ ^[1-9][0-9]*$ ]] || die "--plays must be a positive integer"
[[ "$DELAY_MS" =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "--delay-ms must be a number"
[[ "$RATE_MBIT" =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "--rate-mbit must be a number"
case "$TRANSPORT" in tcp|quic|both) ;; *) die "--transport must be tcp, quic or both" ;; esac
case "$BASELINE" in loopback|relay0) ;; *) die "--baseline must be loopback or relay0" ;; esac
case "$SHAPER" in tc|relay) ;; *) die "--shaper must be tc or relay" ;; esac
[ "$(id -u)" = 0 ] || die "needs root (network namespaces, tc)"
for tool in ip tc python3 ffmpeg timeout; do
    command -v "$tool" >/dev/null || die "missing tool: $tool"
done

# --------------------------------------------------------------------------- topology
NS_A=bk-artist NS_R=bk-relay NS_F=bk-fan
A_IP=10.77.1.2 RA_IP=10.77.1.1 RF_IP=10.77.2.1 F_IP=10.77.2.2
P2P_PORT=4717    # artist's TCP and QUIC port; the relay listens on the same port fan-side
CHECK_PORT=5001  # linkcheck.py server (TCP + UDP)
A_API=127.0.0.1:47180 F_API=127.0.0.1:47181 F2_API=127.0.0.1:47182  # per-namespace loopback

PIDS=()   # background processes we started and have not stopped yet, killed by id at exit
DAEMON_PIDS=()  # the busker daemons among them
WORK=""
NS_OURS=0  # set once we create the namespaces: only then does cleanup remove them

kill_pid() {  # PID [SIGNAL]: SIGNAL (default TERM), wait up to 5 s, then KILL
    local pid=$1 i
    kill -"${2:-TERM}" "$pid" 2>/dev/null || return 0
    for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
}

stop_pid() {  # PID [SIGNAL]: kill one of ours and forget it, so its id is never signalled again
    local pid=$1 p keep=()
    kill_pid "$pid" "${2:-TERM}"
    for p in "${PIDS[@]}"; do [ "$p" = "$pid" ] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

del_namespaces() {  # also clears leftovers of an aborted run: processes inside, then the ns
    local ns pid
    for ns in "$NS_A" "$NS_R" "$NS_F"; do
        [ -e "/run/netns/$ns" ] || continue
        [ "$NS_OURS" = 1 ] || log "removing $ns left over from an earlier run (its temp dir stays in /tmp/busker-ttfa.*)"
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill_pid "$pid"; done
        ip netns del "$ns" 2>/dev/null || log "could not delete namespace $ns"
    done
}

cleanup() {
    local rc=$? pid
    set +e
    for pid in "${DAEMON_PIDS[@]}"; do stop_pid "$pid" INT; done
    for pid in "${PIDS[@]}"; do kill_pid "$pid"; done
    [ "$NS_OURS" = 0 ] || del_namespaces
    if [ -n "$WORK" ]; then
        if [ "$KEEP" = 1 ] || { [ "$rc" != 0 ] && [ "$rc" != 130 ]; }; then log "kept $WORK (logs, data dirs)"; else rm -rf "$WORK"; fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM  # -> cleanup; the temp dir is kept only on errors or with --keep

setup_namespaces() {
    del_namespaces
    NS_OURS=1
    local ns
    for ns in "$NS_A" "$NS_R" "$NS_F"; do
        ip netns add "$ns"
        ip -n "$ns" link set lo up
    done
    # Each veth pair is created inside bk-relay with its far end moved straight to its ns.
    ip -n "$NS_R" link add name bkr-a type veth peer name bka-r netns "$NS_A"
    ip -n "$NS_R" link add name bkr-f type veth peer name bkf-r netns "$NS_F"
    ip -n "$NS_A" addr add "$A_IP/24" dev bka-r
    ip -n "$NS_R" addr add "$RA_IP/24" dev bkr-a
    ip -n "$NS_R" addr add "$RF_IP/24" dev bkr-f
    ip -n "$NS_F" addr add "$F_IP/24" dev bkf-r
    ip -n "$NS_A" link set bka-r up
    ip -n "$NS_R" link set bkr-a up
    ip -n "$NS_R" link set bkr-f up
    ip -n "$NS_F" link set bkf-r up
    ip netns exec "$NS_R" sysctl -qw net.ipv4.ip_forward=0
    # Only the connected /24s exist: no default route, nothing between 10.77.1/24 and 10.77.2/24.
    if ip -n "$NS_F" route get "$A_IP" >/dev/null 2>&1; then die "bk-fan has a route to $A_IP"; fi
    if ip -n "$NS_A" route get "$F_IP" >/dev/null 2>&1; then die "bk-artist has a route to $F_IP"; fi
}

shape() {  # $1 = on|off: tbf on the egress of both relay-side veths = one limit per direction
    local dev
    for dev in bkr-a bkr-f; do
        tc -n "$NS_R" qdisc del dev "$dev" root 2>/dev/null || true
        if [ "$1" = on ]; then
            # burst: bytes sent back-to-back at line speed (>= a few MTUs; tbf segments GSO
            # packets larger than this). latency: most queueing delay before tbf drops, i.e.
            # the bottleneck's buffer (50 ms = 125 KB at 20 Mbit/s).
            tc -n "$NS_R" qdisc add dev "$dev" root tbf rate "${RATE_MBIT}mbit" \
                burst "$TBF_BURST" latency "$TBF_LATENCY"
        fi
    done
}

RELAY_PID="" RELAY_RUNS=0
start_relay() {  # $1 = one-way delay in ms, $2 = relay-side rate in bytes/s or ""
    [ -z "$RELAY_PID" ] || { stop_pid "$RELAY_PID"; RELAY_PID=""; }
    RELAY_RUNS=$((RELAY_RUNS + 1))
    local out="$WORK/logs/relay-$RELAY_RUNS.log"
    local args=(--delay-ms "$1"
        --tcp "$RF_IP:$P2P_PORT=$A_IP:$P2P_PORT" --udp "$RF_IP:$P2P_PORT=$A_IP:$P2P_PORT"
        --tcp "$RF_IP:$CHECK_PORT=$A_IP:$CHECK_PORT" --udp "$RF_IP:$CHECK_PORT=$A_IP:$CHECK_PORT")
    [ -z "$2" ] || args+=(--rate "$2")
    ip netns exec "$NS_R" python3 "$HERE/relay.py" "${args[@]}" >"$out" 2>&1 &
    RELAY_PID=$!
    PIDS+=("$RELAY_PID")
    wait_for_line "$out" READY "$RELAY_PID" 10 "relay"
}

wait_for_line() {  # $1 file, $2 line, $3 pid that must stay alive, $4 timeout s, $5 name
    local deadline=$((SECONDS + $4))
    until grep -qx "$2" "$1" 2>/dev/null; do
        kill -0 "$3" 2>/dev/null || { tail -n 20 "$1" >&2; die "$5 exited during start-up"; }
        [ "$SECONDS" -lt "$deadline" ] || { tail -n 20 "$1" >&2; die "$5 not ready after $4 s"; }
        sleep 0.05
    done
}

# Start the link in the configured shape: $1 = delay ms, $2 = rate on|off.
link_up() {
    local rate_bps=""
    if [ "$2" = on ] && [ "$SHAPER" = relay ]; then
        rate_bps=$(python3 -c "print(int($RATE_MBIT * 125000))")
        shape off
    else
        shape "$2"
    fi
    start_relay "$1" "$rate_bps"
}

CHECK_SRV_PID=""
check_link() {  # $1 = bytes each way. Prints figures; fails if a direct path exists.
    if [ -z "$CHECK_SRV_PID" ]; then
        ip netns exec "$NS_A" python3 "$HERE/linkcheck.py" server --bind "$A_IP:$CHECK_PORT" \
            >"$WORK/logs/linkcheck-server.log" 2>&1 &
        CHECK_SRV_PID=$!
        PIDS+=("$CHECK_SRV_PID")
        wait_for_line "$WORK/logs/linkcheck-server.log" READY "$CHECK_SRV_PID" 10 "linkcheck server"
    fi
    ip netns exec "$NS_F" python3 "$HERE/linkcheck.py" probe --target "$RF_IP:$CHECK_PORT" \
        --unreachable "$A_IP:$CHECK_PORT" --rtts 20 --bytes "$1" | sed '$d; s/^/[ttfa]   /' >&2 ||
        die "link check failed"
}

# --------------------------------------------------------------------------- busker
bk() {  # bk NS DATA_DIR ARGS...: a busker CLI command inside a namespace (its daemon's loopback)
    local ns=$1 dir=$2
    shift 2
    ip netns exec "$ns" "$BUSKER" --data-dir "$dir" "$@"
}

start_daemon() {  # NS DATA_DIR API_ADDR NAME DAEMON_ARGS...
    local ns=$1 dir=$2 api=$3 name=$4 pid i
    shift 4
    ip netns exec "$ns" env RUST_LOG="${RUST_LOG:-info}" NO_COLOR=1 "$BUSKER" --data-dir "$dir" daemon \
        --no-mdns --api "$api" "$@" >"$WORK/logs/$name.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    DAEMON_PIDS+=("$pid")
    for i in $(seq 300); do
        bk "$ns" "$dir" status >/dev/null 2>&1 && return 0
        kill -0 "$pid" 2>/dev/null || { tail -n 30 "$WORK/logs/$name.log" >&2; die "$name daemon exited"; }
        sleep 0.1
    done
    tail -n 30 "$WORK/logs/$name.log" >&2
    die "$name daemon: control API not answering after 30 s"
}

stop_daemons() {
    local pid
    for pid in "${DAEMON_PIDS[@]}"; do stop_pid "$pid" INT; done  # busker stops cleanly on SIGINT
    DAEMON_PIDS=()
}

# Wait until the fan's copy of the artist's catalog lists every track we will play.
wait_catalog() {  # NS FAN_DIR
    local ns=$1 dir=$2 deadline=$((SECONDS + DISCOVERY_TIMEOUT)) t0=$SECONDS
    until bk "$ns" "$dir" catalog "$ARTIST_KEY" --json 2>/dev/null |
        python3 -c '
import json, sys
have = {t["id"] for r in json.load(sys.stdin).get("releases", []) for t in r.get("tracks", [])}
sys.exit(0 if set(sys.argv[1:]) <= have else 1)' "${TRACKS[@]}" 2>/dev/null; do
        [ "$SECONDS" -lt "$deadline" ] || {
            bk "$ns" "$dir" peers >&2 || true
            die "the fan did not learn the artist's catalog within $DISCOVERY_TIMEOUT s (see $WORK/logs)"
        }
        sleep 0.2
    done
    log "fan knows the artist's catalog (after $((SECONDS - t0)) s); peers:"
    bk "$ns" "$dir" peers 2>&1 | sed 's/^/[ttfa]   /' >&2 || true
}

# Before each play: let the previous track's download finish (a 1 s play returns while the
# daemon may still be fetching the rest), so plays do not compete for the link.
wait_idle() {  # NS FAN_DIR
    local n deadline=$((SECONDS + 60))
    while n=$(bk "$1" "$2" status 2>/dev/null | awk '$1 == "downloads" {print $2}') && [ -n "$n" ] && [ "$n" != 0 ]; do
        [ "$SECONDS" -lt "$deadline" ] || die "the fan still has $n download(s) in progress after 60 s"
        sleep 0.1
    done
}

# Play (or fetch) every track once, one after another; one line per play into $3.
measure() {  # NS FAN_DIR RESULTS_FILE
    local ns=$1 dir=$2 out=$3 i=0 id t0 t1 json line
    : >"$out"
    for id in "${TRACKS[@]}"; do
        i=$((i + 1))
        wait_idle "$ns" "$dir"
        if [ "$MODE" = play ]; then
            json=$(timeout "$PLAY_TIMEOUT" ip netns exec "$ns" "$BUSKER" --data-dir "$dir" \
                play "$id" --out null --seconds 1 --json 2>>"$WORK/logs/cli.log") || {
                tail -n 5 "$WORK/logs/cli.log" >&2
                die "play $i failed: ip netns exec $ns busker --data-dir $dir play $id --out null --seconds 1 --json"
            }
            line=$(printf '%s' "$json" | python3 -c '
import json, sys
j = json.load(sys.stdin)
t = (j.get("tracks") or [{}])[0]
ttfa = j.get("ttfa_ms", t.get("ttfa_ms"))
if ttfa is None:
    sys.exit("no audio reached the sink (ttfa_ms is null)")
print("%.1f %s" % (float(ttfa), t.get("stutters", "?")))') ||
                die "play $i (${id:0:12}): no usable ttfa_ms in: $json"
            printf '%s %s\n' "$id" "$line" >>"$out"
            log "  play $i/${#TRACKS[@]} ${id:0:12}: ttfa ${line% *} ms, stutters ${line#* }"
        else
            rm -rf "$WORK/get-out"
            t0=$EPOCHREALTIME
            timeout "$PLAY_TIMEOUT" ip netns exec "$ns" "$BUSKER" --data-dir "$dir" get "$id" -o "$WORK/get-out" \
                >>"$WORK/logs/cli.log" 2>&1 || { tail -n 5 "$WORK/logs/cli.log" >&2; die "get $i ($id) failed"; }
            t1=$EPOCHREALTIME
            line=$(python3 -c "print(f'{($t1 - $t0) * 1000:.1f}')")
            printf '%s %s -\n' "$id" "$line" >>"$out"
            log "  get $i/${#TRACKS[@]} ${id:0:12}: ${line} ms"
        fi
    done
}

stats() {  # RESULTS_FILE -> "n median p90 min max" (p90: nearest rank)
    python3 - "$1" <<'EOF'
import math, statistics, sys
xs = sorted(float(l.split()[1]) for l in open(sys.argv[1]) if l.strip())
p90 = xs[math.ceil(0.9 * len(xs)) - 1]
print(len(xs), f"{statistics.median(xs):.1f}", f"{p90:.1f}", f"{xs[0]:.1f}", f"{xs[-1]:.1f}")
EOF
}

bootstrap_addrs() {  # HOST PEER_ID -> --bootstrap flags for $TRANSPORT
    local host=$1 peer=$2
    case "$TRANSPORT" in
        tcp) echo "--bootstrap /ip4/$host/tcp/$P2P_PORT/p2p/$peer" ;;
        quic) echo "--bootstrap /ip4/$host/udp/$P2P_PORT/quic-v1/p2p/$peer" ;;
        both) echo "--bootstrap /ip4/$host/tcp/$P2P_PORT/p2p/$peer --bootstrap /ip4/$host/udp/$P2P_PORT/quic-v1/p2p/$peer" ;;
    esac
}

# One measured phase: artist daemon listening on ARTIST_HOST in its namespace, a fresh fan in
# FAN_NS bootstrapping through BOOT_HOST.
run_phase() {  # NAME ARTIST_HOST FAN_NS FAN_LISTEN_HOST BOOT_HOST FAN_API
    local name=$1 a_host=$2 f_ns=$3 f_host=$4 boot=$5 f_api=$6
    local fan="$WORK/fan-$name"
    log "phase $name: starting artist and a fresh fan"
    bk "$f_ns" "$fan" init >/dev/null
    start_daemon "$NS_A" "$WORK/artist" "$A_API" "artist-$name" \
        --listen "/ip4/$a_host/tcp/$P2P_PORT" --listen "/ip4/$a_host/udp/$P2P_PORT/quic-v1"
    # shellcheck disable=SC2046
    start_daemon "$f_ns" "$fan" "$f_api" "fan-$name" \
        --listen "/ip4/$f_host/tcp/0" --listen "/ip4/$f_host/udp/0/quic-v1" $(bootstrap_addrs "$boot" "$PEER_ID")
    wait_catalog "$f_ns" "$fan"
    log "phase $name: $MODE ${#TRACKS[@]} tracks, one after another"
    measure "$f_ns" "$fan" "$WORK/results-$name"
    wait_idle "$f_ns" "$fan"
    log "phase $name: fan $(bk "$f_ns" "$fan" status | grep '^store' | tr -s ' ') after ${#TRACKS[@]} tracks"
    stop_daemons
}

# --------------------------------------------------------------------------- main
if [ "$CHECK_ONLY" = 0 ]; then
    if [ "$BUILD" = 1 ] || [ ! -x "$BUSKER" ]; then
        log "cargo build --release"
        (cd "$ROOT" && cargo build --release) || die "cargo build --release failed"
    fi
    [ -x "$BUSKER" ] || die "no busker binary at $BUSKER"
    if [ "$MODE" = play ] && ! "$BUSKER" play --help >/dev/null 2>&1; then
        die "$BUSKER has no 'play' subcommand (rebuild with --build once it exists, or use --get)"
    fi
fi

WORK="$(mktemp -d /tmp/busker-ttfa.XXXXXX)"
mkdir -p "$WORK/logs"
RTT_MS=$(python3 -c "print(f'{2 * $DELAY_MS:g}')")
SLOW_LABEL="${RTT_MS} ms RTT, ${RATE_MBIT} Mbit/s"

setup_namespaces
log "namespaces up: $NS_A $A_IP <-> $RA_IP $NS_R $RF_IP <-> $F_IP $NS_F (no forwarding)"
link_up "$DELAY_MS" on
log "link: relay delay $DELAY_MS ms each way; rate ${RATE_MBIT} Mbit/s each way by $SHAPER"

if [ "$CHECK_ONLY" = 1 ]; then
    log "measuring the link ($CHECK_BYTES bytes each way)"
    check_link "$CHECK_BYTES"
    log "expected: RTT ~$RTT_MS ms; throughput ~${RATE_MBIT} Mbit/s less ~5% TCP/IP header overhead"
    exit 0
fi

# Distinct tracks: per-channel tones and noise seeds differ for every track. The faint noise
# makes them cost ~1 Mbit/s (2.5 MB per 20 s), like dense CD-quality FLAC. Each is its own
# single-track release, so nothing the daemon may prefetch "next in the release" can warm up
# a later play.
log "making $PLAYS test tracks (${TRACK_SECS} s, FLAC, stereo 44.1 kHz), one single each"
"$BUSKER" --data-dir "$WORK/artist" init --artist "Slowlink Artist" >/dev/null
for i in $(seq "$PLAYS"); do
    fl=$((180 + 23 * i)) fr=$((270 + 31 * i)) dir="$WORK/audio/$(printf %03d "$i")"
    mkdir -p "$dir"
    ffmpeg -nostdin -v error \
        -f lavfi -i "sine=frequency=$fl:sample_rate=44100:duration=$TRACK_SECS" \
        -f lavfi -i "sine=frequency=$fr:sample_rate=44100:duration=$TRACK_SECS" \
        -f lavfi -i "anoisesrc=color=pink:seed=$((2 * i)):amplitude=0.0005:sample_rate=44100:duration=$TRACK_SECS" \
        -f lavfi -i "anoisesrc=color=pink:seed=$((2 * i + 1)):amplitude=0.0005:sample_rate=44100:duration=$TRACK_SECS" \
        -filter_complex "[0][2]amix=inputs=2:normalize=0[l];[1][3]amix=inputs=2:normalize=0[r];[l][r]join=inputs=2:channel_layout=stereo[o]" \
        -map "[o]" -c:a flac -metadata title="Slowlink Track $i" -metadata track=1 \
        -metadata artist="Slowlink Artist" -metadata album="Slowlink Single $i" \
        "$dir/track.flac" || die "ffmpeg failed for track $i"
    "$BUSKER" --data-dir "$WORK/artist" publish "$dir" --title "Slowlink Single $i" >>"$WORK/logs/publish.log" 2>&1 ||
        { tail -n 5 "$WORK/logs/publish.log" >&2; die "busker publish failed for track $i"; }
done
PEER_ID=$("$BUSKER" --data-dir "$WORK/artist" id | awk '$1 == "peer" && $2 == "id" {print $3}')
ARTIST_KEY=$("$BUSKER" --data-dir "$WORK/artist" id | awk '$1 == "artist" && $2 == "key" {print $3}')
[ -n "$PEER_ID" ] && [ -n "$ARTIST_KEY" ] || die "cannot read the artist's peer id / key from 'busker id'"
mapfile -t TRACKS < <("$BUSKER" --data-dir "$WORK/artist" catalog --json |
    python3 -c 'import json,sys; [print(t["id"]) for r in json.load(sys.stdin)["releases"] for t in r["tracks"]]')
[ "${#TRACKS[@]}" = "$PLAYS" ] || die "published ${#TRACKS[@]} tracks, expected $PLAYS"

# Baseline first (fast, and it proves the harness works before the slow phase).
if [ "$BASELINE" = loopback ]; then
    BASE_LABEL="loopback (direct, 127.0.0.1, one namespace)"
    run_phase base 127.0.0.1 "$NS_A" 127.0.0.1 127.0.0.1 "$F2_API"
else
    BASE_LABEL="relay, 0 ms, no rate limit"
    link_up 0 off
    run_phase base "$A_IP" "$NS_F" "$F_IP" "$RF_IP" "$F_API"
    link_up "$DELAY_MS" on
fi

log "checking the slow link before measuring (2.5 MB each way)"
check_link 2500000
run_phase slow "$A_IP" "$NS_F" "$F_IP" "$RF_IP" "$F_API"

# --------------------------------------------------------------------------- report
read -r bn bmed bp90 bmin bmax < <(stats "$WORK/results-base")
read -r sn smed sp90 smin smax < <(stats "$WORK/results-slow")
if [ "$MODE" = play ]; then
    what="time to first audio (ttfa_ms from 'busker play --json')"
    btarget=50 starget=265
else
    what="wall time of 'busker get ID -o DIR' (whole track fetched and written)"
    btarget=- starget=-
fi
echo
echo "busker $what; transport $TRANSPORT; ${TRACK_SECS} s FLAC tracks, each track once; a fresh fan per link"
echo "baseline: $BASE_LABEL"
case "$TRANSPORT" in
    tcp) split="TCP split at the relay, so TCP congestion control sees ~0 ms legs" ;;
    quic) split="QUIC datagrams relayed end to end" ;;
    both) split="TCP split at the relay, QUIC relayed end to end" ;;
esac
echo "slow link: relay.py ${DELAY_MS} ms each way + ${RATE_MBIT} Mbit/s each way ($SHAPER); $split"
echo "  $BASE_LABEL: min $bmin ms, max $bmax ms"
echo "  $SLOW_LABEL: min $smin ms, max $smax ms"
echo
echo "| link | plays | median ms | p90 ms | target |"
echo "|---|---|---|---|---|"
echo "| $BASE_LABEL | $bn | $bmed | $bp90 | $btarget |"
echo "| $SLOW_LABEL | $sn | $smed | $sp90 | $starget |"

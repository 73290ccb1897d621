#!/usr/bin/python3
"""BitTorrent baseline benchmark over loopback (127.0.0.1 only).

Usage:
    bt_bench.py --dir DIR --fans N [--client libtorrent|aria2c] [--json]

Creates a (v1, private, multi-file) .torrent of every file in DIR, runs a
local opentracker (or, if it is not installed, uses direct peer connections),
seeds DIR from one libtorrent session and lets N leechers download it into
fresh temp dirs. Measures per-leecher completion time, the time until all are
done, the seeder's uploaded payload / release size, verifies every downloaded
file by sha256 against DIR, and cleans everything up. A hard overall timeout
(--timeout, default 600 s) guarantees it stops by itself.

No packet leaves the machine: every socket is bound to / aimed at 127.0.0.1;
DHT, LSD, UPnP, NAT-PMP, PEX (and the ut_pex / ut_metadata plugins) are off,
the torrent is flagged private and has no web seeds.

Needs the Debian python3-libtorrent module (run setup.sh). The module lives in
the system interpreter's dist-packages; if this script is started with another
python3 (e.g. pyenv) it re-executes itself with /usr/bin/python3.

MB = 1,000,000 bytes throughout.
"""

import argparse
import ctypes
import hashlib
import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import queue

try:
    import libtorrent as lt
except ImportError:
    if os.path.realpath(sys.executable) != os.path.realpath("/usr/bin/python3") \
            and os.path.exists("/usr/bin/python3") \
            and not os.environ.get("BT_BENCH_REEXEC"):
        os.environ["BT_BENCH_REEXEC"] = "1"
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    sys.stderr.write("bt_bench: python3-libtorrent is missing; run benches/bittorrent/setup.sh\n")
    sys.exit(2)

LOOPBACK = "127.0.0.1"
MB = 1_000_000
SCRIPT = os.path.abspath(__file__)


# --------------------------------------------------------------------------
# helpers

def log(msg):
    sys.stderr.write("[bt_bench %7.2f] %s\n" % (time.monotonic() - _T_START, msg))
    sys.stderr.flush()


_T_START = time.monotonic()


def _pdeathsig():
    """preexec_fn: child gets SIGKILL if this (parent) process dies."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass
    os.setpgrp()  # own process group, so a ^C to us is handled by our cleanup


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((LOOPBACK, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def free_port_tcp_udp():
    for _ in range(50):
        p = free_port()
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.bind((LOOPBACK, p))
            return p
        except OSError:
            continue
        finally:
            u.close()
    raise RuntimeError("no free port")


def busy_cpu_s():
    """CPU seconds all cores have spent busy since boot (/proc/stat: user, nice, system,
    irq, softirq), so a window's figure covers the seeder, every leecher and the kernel's
    network work, as busker's bench reports it."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
        return sum(int(fields[i]) for i in (1, 2, 3, 6, 7)) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


def wait_tcp(port, deadline):
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((LOOPBACK, port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def list_files(root):
    """Relative paths of all regular files under root (sorted)."""
    out = []
    for dp, dns, fns in os.walk(root):
        dns.sort()
        for fn in sorted(fns):
            p = os.path.join(dp, fn)
            if os.path.isfile(p) and not os.path.islink(p):
                out.append(os.path.relpath(p, root))
    return sorted(out)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(4 << 20)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def tree_digest(root):
    return {rel: (os.path.getsize(os.path.join(root, rel)), sha256_file(os.path.join(root, rel)))
            for rel in list_files(root)}


# --------------------------------------------------------------------------
# libtorrent settings (shared by seeder and libtorrent leechers)

def lt_settings(listen_port=0):
    """Loopback-only, no discovery, tuned for throughput (fair baseline).

    With BT_BENCH_LT_DEFAULTS=1 (set by --lt-defaults, inherited by leechers): libtorrent's
    default settings instead, with only what keeps it on loopback, on TCP and unlimited.
    """
    defaults = os.environ.get("BT_BENCH_LT_DEFAULTS") == "1"
    s = lt.default_settings() if defaults else lt.high_performance_seed()
    s.update({
        # ---- loopback only -------------------------------------------------
        "listen_interfaces": "%s:%d" % (LOOPBACK, listen_port),
        "outgoing_interfaces": LOOPBACK,
        "enable_dht": False,
        "dht_bootstrap_nodes": "",
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_ip_notifier": False,
        "announce_to_all_trackers": False,
        # ---- transport ---------------------------------------------------
        # uTP over loopback is much slower than TCP in libtorrent; use TCP only.
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        "enable_outgoing_tcp": True,
        "enable_incoming_tcp": True,
        # accept encrypted *handshakes* (aria2c tries MSE first) but never
        # RC4 the payload, and don't originate encrypted connections
        "in_enc_policy": int(lt.enc_policy.pe_enabled),
        "out_enc_policy": int(lt.enc_policy.pe_disabled),
        "allowed_enc_level": int(lt.enc_level.pe_plaintext),
        "prefer_rc4": False,
        # all peers share 127.0.0.1, differing only by port
        "allow_multiple_connections_per_ip": True,
        # ---- no limits -------------------------------------------------------
        "upload_rate_limit": 0,
        "download_rate_limit": 0,
        "connections_limit": 8000,
        "unchoke_slots_limit": -1,
        "choking_algorithm": 0,           # fixed_slots_choker (with -1 = unlimited)
        "peer_turnover": 0,
        "smooth_connects": False,
        "connection_speed": 500,
        # ---- buffers / queues ------------------------------------------------
        # high_performance_seed() already raises the send buffer watermarks
        # (3 MiB, factor 150, not-sent low watermark 512 KiB); larger values
        # (32 MiB) measured no better/slightly worse here. More request queue:
        "max_out_request_queue": 2000,
        "max_allowed_in_request_queue": 4000,
        "max_queued_disk_bytes": 32 << 20,
        # 2 cores: fewer disk threads than the preset's 8 measured faster
        "aio_threads": 4,
        # ---- alerts ------------------------------------------------------------
        "alert_mask": int(lt.alert.category_t.status_notification
                          | lt.alert.category_t.error_notification
                          | lt.alert.category_t.tracker_notification
                          | lt.alert.category_t.storage_notification),
        "alert_queue_size": 10000,
    })
    if defaults:
        # back to libtorrent's own encryption policy, request queues and disk threads
        d = lt.default_settings()
        for k in ("in_enc_policy", "out_enc_policy", "allowed_enc_level", "prefer_rc4", "max_out_request_queue",
                  "max_allowed_in_request_queue", "max_queued_disk_bytes", "aio_threads"):
            s[k] = d[k]
    # experiment hook: BT_BENCH_LT_SET='{"aio_threads": 4}' (inherited by leechers)
    extra = os.environ.get("BT_BENCH_LT_SET")
    if extra:
        s.update(json.loads(extra))
    return s


def lt_session(listen_port=0):
    # flags=0: no default plugins, i.e. no ut_pex, ut_metadata, smart_ban
    return lt.session(lt_settings(listen_port), 0)


def lt_add(ses, torrent_path, save_path):
    atp = lt.add_torrent_params()
    atp.ti = lt.torrent_info(torrent_path)
    atp.save_path = save_path
    # no DHT/LSD/PEX for this torrent either (private flag also implies it)
    flags = atp.flags
    for name in ("disable_dht", "disable_lsd", "disable_pex"):
        f = getattr(lt.torrent_flags, name, None)
        if f is not None:
            flags |= f
    for name in ("auto_managed", "paused"):
        f = getattr(lt.torrent_flags, name, None)
        if f is not None:
            flags &= ~f
    atp.flags = flags
    return ses.add_torrent(atp)


def drain_alerts(ses, on_alert=None):
    for a in ses.pop_alerts():
        if on_alert:
            on_alert(a)


# --------------------------------------------------------------------------
# leecher child process (libtorrent)

def leecher_main(torrent_path, save_path, deadline_s):
    """Protocol on stdin/stdout (one line each):
       child -> 'ready PORT' ; parent -> 'go [PEERPORT ...]'
       child -> 'done EPOCH_SECONDS' ; parent -> 'quit'
    """
    deadline = time.monotonic() + deadline_s
    ses = lt_session(0)
    port = ses.listen_port()
    print("ready %d" % port, flush=True)

    lines = queue.Queue()

    def reader():
        for line in sys.stdin:
            lines.put(line.strip())
        lines.put("quit")
    threading.Thread(target=reader, daemon=True).start()

    cmd = lines.get(timeout=max(1.0, deadline - time.monotonic()))
    if not cmd.startswith("go"):
        return 1
    peers = [int(p) for p in cmd.split()[1:]]
    h = lt_add(ses, torrent_path, save_path)
    for p in peers:  # tracker-less fallback: direct connections
        if p != port:
            h.connect_peer((LOOPBACK, p))

    done = False
    errors = []
    while time.monotonic() < deadline:
        a = ses.wait_for_alert(50)
        if a is not None:
            for al in ses.pop_alerts():
                if isinstance(al, lt.torrent_finished_alert) and not done:
                    done = True
                    print("done %.6f" % time.time(), flush=True)
                elif isinstance(al, (lt.torrent_error_alert, lt.file_error_alert)):
                    errors.append(al.message())
                    print("error %s" % al.message(), flush=True)
        if not done:
            st = h.status()
            if st.is_seeding:
                done = True
                print("done %.6f" % time.time(), flush=True)
        try:
            cmd = lines.get_nowait()
        except queue.Empty:
            continue
        if cmd == "quit":
            break
    st = h.status()
    print("stats down=%d up=%d" % (st.total_payload_download, st.total_payload_upload), flush=True)
    ses.remove_torrent(h)
    del ses
    return 0 if done else 1


# --------------------------------------------------------------------------
# the benchmark

class ChildLines:
    """Line reader over several children's stdout pipes (raw fds, no
    buffering surprises). poll() yields (index, line) and (index, None) at EOF."""

    def __init__(self, procs):
        self.sel = selectors.DefaultSelector()
        self.buf = {}
        self.open = 0
        for i, p in enumerate(procs):
            fd = p.stdout.fileno()
            self.sel.register(fd, selectors.EVENT_READ, i)
            self.buf[fd] = b""
            self.open += 1

    def poll(self, timeout):
        out = []
        if not self.open:
            time.sleep(timeout)
            return out
        for key, _ in self.sel.select(timeout=timeout):
            fd, i = key.fd, key.data
            chunk = os.read(fd, 65536)
            if not chunk:
                self.sel.unregister(fd)
                self.open -= 1
                out.append((i, None))
                continue
            self.buf[fd] += chunk
            *done, self.buf[fd] = self.buf[fd].split(b"\n")
            out.extend((i, l.decode().strip()) for l in done)
        return out


class Bench:
    def __init__(self, args):
        self.args = args
        self.procs = []          # (Popen, name)
        self.tracker_proc = None
        self.workdir = None
        self.seeder = None
        self.seed_handle = None

    # ---- cleanup -----------------------------------------------------------
    def cleanup(self):
        for p, name in self.procs + ([(self.tracker_proc, "opentracker")] if self.tracker_proc else []):
            if p.poll() is None:
                try:
                    p.terminate()
                except Exception:
                    pass
        t_end = time.monotonic() + 5
        for p, name in self.procs + ([(self.tracker_proc, "opentracker")] if self.tracker_proc else []):
            try:
                p.wait(timeout=max(0.1, t_end - time.monotonic()))
            except Exception:
                try:
                    p.kill()
                    p.wait(timeout=2)
                except Exception:
                    pass
        if self.tracker_proc is not None:
            # opentracker itself runs below `timeout`; make sure it is gone too
            tpid = getattr(self, "tracker_child_pid", None)
            if tpid:
                try:
                    os.kill(tpid, signal.SIGKILL)
                except OSError:
                    pass
        if self.seeder is not None:
            try:
                if self.seed_handle is not None:
                    self.seeder.remove_torrent(self.seed_handle)
            except Exception:
                pass
            self.seeder = None
        if self.workdir and not self.args.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # ---- tracker -------------------------------------------------------------
    def start_tracker(self, info_hash_hex):
        exe = shutil.which("opentracker")
        if not exe or self.args.no_tracker:
            return None
        tdir = os.path.join(self.workdir, "tracker")
        os.makedirs(tdir)
        os.chmod(self.workdir, 0o755)
        os.chmod(tdir, 0o755)
        wl = os.path.join(tdir, "whitelist.txt")
        with open(wl, "w") as f:        # Debian's opentracker is whitelist-only
            f.write(info_hash_hex + "\n")
        os.chmod(wl, 0o644)
        port = free_port_tcp_udp()
        cmd = ["timeout", "-k", "5", str(int(self.args.timeout) + 30),
               exe, "-i", LOOPBACK, "-p", str(port), "-P", str(port),
               # chroot (as root) into tdir, so the whitelist path is relative
               "-d", tdir, "-w", os.path.basename(wl)]
        self.tracker_log = open(os.path.join(self.workdir, "opentracker.log"), "w")
        self.tracker_proc = subprocess.Popen(cmd, cwd=tdir, stdin=subprocess.DEVNULL,
                                             stdout=self.tracker_log, stderr=subprocess.STDOUT,
                                             preexec_fn=_pdeathsig)
        if not wait_tcp(port, time.monotonic() + 10):
            raise RuntimeError("opentracker did not start on port %d" % port)
        try:
            out = subprocess.run(["pgrep", "-P", str(self.tracker_proc.pid)],
                                 capture_output=True, text=True).stdout.split()
            self.tracker_child_pid = int(out[0]) if out else None
        except Exception:
            self.tracker_child_pid = None
        log("opentracker on %s:%d (tcp+udp), whitelist %s" % (LOOPBACK, port, info_hash_hex))
        return "http://%s:%d/announce" % (LOOPBACK, port)

    # ---- torrent -----------------------------------------------------------
    def make_torrent(self, root):
        root = os.path.abspath(root)
        fs = lt.file_storage()
        lt.add_files(fs, root)
        if fs.num_files() == 0:
            raise RuntimeError("no files in %s" % root)
        piece = self.args.piece_kib * 1024
        # v1-only: aria2c 1.36 has no BitTorrent v2 support, and v1 avoids the
        # pad files of hybrid torrents.
        ct = lt.create_torrent(fs, piece, lt.create_torrent.v1_only)
        ct.set_priv(True)
        ct.set_creator("busker bt_bench")
        lt.set_piece_hashes(ct, os.path.dirname(root))
        return ct, fs

    # ---- run -----------------------------------------------------------------
    def run(self):
        a = self.args
        root = os.path.abspath(a.dir)
        self.workdir = tempfile.mkdtemp(prefix="bt_bench.")
        hard_deadline = time.monotonic() + a.timeout

        def remaining():
            return hard_deadline - time.monotonic()

        log("hashing source %s" % root)
        src = tree_digest(root)
        total_bytes = sum(sz for sz, _ in src.values())
        log("%d files, %d bytes" % (len(src), total_bytes))

        t0 = time.monotonic()
        ct, fs = self.make_torrent(root)
        # need the info-hash before the announce URL is known -> build twice is
        # wasteful; instead add the tracker after hashing (does not change the
        # info-hash: announce is outside the info dict)
        ih = hashlib.sha1(lt.bencode(ct.generate()[b"info"])).hexdigest()
        announce = self.start_tracker(ih)
        self.tracker_url = announce
        if announce:
            ct.add_tracker(announce, 0)
        tpath = os.path.join(self.workdir, "release.torrent")
        with open(tpath, "wb") as f:
            f.write(lt.bencode(ct.generate()))
        ti = lt.torrent_info(tpath)
        piece_len = ti.piece_length()
        log("torrent: %d pieces x %d KiB, info-hash %s, made in %.2fs"
            % (ti.num_pieces(), piece_len // 1024, ih, time.monotonic() - t0))

        # ---- seeder ----
        self.seeder = lt_session(0)
        seed_port = self.seeder.listen_port()
        self.seed_handle = lt_add(self.seeder, tpath, os.path.dirname(root))
        log("seeder listening on %s:%d, checking files" % (LOOPBACK, seed_port))
        announced = announce is None
        tracker_errors = 0
        while remaining() > 0:
            self.seeder.wait_for_alert(100)
            for al in self.seeder.pop_alerts():
                if isinstance(al, lt.tracker_reply_alert):
                    announced = True
                elif isinstance(al, (lt.tracker_error_alert,)):
                    log("seeder tracker error: %s" % al.message())
                    tracker_errors += 1
                    if tracker_errors >= 3:
                        raise RuntimeError("seeder cannot announce to the local tracker")
                    self.seed_handle.force_reannounce(0, -1)
                elif isinstance(al, (lt.torrent_error_alert, lt.file_error_alert)):
                    raise RuntimeError("seeder: %s" % al.message())
            st = self.seed_handle.status()
            if st.is_seeding and announced:
                break
        else:
            raise TimeoutError("seeder did not become ready")
        if not self.seed_handle.status().is_seeding:
            raise RuntimeError("seeder is not seeding (data does not match torrent?)")
        log("seeder ready (seeding%s)" % (", announced to tracker" if announce else ", no tracker"))

        # ---- leechers ----
        ldirs = []
        for i in range(a.fans):
            d = os.path.join(self.workdir, "leech%02d" % i)
            os.makedirs(d)
            ldirs.append(d)

        if a.client == "libtorrent":
            res = self.run_lt_leechers(tpath, ldirs, seed_port, remaining)
        else:
            res = self.run_aria2_leechers(tpath, ldirs, seed_port, announce, remaining)
        t_start, done_at, seed_up_at_done = res[:3]
        exit_at = res[3] if len(res) > 3 else None

        st = self.seed_handle.status()
        seed_up_final = st.total_payload_upload

        # ---- verify ----
        log("verifying downloads (sha256)")
        name = ti.name()
        bad = []
        for i, d in enumerate(ldirs):
            got_root = os.path.join(d, name)
            if not os.path.isdir(got_root):
                bad.append("leecher %d: %s missing" % (i, got_root))
                continue
            got = tree_digest(got_root)
            if got != src:
                missing = sorted(set(src) - set(got))
                extra = sorted(set(got) - set(src))
                diff = sorted(k for k in set(src) & set(got) if src[k] != got[k])
                bad.append("leecher %d: missing=%s extra=%s differ=%s" % (i, missing[:5], extra[:5], diff[:5]))
        if bad:
            raise RuntimeError("verification FAILED: " + "; ".join(bad))
        log("all %d leechers byte-identical to %s" % (a.fans, root))

        secs = [t - t_start for t in done_at]
        each = [total_bytes / s / MB for s in secs]
        all_done = max(secs)
        result = {
            "client": a.client,
            "fans": a.fans,
            "bytes": total_bytes,
            "seconds_all_done": round(all_done, 4),
            "mb_per_s_each": [round(x, 2) for x in each],
            "mb_per_s_min": round(min(each), 2),
            "seeder_upload_ratio": round(seed_up_at_done / total_bytes, 4),
            "system_cpu_s": round(getattr(self, "cpu_during", float("nan")), 2),
            # extras
            "seconds_each": [round(s, 4) for s in secs],
            "mb_per_s_aggregate": round(a.fans * total_bytes / all_done / MB, 2),
            "seeder_upload_ratio_final": round(seed_up_final / total_bytes, 4),
            "piece_size": piece_len,
            "files": len(src),
            "tracker": "opentracker" if announce else "none (direct connect)",
            "libtorrent": lt.__version__,
        }
        if exit_at is not None:
            result["seconds_each_exit"] = [round(t - t_start, 4) for t in exit_at]
        return result

    # ---- libtorrent leechers -------------------------------------------------
    def run_lt_leechers(self, tpath, ldirs, seed_port, remaining):
        kids = []
        for i, d in enumerate(ldirs):
            p = subprocess.Popen([sys.executable, SCRIPT, "--_leecher", tpath, d,
                                  str(int(max(5, remaining())))],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=open(os.path.join(self.workdir, "leech%02d.log" % i), "w"),
                                 bufsize=0, preexec_fn=_pdeathsig)
            self.procs.append((p, "leecher%d" % i))
            kids.append(p)
        lines = ChildLines(kids)

        def send(p, text):
            try:
                p.stdin.write((text + "\n").encode())
                p.stdin.flush()
            except OSError:
                pass

        ports = [None] * len(kids)
        while None in ports:
            if remaining() <= 0:
                raise TimeoutError("leechers did not start")
            for i, line in lines.poll(0.1):
                if line is None:
                    raise RuntimeError("leecher %d exited during start-up (see its log)" % i)
                if line.startswith("ready"):
                    ports[i] = int(line.split()[1])
        log("%d libtorrent leechers ready on ports %s" % (len(kids), ports))
        go = "go"
        if self.tracker_url is None:   # tracker-less: everyone dials everyone
            go += " " + " ".join(str(x) for x in [seed_port] + ports)
        t_start = time.time()
        cpu0 = busy_cpu_s()
        for p in kids:
            send(p, go)
        done_at = [None] * len(kids)
        stats = {}
        while None in done_at:
            if remaining() <= 0:
                raise TimeoutError("timeout: %d/%d leechers done"
                                   % (sum(x is not None for x in done_at), len(kids)))
            for i, line in lines.poll(0.05):
                if line is None:
                    if done_at[i] is None:
                        raise RuntimeError("leecher %d exited early (see its log)" % i)
                elif line.startswith("done"):
                    done_at[i] = float(line.split()[1])
                    log("leecher %d done after %.3fs" % (i, done_at[i] - t_start))
                elif line.startswith("error"):
                    log("leecher %d: %s" % (i, line))
            drain_alerts(self.seeder)
        self.cpu_during = busy_cpu_s() - cpu0
        seed_up_at_done = self.seed_handle.status().total_payload_upload
        for p in kids:
            send(p, "quit")
        end = time.monotonic() + max(1, min(20, remaining()))
        while lines.open and time.monotonic() < end:
            for i, line in lines.poll(0.05):
                if line and line.startswith("stats"):
                    log("leecher %d %s" % (i, line))
        for p in kids:
            try:
                p.wait(timeout=max(0.1, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
        return t_start, done_at, seed_up_at_done

    # ---- aria2c leechers -------------------------------------------------------
    def run_aria2_leechers(self, tpath, ldirs, seed_port, announce, remaining):
        a = self.args
        exe = shutil.which("aria2c")
        if not exe:
            raise RuntimeError("aria2c not installed; run setup.sh")
        if announce is None:
            raise RuntimeError("aria2c cannot be given peers directly; it needs the "
                               "local opentracker (missing, or --no-tracker given)")
        kids = []
        cmds = []
        used = {seed_port}
        for i, d in enumerate(ldirs):
            port = free_port()
            while port in used:
                port = free_port()
            used.add(port)
            hook = os.path.join(self.workdir, "hook%02d.sh" % i)
            with open(hook, "w") as f:
                f.write("#!/bin/sh\ndate +%%s.%%N > '%s'\n" % os.path.join(self.workdir, "done%02d" % i))
            os.chmod(hook, 0o755)
            cmd = [exe,
                   "--no-conf=true",
                   "--dir=" + d,
                   "--seed-time=0",
                   "--bt-enable-lpd=false",
                   "--enable-dht=false", "--enable-dht6=false",
                   "--enable-peer-exchange=false",
                   "--bt-tracker=" + announce,
                   "--listen-port=%d" % port,
                   "--interface=" + LOOPBACK,
                   "--disable-ipv6=true",
                   "--file-allocation=none",
                   "--bt-max-peers=0",
                   "--bt-request-peer-speed-limit=0",
                   "--max-overall-upload-limit=0", "--max-upload-limit=0",
                   "--max-overall-download-limit=0", "--max-download-limit=0",
                   "--bt-require-crypto=false", "--bt-min-crypto-level=plain",
                   "--bt-save-metadata=false", "--bt-metadata-only=false",
                   "--follow-torrent=false",
                   "--check-integrity=false",
                   "--allow-overwrite=true",
                   "--auto-save-interval=0",
                   "--summary-interval=0",
                   "--console-log-level=warn",
                   "--show-console-readout=false",
                   "--enable-rpc=false",
                   "--on-bt-download-complete=" + hook,
                   "--stop=%d" % int(max(5, remaining())),   # aria2's own hard stop
                   "--torrent-file=" + tpath]
            cmds.append(cmd)
        t_start = time.time()
        cpu0 = busy_cpu_s()
        for i, cmd in enumerate(cmds):
            p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                 stdout=open(os.path.join(self.workdir, "aria2c%02d.log" % i), "w"),
                                 stderr=subprocess.STDOUT, preexec_fn=_pdeathsig)
            self.procs.append((p, "aria2c%d" % i))
            kids.append(p)
        log("%d aria2c leechers started" % len(kids))
        exit_at = [None] * len(kids)
        seed_up_at_done = None
        while None in exit_at:
            if remaining() <= 0:
                raise TimeoutError("timeout: %d/%d aria2c done" % (sum(x is not None for x in exit_at), len(kids)))
            for i, p in enumerate(kids):
                if exit_at[i] is None and p.poll() is not None:
                    exit_at[i] = time.time()
                    if p.returncode != 0:
                        with open(os.path.join(self.workdir, "aria2c%02d.log" % i)) as f:
                            tail = f.read()[-2000:]
                        raise RuntimeError("aria2c %d exited with %d:\n%s" % (i, p.returncode, tail))
                    log("aria2c %d exited after %.3fs" % (i, exit_at[i] - t_start))
            drain_alerts(self.seeder)
            time.sleep(0.01)
        self.cpu_during = busy_cpu_s() - cpu0  # to the last exit, start-up included
        seed_up_at_done = self.seed_handle.status().total_payload_upload
        # completion = the on-bt-download-complete hook's timestamp (all pieces
        # hash-verified by aria2c); fall back to process exit time.
        done_at = []
        for i in range(len(kids)):
            fn = os.path.join(self.workdir, "done%02d" % i)
            try:
                with open(fn) as f:
                    t = float(f.read().strip())
                self.hook_lag = getattr(self, "hook_lag", []) + [exit_at[i] - t]
                done_at.append(min(t, exit_at[i]))
            except (OSError, ValueError):
                done_at.append(exit_at[i])
        if getattr(self, "hook_lag", None):
            log("aria2c exit came %.3f..%.3fs after its download-complete hook"
                % (min(self.hook_lag), max(self.hook_lag)))
        return t_start, done_at, seed_up_at_done, exit_at


def human(r):
    lines = [
        "BitTorrent baseline: client=%s fans=%d tracker=%s piece=%d KiB libtorrent=%s"
        % (r["client"], r["fans"], r["tracker"], r["piece_size"] // 1024, r["libtorrent"]),
        "release: %d files, %d bytes (%.1f MB)" % (r["files"], r["bytes"], r["bytes"] / MB),
        "all leechers done (verified) after %.3f s" % r["seconds_all_done"],
    ]
    for i, (s, m) in enumerate(zip(r["seconds_each"], r["mb_per_s_each"])):
        lines.append("  leecher %d: %.3f s  %.1f MB/s" % (i, s, m))
    lines.append("min per-leecher %.1f MB/s, aggregate %.1f MB/s" % (r["mb_per_s_min"], r["mb_per_s_aggregate"]))
    if "seconds_each_exit" in r:
        lines.append("  (aria2c process exits came at %s s; completion is taken from its"
                     " --on-bt-download-complete hook)" % r["seconds_each_exit"])
    lines.append("seeder uploaded payload / release size = %.3f" % r["seeder_upload_ratio"])
    return "\n".join(lines)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--_leecher":
        sys.exit(leecher_main(sys.argv[2], sys.argv[3], float(sys.argv[4])))

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", required=True, help="directory to publish (all files, recursively)")
    ap.add_argument("--fans", type=int, required=True, help="number of leechers")
    ap.add_argument("--client", choices=["libtorrent", "aria2c"], default="libtorrent")
    ap.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    ap.add_argument("--piece-kib", type=int, default=256,
                    help="piece size in KiB (default 256; 0 = libtorrent's automatic choice)")
    ap.add_argument("--timeout", type=float, default=600, help="hard overall timeout, seconds (default 600)")
    ap.add_argument("--no-tracker", action="store_true",
                    help="don't run opentracker; libtorrent leechers connect_peer() directly")
    ap.add_argument("--keep", action="store_true", help="keep the temp work dir (for debugging)")
    ap.add_argument("--lt-defaults", action="store_true",
                    help="libtorrent with its default settings instead of the tuned high_performance_seed preset")
    args = ap.parse_args()
    if args.fans < 1:
        ap.error("--fans must be >= 1")
    if not os.path.isdir(args.dir):
        ap.error("--dir %s is not a directory" % args.dir)

    if args.lt_defaults:
        os.environ["BT_BENCH_LT_DEFAULTS"] = "1"
    bench = Bench(args)

    def on_alarm(signum, frame):
        raise TimeoutError("hard timeout of %.0f s reached" % args.timeout)

    def on_term(signum, frame):
        raise KeyboardInterrupt("signal %d" % signum)

    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGTERM, on_term)
    signal.alarm(int(args.timeout) + 20)   # backstop for anything that blocks
    rc = 0
    result = None
    try:
        result = bench.run()
    except BaseException as e:  # noqa: BLE001 - always clean up, report
        log("FAILED: %s: %s" % (type(e).__name__, e))
        rc = 1
    finally:
        signal.alarm(int(60))   # cleanup must not hang either
        try:
            bench.cleanup()
        finally:
            signal.alarm(0)
    if result is not None:
        print(human(result), flush=True)
        if args.json:
            print(json.dumps(result), flush=True)
    elif args.json:
        print(json.dumps({"client": args.client, "fans": args.fans, "error": True}), flush=True)
    sys.exit(rc)


if __name__ == "__main__":
    main()

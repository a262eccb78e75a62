#!/usr/bin/env bash
# The Debian package and the systemd unit, as an operator gets them (root, release
# binaries built; run under `flock /tmp/relay-netns.lock`):
#   1. scripts/package-deb.sh builds the .deb; its contents, version (Cargo's) and conffile
#   2. it installs into a clean root: an overlay of / (copy-on-write over a tmpfs, in a
#      private mount namespace; the host's files and dpkg database stay untouched) entered
#      with chroot; the maintainer scripts create the relayd system user, the state
#      directory and the configuration's ownership; an upgrade keeps an edited conffile
#   3. `systemd-analyze verify` accepts the unit
#   4. relayd runs as the unprivileged relayd user with exactly the unit's capabilities
#      and limits (AmbientCapabilities=, CapabilityBoundingSet=, LimitNOFILE=,
#      LimitMEMLOCK=, parsed from the installed unit so they cannot drift), in the network
#      namespaces of scripts/netns.sh: io_uring and XDP backends each relay an ng
#      offer/answer and media both ways (rtpgen)
#   5. one capability less (CAP_BPF, then CAP_NET_RAW): relayd refuses to start with XDP
#      and its error names the missing capability
#   6. sd_notify: a listener on NOTIFY_SOCKET receives READY=1, STATUS=, WATCHDOG=1; SIGHUP
#      reloads the edited relayd.toml (applied and needs-a-restart keys logged, RELOADING=1
#      then READY=1), SIGTERM sends STOPPING=1
if [[ -z ${RELAYD_PKG_MNTNS:-} && $(id -u) -eq 0 ]]; then
  # the overlay's mounts stay in a private mount namespace: nothing leaks to the host
  exec unshare --mount --propagation private env RELAYD_PKG_MNTNS=1 "$0" "$@"
fi
source "$(dirname "$0")/lib.sh"
t_begin package root netns
root=$work/root
# the clean root's mounts go before lib.sh removes $work (rm -rf would descend into them)
pkg_cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  umount -R -l "$root" 2>/dev/null || true
  umount -l "$work/cow" 2>/dev/null || true
  if findmnt -rn -o TARGET | grep -q "^$work"; then
    echo "$T_NAME: mounts left under $work; not removing it" >&2
    KEEP_WORK=1
  fi
  t_cleanup
}
trap pkg_cleanup EXIT
for b in relayd relayctl rtpgen; do
  [[ -x target/release/$b ]] || fail "target/release/$b missing: cargo build --release -p relayd -p relayctl -p bench"
done
command -v systemd-analyze >/dev/null || apt-get install -y -qq systemd >/dev/null

# 1. the package
deb=$(scripts/package-deb.sh --no-build "$work/deb" 2>"$work/package-deb.log") || fail "package-deb.sh"
version=$(cargo metadata --no-deps --format-version 1 | python3 -c '
import json, sys
print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "relayd"))')
[[ $(dpkg-deb -f "$deb" Version) == "$version" ]] || fail "package version $(dpkg-deb -f "$deb" Version), Cargo $version"
dpkg-deb -c "$deb" >"$work/contents.txt"
for f in ./usr/bin/relayd ./usr/bin/relayctl ./usr/bin/rtpgen ./lib/systemd/system/relayd.service \
  ./etc/relayd/relayd.toml; do
  grep -q " $f\$" "$work/contents.txt" || fail "$f not in the package"
done
[[ $(dpkg-deb -I "$deb" conffiles) == /etc/relayd/relayd.toml ]] || fail "relayd.toml is not a conffile"
ok "$(basename "$deb") ($(du -k "$deb" | cut -f1) KiB): 3 binaries, the unit, relayd.toml as a conffile, version $version from Cargo"

# 2. a clean root: / copy-on-write, /proc, /dev, /run and /tmp its own
mkdir -p "$work/cow" "$root"
mount -t tmpfs -o size=512m tmpfs "$work/cow"
mkdir -p "$work/cow/upper" "$work/cow/work"
mount -t overlay overlay -o "lowerdir=/,upperdir=$work/cow/upper,workdir=$work/cow/work" "$root"
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
mount -t tmpfs tmpfs "$root/run"
mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
in_root() { chroot "$root" "$@"; }
in_root getent passwd relayd >/dev/null && fail "the clean root already has a relayd user"
in_root dpkg -s relayd >/dev/null 2>&1 && fail "relayd already installed in the clean root"
cp "$deb" "$root/tmp/relayd.deb"
in_root dpkg -i /tmp/relayd.deb >"$work/dpkg.log" 2>&1 || fail "dpkg -i"
uid=$(in_root id -u relayd) || fail "no relayd user after install"
[[ $uid -lt 1000 && $(in_root id -gn relayd) == relayd ]] || fail "relayd is not a system user ($uid)"
[[ $(in_root stat -c '%U:%G %a' /var/lib/relayd) == "relayd:relayd 750" ]] \
  || fail "state dir: $(in_root stat -c '%U:%G %a' /var/lib/relayd)"
[[ $(in_root stat -c '%U:%G %a' /etc/relayd/relayd.toml) == "root:relayd 640" ]] \
  || fail "relayd.toml: $(in_root stat -c '%U:%G %a' /etc/relayd/relayd.toml)"
[[ $(in_root relayd --version) == "relayd $version" ]] || fail "relayd --version: $(in_root relayd --version)"
in_root relayctl --help >/dev/null && in_root rtpgen --help >/dev/null || fail "relayctl/rtpgen do not run"
# an upgrade keeps the operator's edit of the conffile (and asks nothing: the packaged
# file did not change)
echo "# edited by the operator" >>"$root/etc/relayd/relayd.toml"
up=$(RELAYD_DEB_VERSION="$version+up1" scripts/package-deb.sh --no-build "$work/deb-up" 2>>"$work/package-deb.log") \
  || fail "package-deb.sh (upgrade)"
cp "$up" "$root/tmp/relayd-up.deb"
in_root dpkg -i /tmp/relayd-up.deb >>"$work/dpkg.log" 2>&1 </dev/null || fail "dpkg -i (upgrade)"
[[ $(in_root dpkg-query -W -f='${Version}' relayd) == "$version+up1" ]] || fail "not upgraded"
tail -n1 "$root/etc/relayd/relayd.toml" | grep -q "edited by the operator" || fail "the upgrade replaced the edited conffile"
[[ $(in_root id -u relayd) == "$uid" ]] || fail "the upgrade changed the relayd user"
[[ -z $(in_root find /etc /usr /var -xdev -user relayd -not -path '/var/lib/relayd*' 2>/dev/null) ]] \
  || fail "files owned by relayd outside its state dir"
ok "installed in a clean root: system user relayd (uid $uid), /var/lib/relayd relayd:relayd 0750, relayd.toml root:relayd 0640, relayd $version runs; the upgrade to $version+up1 keeps the edited conffile and the user"

# 3. the unit
unit=$root/lib/systemd/system/relayd.service
in_root systemd-analyze verify /lib/systemd/system/relayd.service >"$work/verify.log" 2>&1 \
  || fail "systemd-analyze verify: $(cat "$work/verify.log")"
! grep -qi "relayd.service" "$work/verify.log" || fail "systemd-analyze verify warns: $(cat "$work/verify.log")"
key() { sed -n "s/^$1=//p" "$unit" | tail -n1; }
[[ $(key Type) == notify && -n $(key WatchdogSec) && $(key User) == relayd ]] || fail "unit: Type, WatchdogSec, User"
ambient=$(key AmbientCapabilities)
bounding=$(key CapabilityBoundingSet)
[[ -n $ambient && $ambient == "$bounding" ]] || fail "unit: AmbientCapabilities ($ambient) != CapabilityBoundingSet ($bounding)"
nofile=$(key LimitNOFILE)
memlock=$(key LimitMEMLOCK)
[[ $memlock == infinity ]] && memlock=unlimited
# systemd (PID 1) can always raise a limit; a test box whose root lacks CAP_SYS_RESOURCE
# cannot: there the limits stay at the hard ones, and CAP_IPC_LOCK stands in for
# LimitMEMLOCK=infinity (the kernel skips the AF_XDP UMEM's memlock accounting for it)
limits_note=
if ! prlimit --nofile="$nofile" true 2>/dev/null; then
  limits_note+=" LimitNOFILE=$nofile not settable here (no CAP_SYS_RESOURCE): $(ulimit -Hn);"
  nofile=$(ulimit -Hn)
fi
memlock_substitute=
if ! prlimit --memlock="$memlock" true 2>/dev/null; then
  limits_note+=" LimitMEMLOCK=$memlock not settable here: $(ulimit -Hl) KiB, CAP_IPC_LOCK instead for XDP;"
  memlock=$(($(ulimit -Hl) * 1024))
  memlock_substitute=CAP_IPC_LOCK
fi
read -r -a exec_start <<<"$(key ExecStart)"
ok "systemd-analyze verify: clean; Type=notify, WatchdogSec=$(key WatchdogSec), User=relayd, capabilities: $ambient"

# 4. relayd as the unit runs it, in the relay namespace
setpriv_caps() { # CAPS... -> setpriv's list: -all,+net_admin,...
  local l=-all c
  for c in "$@"; do l+=",+$(tr '[:upper:]' '[:lower:]' <<<"${c#CAP_}")"; done
  echo "$l"
}
# shellcheck disable=SC2086
caps=$(setpriv_caps $ambient)
NG=10.203.1.1:2290
HTTP=10.203.1.1:9990
ADDRS=(--interface=pub/10.203.1.1 --interface=priv/10.203.2.1 --listen-ng=$NG --listen-http=$HTTP)
as_unit() { # as_unit LOG CAPS ARGS...: exec the unit's command as the relayd user, in xR, from the clean root
  local log=$1 c=$2
  shift 2
  exec ip netns exec xR sh -c 'mount -t sysfs sysfs "$0/sys" && exec chroot "$0" "$@"' "$root" \
    prlimit --nofile="$nofile" --memlock="$memlock" -- \
    setpriv --reuid=relayd --regid=relayd --init-groups --no-new-privs \
    --inh-caps="$c" --ambient-caps="$c" --bounding-set="$c" -- \
    "${exec_start[@]}" "${ADDRS[@]}" "$@" >"$work/$log" 2>&1
}
scripts/netns.sh up
relay_media() { # relay_media BACKEND CAPS...
  local b=$1
  shift
  local names=$*
  # shellcheck disable=SC2086
  as_unit "$b.log" "$(setpriv_caps $names)" --backend="$b" &
  relayd_pid=$!
  pids+=("$relayd_pid")
  ip netns exec xC python3 ../shared/conformance/ngclient.py --wait-ping $NG 10 >/dev/null \
    || fail "relayd ($b, as the unit runs it) not answering ng"
  local st
  st=$(cat /proc/"$relayd_pid"/status)
  [[ $(awk '/^Uid:/ {print $2}' <<<"$st") == "$uid" ]] || fail "relayd ($b) does not run as relayd: $st"
  local eff
  eff=$(awk '/^CapEff:/ {print $2}' <<<"$st")
  # shellcheck disable=SC2086
  [[ $(python3 -c 'import sys; print(int(sys.argv[1], 16))' "$eff") == \
    $(python3 -c '
import sys
n = {"CAP_NET_BIND_SERVICE": 10, "CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13, "CAP_IPC_LOCK": 14, "CAP_SYS_ADMIN": 21,
     "CAP_SYS_NICE": 23, "CAP_BPF": 39, "CAP_PERFMON": 38}
print(sum(1 << n[c] for c in sys.argv[1:]))' $names) ]] || fail "relayd ($b) effective capabilities $eff, wanted: $names"
  ip netns exec xC "$root/usr/bin/rtpgen" --ng $NG --caller-ip 10.203.1.2 --callee-ip 10.203.2.2 --callee-netns xE \
    --direction pub,priv --calls 20 --duration 2 --max-loss 0 --quiet --json --keep >"$work/$b.json" \
    || fail "rtpgen through relayd ($b): $(cat "$work/$b.json")"
  ip netns exec xC "$root/usr/bin/relayctl" --http $HTTP --json flows >"$work/$b-flows.json" || fail "relayctl flows"
  python3 - "$work/$b.json" "$work/$b-flows.json" "$work"/*-flows.prev <<'PY' >"$work/$b.summary" || fail "relayd ($b): $(cat "$work/$b.summary")"
import json, os, sys
r = json.load(open(sys.argv[1]))
flows = json.load(open(sys.argv[2]))
# the calls of an earlier run (rtpgen --keep leaves them up): the package's relayd keeps
# its calls in /var/lib/relayd, so the next run restores them
before = set()
for p in filter(os.path.exists, sys.argv[3:]):
    before |= {f["call_id"] for f in json.load(open(p))}
restored = {f["call_id"] for f in flows if f["call_id"] in before}
rtp = [f for f in flows if f["kind"] == "rtp" and f["call_id"] not in before]
assert r["calls"] == 20 and r["received"] == r["sent"] > 0, r
assert len(rtp) == 40 and all((f["counters"]["latched_peer"] or "").startswith(("10.203.1.2:", "10.203.2.2:")) for f in rtp), rtp[:2]
assert restored == before, "calls of the earlier run not restored: %s" % sorted(before - restored)[:3]
print("20 calls offered/answered over ng, %d/%d packets both ways, 40 RTP flows latched%s" % (
    r["received"], r["sent"], ", and the %d calls of the run before restored from the state store" % len(restored) if restored else ""))
PY
  cp "$work/$b-flows.json" "$work/$b-flows.prev"
}
# shellcheck disable=SC2086
relay_media uring $ambient
kill -TERM "$relayd_pid"
wait "$relayd_pid" || fail "relayd (uring) exit status $?"
ok "io_uring as user relayd with $ambient only (limits: nofile $nofile, memlock $memlock;$limits_note): $(cat "$work/uring.summary")"
if [[ -n $memlock_substitute ]]; then
  # exactly the unit's capabilities under this box's memlock limit: relayd says what is missing
  if (as_unit xdp-memlock.log "$caps" --backend=xdp); then fail "relayd started xdp with memlock $memlock"; fi
  grep -q "backend xdp needs CAP_IPC_LOCK to lock 64 MiB.*or raise RLIMIT_MEMLOCK: LimitMEMLOCK=infinity" \
    "$work/xdp-memlock.log" || fail "memlock: $(cat "$work/xdp-memlock.log")"
  ok "the unit's capabilities under RLIMIT_MEMLOCK $memlock: $(grep -o -m1 'backend xdp needs CAP_IPC_LOCK.*' "$work/xdp-memlock.log")"
fi
# shellcheck disable=SC2086
relay_media xdp $ambient $memlock_substitute
grep -q "XDP on rpub (ifindex [0-9]*, native mode" "$work/xdp.log" || fail "XDP not attached natively as relayd: $(cat "$work/xdp.log")"
xsk=$(ip netns exec xC curl -s "http://$HTTP/metrics" | awk '/^relay_tx_packets_total\{path="xsk"/ {s += $2} END {print s + 0}')
[[ $xsk -gt 0 ]] || fail "no packet through AF_XDP"
kill -TERM "$relayd_pid"
wait "$relayd_pid" || fail "relayd (xdp) exit status $?"
ip netns exec xR ip link show rpub | grep -q prog/xdp && fail "XDP still attached after SIGTERM"
ok "XDP as user relayd with $ambient $memlock_substitute only: native mode, $xsk packets sent through AF_XDP; $(cat "$work/xdp.summary"); detached on SIGTERM"

# 5. one capability less: relayd names it
for drop in CAP_BPF CAP_NET_RAW; do
  # shellcheck disable=SC2086
  less=$(setpriv_caps $(tr ' ' '\n' <<<"$ambient $memlock_substitute" | grep -vx "$drop"))
  if (as_unit "no-$drop.log" "$less" --backend=xdp); then fail "relayd started with xdp without $drop"; fi
  grep -q "backend xdp needs $drop.*missing: $drop (run as root or add AmbientCapabilities=$drop" "$work/no-$drop.log" \
    || fail "without $drop: $(cat "$work/no-$drop.log")"
done
ok "without CAP_BPF or CAP_NET_RAW relayd refuses xdp and says: $(grep -o 'backend xdp needs CAP_BPF.*' "$work/no-CAP_BPF.log" | head -n1)"

# 6. sd_notify: READY=1, STATUS=, WATCHDOG=1; reload; STOPPING=1
cat >"$work/notify.py" <<'PY'
import os, socket, sys, time
path, out = sys.argv[1], open(sys.argv[2], "w", buffering=1)
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
os.chmod(path, 0o666)
t0 = time.time()
while True:
    m = s.recv(4096).decode()
    for line in m.split("\n"):
        out.write("%.2f %s\n" % (time.time() - t0, line))
PY
python3 "$work/notify.py" "$root/tmp/notify.sock" "$work/notify.txt" &
pids+=($!)
for _ in $(seq 50); do [[ -S $root/tmp/notify.sock ]] && break || sleep 0.1; done
(
  export NOTIFY_SOCKET=/tmp/notify.sock WATCHDOG_USEC=2000000
  as_unit notify.log "$caps" --backend=uring
) &
relayd_pid=$!
pids+=("$relayd_pid")
ip netns exec xC python3 ../shared/conformance/ngclient.py --wait-ping $NG 10 >/dev/null || fail "relayd (notify) not answering"
sleep 2.5
grep -q " READY=1" "$work/notify.txt" || fail "no READY=1: $(cat "$work/notify.txt")"
grep -q " STATUS=ng $NG, backend io_uring" "$work/notify.txt" || fail "no STATUS=: $(cat "$work/notify.txt")"
pings=$(grep -c " WATCHDOG=1" "$work/notify.txt" || true)
[[ $pings -ge 2 ]] || fail "$pings WATCHDOG=1 in 2.5 s at WATCHDOG_USEC=2000000: $(cat "$work/notify.txt")"
sed -i -e 's/^timeout = 60/timeout = 90/' -e 's/^port-min = 30000/port-min = 30100/' "$root/etc/relayd/relayd.toml"
kill -HUP "$relayd_pid"
for _ in $(seq 30); do grep -q "reload: port-min" "$work/notify.log" && break || sleep 0.1; done
grep -q "reload: timeout: 60 -> 90 (applied)" "$work/notify.log" || fail "reload: $(cat "$work/notify.log")"
grep -q "reload: port-min: 30000 -> 30100 needs a restart; keeping 30000 until then" "$work/notify.log" \
  || fail "reload: $(cat "$work/notify.log")"
grep -q " RELOADING=1" "$work/notify.txt" || fail "no RELOADING=1"
ip netns exec xC python3 ../shared/conformance/ngclient.py --wait-ping $NG 5 >/dev/null || fail "relayd gone after SIGHUP"
kill -TERM "$relayd_pid"
wait "$relayd_pid" || fail "relayd (notify) exit status"
grep -q " STOPPING=1" "$work/notify.txt" || fail "no STOPPING=1: $(cat "$work/notify.txt")"
ok "sd_notify: READY=1 and STATUS= at $(grep -m1 ' READY=1' "$work/notify.txt" | cut -d' ' -f1) s, $pings WATCHDOG=1 in 2.5 s (WATCHDOG_USEC=2 s), SIGHUP: RELOADING=1 + \"$(grep -o 'reload: timeout.*' "$work/notify.log")\" + \"$(grep -o 'reload: port-min.*' "$work/notify.log")\", SIGTERM: STOPPING=1"
t_end

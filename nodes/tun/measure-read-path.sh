#!/usr/bin/env bash
# Measures the two ways Node can drive a TUN, to justify the addon (see README.md):
#   (a) this addon: non-blocking fd, uv_poll, all ready packets per wakeup, writeMany back;
#   (b) a helper process does TUNSETIFF and passes the descriptor to node (as fd 3), which reads it
#       with fs.read on the libuv threadpool (Node has no other way to read a character device).
# Both echo ICMP requests from `ping -f -l 64` inside a throwaway namespace; prints echoed packets/s.
# Usage (root, after `npm run build`): bash nodes/tun/measure-read-path.sh [count]
set -euo pipefail
count=${1:-200000}
addon=$(cd "$(dirname "$0")" && pwd)/build/Release/tun.node
work=$(mktemp -d)
ns=tbt-$$-0-measure
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  ip netns delete "$ns" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# Shared: turn an IPv4 ICMP echo request into its reply (swap addresses, type 8→0, checksum +0x0800).
cat > "$work/reply.cjs" <<'JS'
module.exports = (p) => {
  const ihl = (p[0] & 15) * 4;
  for (let i = 0; i < 4; i++) [p[12 + i], p[16 + i]] = [p[16 + i], p[12 + i]];
  p[ihl] = 0;
  let sum = ((p[ihl + 2] << 8) | p[ihl + 3]) + 0x0800;
  sum = (sum & 0xffff) + (sum >> 16);
  p[ihl + 2] = sum >> 8;
  p[ihl + 3] = sum & 255;
  return p;
};
JS
cat > "$work/addon.cjs" <<JS
const tun = require('$addon');
const reply = require('./reply.cjs');
const { fd } = tun.open('tbtm0', false);
require('child_process').execFileSync('sh', ['-c', 'ip addr add 10.201.0.1/24 dev tbtm0 && ip link set tbtm0 up']);
const slab = new Uint8Array(1 << 20);
const records = new Int32Array(512); // frame i at records[2i], records[2i + 1] bytes long
const frames = (count) => Array.from({ length: count }, (_, i) => slab.subarray(records[2 * i], records[2 * i] + records[2 * i + 1]));
const echo = (count) => tun.writeMany(fd, frames(count).filter((p) => p[9] === 1 && p[20] === 8).map(reply), 0);
const reader = tun.startReading(fd, slab, records, echo, console.error);
process.on('SIGTERM', () => { reader.stop(); process.exit(0); });
console.log('ready');
JS
cat > "$work/open-fd.py" <<'PY'
import fcntl, os, struct, subprocess, sys
fd = os.open('/dev/net/tun', os.O_RDWR)
fcntl.ioctl(fd, 0x400454ca, struct.pack('16sH', b'tbtm0', 0x0001 | 0x1000))  # TUNSETIFF, IFF_TUN|IFF_NO_PI
subprocess.run(['sh', '-c', 'ip addr add 10.201.0.1/24 dev tbtm0 && ip link set tbtm0 up'], check=True)
os.dup2(fd, 3)
os.set_inheritable(3, True)  # dup2 onto itself keeps CLOEXEC, so set it explicitly
os.execvp('node', ['node', sys.argv[1]])
PY
cat > "$work/fsread.cjs" <<'JS'
const fs = require('fs');
const reply = require('./reply.cjs');
function loop() {
  const buffer = Buffer.allocUnsafe(65535);
  fs.read(3, buffer, 0, buffer.length, null, (error, n) => {
    if (error) return console.error(error);
    const p = buffer.subarray(0, n);
    if (p[9] === 1 && p[20] === 8) fs.writeSync(3, reply(p));
    loop();
  });
}
loop(); loop(); // two reads in flight; each parks a threadpool worker in read(2)
process.on('SIGTERM', () => process.exit(0));
console.log('ready');
JS

measure() {
  local label=$1; shift
  ip netns add "$ns"
  ip netns exec "$ns" ip link set lo up
  ip netns exec "$ns" "$@" > "$work/out" 2>&1 &
  pid=$!
  for _ in $(seq 100); do grep -q ready "$work/out" && break; sleep 0.05; done
  local start end
  start=$(date +%s%N)
  timeout 120 ip netns exec "$ns" ping -q -f -l 64 -c "$count" 10.201.0.2 | grep -E 'transmitted' || true
  end=$(date +%s%N)
  kill "$pid" 2>/dev/null || cat "$work/out" >&2; wait "$pid" 2>/dev/null || true; pid=
  ip netns delete "$ns"
  echo "$label: $(( count * 1000000000 / (end - start) )) echoed packets/s"
}

measure "(a) addon, uv_poll batches" node "$work/addon.cjs"
measure "(b) passed fd, fs.read    " python3 "$work/open-fd.py" "$work/fsread.cjs"

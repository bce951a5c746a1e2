# Shared by the README's two commands: install what is missing on a fresh Debian machine, then build.
# Sourced, not run.

# Debian packages the suites and the local system need (binary name → package).
declare -A TB_DEBIAN_PACKAGES=(
  [redis-server]=redis-server
  [wireguard-go]=wireguard-go
  [wg]=wireguard-tools
  [iperf3]=iperf3
  [ip]=iproute2
  [ping]=iputils-ping
  [chromium]=chromium
  [make]=make
  [g++]=g++
  [python3]=python3
  [nft]=nftables
  [systemd-analyze]=systemd
  [promtool]=prometheus
)
# Only the benchmarks that name them install these (perf traces the tunnel bench's idle pings).
declare -A TB_BENCH_PACKAGES=(
  [perf]=linux-perf
)

# tb_install_missing [BIN...]: the Debian packages for BINs (default: every one above), then npm's.
# Without root it stops with one line naming what is missing and the command that installs it.
tb_install_missing() {
  local missing=() bins=("$@")
  [ ${#bins[@]} -gt 0 ] || bins=("${!TB_DEBIAN_PACKAGES[@]}")
  for bin in "${bins[@]}"; do
    command -v "$bin" >/dev/null 2>&1 || missing+=("${TB_DEBIAN_PACKAGES[$bin]:-${TB_BENCH_PACKAGES[$bin]}}")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
      echo "missing Debian packages: ${missing[*]} (run as root, or: sudo apt-get install --no-install-recommends ${missing[*]})" >&2
      return 1
    fi
    echo "installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  tb_install_npm
}

# tb_install_npm: the npm dependencies, when node_modules is absent or older than the lock file.
tb_install_npm() {
  if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm ci --no-audit --no-fund
  fi
}

# tb_build: quiet when it works; when it fails, what the compilers said (the last 40 lines).
tb_build() {
  local log status=0
  log=$(mktemp)
  npm run --silent build >"$log" 2>&1 || status=$?
  if [ "$status" != 0 ]; then
    echo "the build failed (npm run build, exit $status):" >&2
    tail -n 40 "$log" >&2
  fi
  rm -f "$log"
  return "$status"
}

{
  "targets": [
    {
      "target_name": "tun",
      "sources": ["tun.c", "watcher.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Werror"],
      "defines": ["NAPI_VERSION=8"]
    },
    {
      "target_name": "udp",
      "sources": ["udp.c", "watcher.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Werror"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}

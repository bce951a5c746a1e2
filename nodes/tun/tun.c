// Linux TUN device for the exit-node daemon, as a minimal Node-API addon.
//
// Why an addon: opening a TUN needs the TUNSETIFF ioctl, which Node cannot issue, and a TUN fd is a
// character device that libuv's stream handles refuse, so fs.read() on the threadpool would be the
// only pure-JS read path (one threadpool round trip and one blocked worker per packet). Here the fd
// is non-blocking and watched by a uv_poll handle on the main loop (watcher.c); each wakeup drains up to
// READ_BATCH_MAX packets and hands them to JS in ONE call, as views into one ArrayBuffer. See
// README.md for the measurement behind this choice.
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <node_api.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>
#include <uv.h>

#include "watcher.h"

// Implementation limits, not protocol constants.
#define READ_BATCH_MAX 256            // packets per wakeup: bounds how long one wakeup starves UDP
#define PACKET_MAX 65535              // largest packet a TUN read can return (IP total length)
#define SLAB_SIZE (512 * 1024)        // read buffer; a read needs PACKET_MAX free bytes

// open(name: string) -> { fd, name }. name may contain %d for the kernel to pick a number.
static napi_value tun_open(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char name[IFNAMSIZ] = {0};
  size_t length = 0;
  // First call measures (a buffer would silently truncate), second copies.
  if (argc < 1 || napi_get_value_string_utf8(env, argv[0], NULL, 0, &length) != napi_ok) {
    napi_throw_type_error(env, NULL, "open(name): name must be a string");
    return NULL;
  }
  if (length == 0 || length > IFNAMSIZ - 1) {
    napi_throw_range_error(env, NULL, "open(name): interface name must be 1 to 15 bytes");
    return NULL;
  }
  CHECK(env, napi_get_value_string_utf8(env, argv[0], name, sizeof name, &length));
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return throw_errno(env, "open /dev/net/tun", errno);
  struct ifreq request;
  memset(&request, 0, sizeof request);
  request.ifr_flags = IFF_TUN | IFF_NO_PI;
  memcpy(request.ifr_name, name, length);
  if (ioctl(fd, TUNSETIFF, &request) < 0) {
    int err = errno;
    close(fd);
    return throw_errno(env, "ioctl TUNSETIFF", err);
  }
  napi_value result, fd_value, name_value;
  CHECK(env, napi_create_object(env, &result));
  CHECK(env, napi_create_int32(env, fd, &fd_value));
  CHECK(env, napi_create_string_utf8(env, request.ifr_name, strnlen(request.ifr_name, IFNAMSIZ), &name_value));
  CHECK(env, napi_set_named_property(env, result, "fd", fd_value));
  CHECK(env, napi_set_named_property(env, result, "name", name_value));
  return result;
}

static napi_value get_buffer(napi_env env, napi_value value, void **data, size_t *length) {
  bool is_typed = false;
  napi_typedarray_type type;
  napi_value arraybuffer;
  size_t offset;
  if (napi_is_typedarray(env, value, &is_typed) != napi_ok || !is_typed ||
      napi_get_typedarray_info(env, value, &type, length, data, &arraybuffer, &offset) != napi_ok ||
      type != napi_uint8_array) {
    napi_throw_type_error(env, NULL, "packet must be a Uint8Array");
    return NULL;
  }
  return value;
}

// write(fd, packet) -> bytes written, or -errno (a full or vanished device drops, like a NIC would).
static napi_value tun_write(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  void *data;
  size_t length;
  if (argc < 2 || !int_arg(env, argv[0], &fd)) {
    napi_throw_type_error(env, NULL, "write(fd, packet)");
    return NULL;
  }
  if (get_buffer(env, argv[1], &data, &length) == NULL) return NULL;
  ssize_t written = write(fd, data, length);
  napi_value result;
  CHECK(env, napi_create_int32(env, written < 0 ? -errno : (int32_t)written, &result));
  return result;
}

// writeMany(fd, packets[]) -> number of packets accepted. One JS->C crossing for a whole batch of
// decrypted packets; each packet is still its own write(2), as a TUN takes one packet per call.
static napi_value tun_write_many(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  bool is_array = false;
  if (argc < 2 || !int_arg(env, argv[0], &fd) || napi_is_array(env, argv[1], &is_array) != napi_ok ||
      !is_array) {
    napi_throw_type_error(env, NULL, "writeMany(fd, packets[])");
    return NULL;
  }
  uint32_t count;
  CHECK(env, napi_get_array_length(env, argv[1], &count));
  uint32_t accepted = 0;
  for (uint32_t i = 0; i < count; i++) {
    napi_value element;
    void *data;
    size_t length;
    CHECK(env, napi_get_element(env, argv[1], i, &element));
    if (get_buffer(env, element, &data, &length) == NULL) return NULL;
    if (write(fd, data, length) >= 0) accepted++;
  }
  napi_value result;
  CHECK(env, napi_create_uint32(env, accepted, &result));
  return result;
}

// Each wakeup drains up to READ_BATCH_MAX packets into the slab (the watcher's state), then hands them
// to onPackets(packets) in one call: one ArrayBuffer per batch, one memcpy, packets are views into it.
static void tun_drain(watcher_t *watcher) {
  napi_env env = watcher->env;
  uint8_t *slab = watcher->state;
  size_t offsets[READ_BATCH_MAX], lengths[READ_BATCH_MAX];
  size_t count = 0, used = 0;
  int failure = 0;
  while (count < READ_BATCH_MAX && SLAB_SIZE - used >= PACKET_MAX) {
    ssize_t n = read(watcher->fd, slab + used, PACKET_MAX);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) failure = errno;
      break;
    }
    offsets[count] = used;
    lengths[count] = (size_t)n;
    used += (size_t)n;
    count++;
  }
  if (count > 0) {
    void *data;
    napi_value arraybuffer, packets;
    napi_create_arraybuffer(env, used, &data, &arraybuffer);
    memcpy(data, slab, used);
    napi_create_array_with_length(env, count, &packets);
    for (size_t i = 0; i < count; i++) {
      napi_value view;
      napi_create_typedarray(env, napi_uint8_array, lengths[i], arraybuffer, offsets[i], &view);
      napi_set_element(env, packets, (uint32_t)i, view);
    }
    if (!watcher_call(watcher, 1, &packets)) return;
  }
  if (failure) watcher_fail(watcher, watcher->error_prefix, failure);
}

// startReading(fd, onPackets, onError) -> { stop() }
static napi_value tun_start_reading(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  napi_valuetype on_packets_type, on_error_type;
  if (argc < 3 || !int_arg(env, argv[0], &fd) || napi_typeof(env, argv[1], &on_packets_type) != napi_ok ||
      napi_typeof(env, argv[2], &on_error_type) != napi_ok || on_packets_type != napi_function ||
      on_error_type != napi_function) {
    napi_throw_type_error(env, NULL, "startReading(fd, onPackets, onError)");
    return NULL;
  }
  uint8_t *slab = malloc(SLAB_SIZE);
  if (slab == NULL) return throw_errno(env, "startReading", ENOMEM);
  return watcher_start(env, fd, argv[1], argv[2], NULL, "TunReader", "TUN read", tun_drain, slab);
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor properties[] = {
      {"open", NULL, tun_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"write", NULL, tun_write, NULL, NULL, NULL, napi_enumerable, NULL},
      {"writeMany", NULL, tun_write_many, NULL, NULL, NULL, napi_enumerable, NULL},
      {"close", NULL, close_fd_js, NULL, NULL, NULL, napi_enumerable, NULL},
      {"startReading", NULL, tun_start_reading, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof properties / sizeof properties[0], properties) != napi_ok)
    return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)

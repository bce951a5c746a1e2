// Linux TUN device for the exit-node daemon, as a minimal Node-API addon.
//
// Why an addon: opening a TUN needs the TUNSETIFF ioctl, which Node cannot issue, and a TUN fd is a
// character device that libuv's stream handles refuse, so fs.read() on the threadpool would be the
// only pure-JS read path (one threadpool round trip and one blocked worker per packet). Here the fd
// is non-blocking and watched by a uv_poll handle on the main loop (watcher.c); each wakeup reads a batch
// straight into a buffer JS owns and hands it over in ONE call (a count; offsets and lengths in a table).
// See README.md for the measurement behind this choice.
//
// Offloads (IFF_VNET_HDR + TUNSETOFFLOAD) are system calls only here: with them every read and write
// carries a virtio_net_hdr in front of the packet, and nodes/offload.ts decides everything about it.
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

#define FRAME_MAX (65535 + 12)  // largest read: IP total length, plus a virtio_net_hdr (10 or 12)

// open(name: string, vnetHeader: boolean) -> { fd, name }. name may contain %d for the kernel to pick a
// number. vnetHeader: IFF_VNET_HDR, with the header's fields little-endian (TUNSETVNETLE) on every host.
static napi_value tun_open(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char name[IFNAMSIZ] = {0};
  size_t length = 0;
  bool vnet_header = false;
  // First call measures (a buffer would silently truncate), second copies.
  if (argc < 2 || napi_get_value_string_utf8(env, argv[0], NULL, 0, &length) != napi_ok ||
      napi_get_value_bool(env, argv[1], &vnet_header) != napi_ok) {
    napi_throw_type_error(env, NULL, "open(name, vnetHeader): a string and a boolean");
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
  request.ifr_flags = IFF_TUN | IFF_NO_PI | (vnet_header ? IFF_VNET_HDR : 0);
  memcpy(request.ifr_name, name, length);
  int little_endian = 1;
  if (ioctl(fd, TUNSETIFF, &request) < 0 ||
      (vnet_header && ioctl(fd, TUNSETVNETLE, &little_endian) < 0)) {
    int err = errno;
    close(fd);
    return throw_errno(env, vnet_header ? "ioctl TUNSETIFF (vnet header)" : "ioctl TUNSETIFF", err);
  }
  napi_value result, fd_value, name_value;
  CHECK(env, napi_create_object(env, &result));
  CHECK(env, napi_create_int32(env, fd, &fd_value));
  CHECK(env, napi_create_string_utf8(env, request.ifr_name, strnlen(request.ifr_name, IFNAMSIZ), &name_value));
  CHECK(env, napi_set_named_property(env, result, "fd", fd_value));
  CHECK(env, napi_set_named_property(env, result, "name", name_value));
  return result;
}

// setOffload(fd, flags) -> 0, or -errno when the kernel refuses the TUN_F_* set (EINVAL: unknown flags).
static napi_value tun_set_offload(napi_env env, napi_callback_info info) {
  int32_t fd, flags;
  napi_value rest[1];
  if (!fd_args(env, info, "setOffload(fd, flags)", &fd, 1, rest)) return NULL;
  if (!int_arg(env, rest[0], &flags) || flags < 0) {
    napi_throw_type_error(env, NULL, "setOffload(fd, flags): flags must be a non-negative integer");
    return NULL;
  }
  napi_value result;
  CHECK(env, napi_create_int32(env, ioctl(fd, TUNSETOFFLOAD, (unsigned int)flags) < 0 ? -errno : 0, &result));
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

// writeMany(fd, packets[], start) -> how many packets from `start` on the kernel took before the first it
// refused (packets.length - start when it took them all). One JS->C crossing for a whole batch of
// decrypted packets; each packet is still its own write(2), as a TUN takes one packet per call. The
// caller skips a refused packet (dropped, as a full or vanished NIC would) and calls again after it.
static napi_value tun_write_many(napi_env env, napi_callback_info info) {
  const char *usage = "writeMany(fd, packets[], start)";
  int32_t fd, start;
  napi_value argv[2];
  bool is_array = false;
  uint32_t count;
  if (!fd_args(env, info, usage, &fd, 2, argv)) return NULL;
  if (napi_is_array(env, argv[0], &is_array) != napi_ok || !is_array || !int_arg(env, argv[1], &start) ||
      napi_get_array_length(env, argv[0], &count) != napi_ok || start < 0 || (uint32_t)start > count) {
    napi_throw_type_error(env, NULL, usage);
    return NULL;
  }
  uint32_t i = (uint32_t)start;
  for (; i < count; i++) {
    napi_value element;
    void *data;
    size_t length;
    CHECK(env, napi_get_element(env, argv[0], i, &element));
    if (get_buffer(env, element, &data, &length) == NULL) return NULL;
    if (write(fd, data, length) < 0) break;
  }
  napi_value result;
  CHECK(env, napi_create_uint32(env, i - (uint32_t)start, &result));
  return result;
}

// The JS buffers a reader fills (kept alive by the watcher's reference to them): frame i at
// records[2i] in slab, records[2i + 1] bytes long.
typedef struct {
  uint8_t *slab;
  size_t slab_size;
  int32_t *records;
  size_t frames_max;
} tun_reader_t;

// Reads until the kernel has nothing more or the buffers are full; returns the frames read. *failure is the
// errno that ended it, 0 for EAGAIN or full buffers. A read needs FRAME_MAX free bytes: a frame is never
// truncated.
static size_t read_frames(int fd, const tun_reader_t *reader, int *failure) {
  size_t count = 0, used = 0;
  *failure = 0;
  while (count < reader->frames_max && reader->slab_size - used >= FRAME_MAX) {
    ssize_t n = read(fd, reader->slab + used, FRAME_MAX);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) *failure = errno;
      break;
    }
    reader->records[2 * count] = (int32_t)used;
    reader->records[2 * count + 1] = (int32_t)n;
    used += (size_t)n;
    count++;
  }
  return count;
}

// A wakeup's reads, handed to onFrames(count) in one call.
static void tun_drain(watcher_t *watcher) {
  int failure;
  size_t count = read_frames(watcher->fd, watcher->state, &failure);
  if (count > 0) {
    napi_value count_value;
    napi_create_uint32(watcher->env, (uint32_t)count, &count_value);
    if (!watcher_call(watcher, 1, &count_value)) return;
  }
  if (failure) watcher_fail(watcher, watcher->error_prefix, failure);
}

// The slab and records arguments of startReading and readFrames, checked; 0 with an exception pending.
static int reader_buffers(napi_env env, napi_value slab_value, napi_value records_value, tun_reader_t *reader) {
  size_t record_ints;
  reader->slab = typed_arg(env, slab_value, napi_uint8_array, &reader->slab_size);
  if (reader->slab == NULL) return 0;
  reader->records = typed_arg(env, records_value, napi_int32_array, &record_ints);
  if (reader->records == NULL) return 0;
  if (reader->slab_size < FRAME_MAX || record_ints < 2) {
    napi_throw_range_error(env, NULL, "the slab must hold one 65547-byte frame, records one entry");
    return 0;
  }
  reader->frames_max = record_ints / 2;
  return 1;
}

// startReading(fd, slab, records, onFrames(count), onError(message)) -> { stop() }
// onFrames must be done with the slab and records when it returns: the next read overwrites them.
static napi_value tun_start_reading(napi_env env, napi_callback_info info) {
  const char *usage = "startReading(fd, slab, records, onFrames, onError)";
  int32_t fd;
  napi_value argv[4];
  napi_valuetype on_frames_type, on_error_type;
  if (!fd_args(env, info, usage, &fd, 4, argv)) return NULL;
  if (napi_typeof(env, argv[2], &on_frames_type) != napi_ok ||
      napi_typeof(env, argv[3], &on_error_type) != napi_ok || on_frames_type != napi_function ||
      on_error_type != napi_function) {
    napi_throw_type_error(env, NULL, usage);
    return NULL;
  }
  tun_reader_t buffers;
  if (!reader_buffers(env, argv[0], argv[1], &buffers)) return NULL;
  napi_value keep;  // the watcher holds both arrays so their memory outlives any JS reference to them
  CHECK(env, napi_create_array_with_length(env, 2, &keep));
  CHECK(env, napi_set_element(env, keep, 0, argv[0]));
  CHECK(env, napi_set_element(env, keep, 1, argv[1]));
  tun_reader_t *reader = malloc(sizeof *reader);
  if (reader == NULL) return throw_errno(env, "startReading", ENOMEM);
  *reader = buffers;
  return watcher_start(env, fd, argv[2], argv[3], keep, "TunReader", "TUN read", tun_drain, reader);
}

// readFrames(fd, slab, records) -> the frames read now, laid out as startReading's; -errno when there were none
// (-EAGAIN: nothing waiting). The reader's reads without waiting for a wakeup, for a caller that knows frames
// may wait already: the local replies to packets it just wrote, which the kernel queues before write(2)
// returns. The buffers are checked on every call, so a detached one is an error, never a read into it.
static napi_value tun_read_frames(napi_env env, napi_callback_info info) {
  int32_t fd;
  napi_value argv[2];
  tun_reader_t buffers;
  if (!fd_args(env, info, "readFrames(fd, slab, records)", &fd, 2, argv)) return NULL;
  if (!reader_buffers(env, argv[0], argv[1], &buffers)) return NULL;
  int failure;
  size_t count = read_frames(fd, &buffers, &failure);
  napi_value result;
  CHECK(env, napi_create_int32(env, count > 0 ? (int32_t)count : failure ? -failure : -EAGAIN, &result));
  return result;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor properties[] = {
      {"open", NULL, tun_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"writeMany", NULL, tun_write_many, NULL, NULL, NULL, napi_enumerable, NULL},
      {"setOffload", NULL, tun_set_offload, NULL, NULL, NULL, napi_enumerable, NULL},
      {"close", NULL, close_fd_js, NULL, NULL, NULL, napi_enumerable, NULL},
      {"startReading", NULL, tun_start_reading, NULL, NULL, NULL, napi_enumerable, NULL},
      {"readFrames", NULL, tun_read_frames, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof properties / sizeof properties[0], properties) != napi_ok)
    return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)

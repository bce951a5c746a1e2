// The exit node's UDP socket, as a minimal Node-API addon: system calls only, every decision in
// nodes/udp.ts. Node's dgram reads and writes one datagram per system call and cannot report or choose
// the local address a datagram used; this reads up to RECV_BATCH_MAX datagrams per recvmmsg and writes a
// batch per sendmmsg, and passes the destination address of each received datagram (IP_PKTINFO /
// IPV6_RECVPKTINFO) so replies can leave from the address the peer sent to (sticky source).
//
// Buffers are owned by JS and reused: a slab of fixed-size slots (one datagram each) and a table of
// RECORD_INTS int32 per datagram:
//   [0] length  [1] remote port  [2] flags  [3] segment size  [4..7] remote address  [8..11] local address
// A segment size of 0 is one datagram; above 0 the slot holds `length` bytes of datagrams of that size.
// Addresses are 16 bytes, IPv4 as IPv4-mapped IPv6 (::ffff:a.b.c.d), whatever the socket's family.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <node_api.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "watcher.h"

#define RECORD_INTS 12
#define FLAG_LOCAL 1      // [8..11] holds the local (receive) or source (send) address
#define FLAG_TRUNCATED 2  // received datagram longer than its slot: its tail is lost
#define RECV_BATCH_MAX 64 // datagrams per recvmmsg/sendmmsg call
#define RECV_ROUNDS_MAX 4 // recvmmsg calls per wakeup: bounds how long one wakeup starves the TUN side
// Room for the control messages of one datagram: received on a dual-stack socket, UDP_GRO (24 bytes),
// IPV6_PKTINFO (40) and IP_PKTINFO (32); sent, a pktinfo and UDP_SEGMENT (24).
#define CONTROL_SIZE 128
// Datagrams per GSO message. The kernel's UDP_MAX_SEGMENTS was 64 for years (newer kernels allow 128): a
// message within 64 is accepted by every kernel with UDP_SEGMENT, so more is refused here, not by chance.
#define GSO_SEGMENTS_MAX 64

static const uint8_t MAPPED_PREFIX[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

// Throws an Error whose code is the errno name (EADDRINUSE...), as Node's own socket errors do.
static napi_value throw_code(napi_env env, const char *what, int err) {
  char message[256];
  snprintf(message, sizeof message, "%s %s: %s", what, uv_err_name(-err), strerror(err));
  napi_throw_error(env, uv_err_name(-err), message);
  return NULL;
}

// sockaddr for a 16-byte (IPv4-mapped or IPv6) address on a socket of `family`. 0 if it does not fit.
static socklen_t to_sockaddr(int family, const uint8_t *address, int port, struct sockaddr_storage *out) {
  memset(out, 0, sizeof *out);
  if (family == AF_INET6) {
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)out;
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons((uint16_t)port);
    memcpy(&sin6->sin6_addr, address, 16);
    return sizeof *sin6;
  }
  if (memcmp(address, MAPPED_PREFIX, 12) != 0) return 0;
  struct sockaddr_in *sin = (struct sockaddr_in *)out;
  sin->sin_family = AF_INET;
  sin->sin_port = htons((uint16_t)port);
  memcpy(&sin->sin_addr, address + 12, 4);
  return sizeof *sin;
}

// Writes a received source address and port into a record (IPv4 mapped).
static void from_sockaddr(const struct sockaddr_storage *from, int32_t *record) {
  uint8_t *address = (uint8_t *)(record + 4);
  if (from->ss_family == AF_INET6) {
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)from;
    memcpy(address, &sin6->sin6_addr, 16);
    record[1] = ntohs(sin6->sin6_port);
  } else {
    const struct sockaddr_in *sin = (const struct sockaddr_in *)from;
    memcpy(address, MAPPED_PREFIX, 12);
    memcpy(address + 12, &sin->sin_addr, 4);
    record[1] = ntohs(sin->sin_port);
  }
}

static int socket_family(int fd) {
  struct sockaddr_storage local;
  socklen_t length = sizeof local;
  if (getsockname(fd, (struct sockaddr *)&local, &length) < 0) return -errno;
  return local.ss_family;
}

static void set_buffer(int fd, int force_option, int option, int size) {
  // Root may exceed net.core.{r,w}mem_max; everyone else gets the capped size.
  if (size > 0 && setsockopt(fd, SOL_SOCKET, force_option, &size, sizeof size) < 0)
    setsockopt(fd, SOL_SOCKET, option, &size, sizeof size);
}

// open(family 4|6, address: Uint8Array(16), port, receiveBuffer, sendBuffer) -> { fd, port }
// A family-6 socket is dual-stack (IPV6_V6ONLY off). Both report the destination of what they receive.
static napi_value udp_open(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t family, port, receive_buffer, send_buffer;
  if (argc < 5 || !int_arg(env, argv[0], &family) || !int_arg(env, argv[2], &port) ||
      !int_arg(env, argv[3], &receive_buffer) || !int_arg(env, argv[4], &send_buffer) ||
      (family != 4 && family != 6) || port < 0 || port > 65535) {
    napi_throw_type_error(env, NULL, "open(family 4|6, address, port 0..65535, receiveBuffer, sendBuffer)");
    return NULL;
  }
  size_t address_length;
  const uint8_t *address = typed_arg(env, argv[1], napi_uint8_array, &address_length);
  if (address == NULL) return NULL;
  if (address_length != 16) {
    napi_throw_range_error(env, NULL, "open: address must be 16 bytes (IPv4-mapped for IPv4)");
    return NULL;
  }
  int af = family == 6 ? AF_INET6 : AF_INET;
  struct sockaddr_storage bind_address;
  socklen_t bind_length = to_sockaddr(af, address, port, &bind_address);
  if (bind_length == 0) {
    napi_throw_range_error(env, NULL, "open: an IPv4 socket needs an IPv4-mapped address");
    return NULL;
  }
  int fd = socket(af, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_code(env, "socket", errno);
  int on = 1, off = 0;
  int failed = setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &on, sizeof on) < 0;
  if (!failed && af == AF_INET6)
    failed = setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off) < 0 ||
             setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &on, sizeof on) < 0;
  if (failed || bind(fd, (struct sockaddr *)&bind_address, bind_length) < 0) {
    int err = errno;
    close(fd);
    return throw_code(env, failed ? "setsockopt" : "bind", err);
  }
  set_buffer(fd, SO_RCVBUFFORCE, SO_RCVBUF, receive_buffer);
  set_buffer(fd, SO_SNDBUFFORCE, SO_SNDBUF, send_buffer);
  struct sockaddr_storage bound;
  socklen_t bound_length = sizeof bound;
  getsockname(fd, (struct sockaddr *)&bound, &bound_length);
  int32_t record[RECORD_INTS];
  from_sockaddr(&bound, record);
  napi_value result, fd_value, port_value;
  CHECK(env, napi_create_object(env, &result));
  CHECK(env, napi_create_int32(env, fd, &fd_value));
  CHECK(env, napi_create_int32(env, record[1], &port_value));
  CHECK(env, napi_set_named_property(env, result, "fd", fd_value));
  CHECK(env, napi_set_named_property(env, result, "port", port_value));
  return result;
}

// bufferSizes(fd) -> [receive, send] as the kernel reports them (double the usable size).
static napi_value udp_buffer_sizes(napi_env env, napi_callback_info info) {
  int32_t fd;
  if (!fd_args(env, info, "bufferSizes(fd)", &fd, 0, NULL)) return NULL;
  int sizes[2];
  socklen_t length = sizeof sizes[0];
  if (getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sizes[0], &length) < 0 ||
      getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sizes[1], &length) < 0)
    return throw_code(env, "getsockopt", errno);
  napi_value result, value;
  CHECK(env, napi_create_array_with_length(env, 2, &result));
  for (uint32_t i = 0; i < 2; i++) {
    CHECK(env, napi_create_int32(env, sizes[i], &value));
    CHECK(env, napi_set_element(env, result, i, value));
  }
  return result;
}

// receiveDrops(fd) -> the datagrams the kernel dropped for this socket before they were read (a full
// receive buffer, a bad checksum): sk_drops from SO_MEMINFO. Each socket counts from 0; it wraps at 2^32.
static napi_value udp_receive_drops(napi_env env, napi_callback_info info) {
  int32_t fd;
  if (!fd_args(env, info, "receiveDrops(fd)", &fd, 0, NULL)) return NULL;
  uint32_t meminfo[SK_MEMINFO_VARS] = {0};
  socklen_t length = sizeof meminfo;
  if (getsockopt(fd, SOL_SOCKET, SO_MEMINFO, meminfo, &length) < 0) return throw_code(env, "getsockopt", errno);
  // A kernel with a shorter table than these headers' (none before the drops field exists) says so.
  if (length <= SK_MEMINFO_DROPS * sizeof meminfo[0]) return throw_code(env, "getsockopt", EOPNOTSUPP);
  napi_value result;
  CHECK(env, napi_create_uint32(env, meminfo[SK_MEMINFO_DROPS], &result));
  return result;
}

// The slab/table geometry shared by receiving and sending, validated against the arrays' real sizes.
typedef struct {
  uint8_t *slab;
  int32_t *records;
  size_t slot_size;
  size_t slots;  // how many datagrams both arrays have room for
} batch_buffers_t;

static int batch_arg(napi_env env, napi_value slab_value, napi_value records_value, napi_value slot_value,
                     batch_buffers_t *out) {
  size_t slab_length, record_ints;
  int32_t slot_size;
  out->slab = typed_arg(env, slab_value, napi_uint8_array, &slab_length);
  if (out->slab == NULL) return 0;
  out->records = typed_arg(env, records_value, napi_int32_array, &record_ints);
  if (out->records == NULL) return 0;
  if (!int_arg(env, slot_value, &slot_size) || slot_size < 1 || slot_size > 65536) {
    napi_throw_range_error(env, NULL, "slot size must be 1 to 65536 bytes");
    return 0;
  }
  out->slot_size = (size_t)slot_size;
  out->slots = slab_length / out->slot_size;
  if (record_ints / RECORD_INTS < out->slots) out->slots = record_ints / RECORD_INTS;
  if (out->slots == 0) {
    napi_throw_range_error(env, NULL, "buffers too small for one datagram");
    return 0;
  }
  return 1;
}

// What a receiving watcher keeps between wakeups: the JS buffers' addresses (kept alive by the watcher's
// reference to them) and the recvmmsg headers.
typedef struct {
  batch_buffers_t buffers;
  size_t batch;
  struct mmsghdr messages[RECV_BATCH_MAX];
  struct iovec iovecs[RECV_BATCH_MAX];
  struct sockaddr_storage sources[RECV_BATCH_MAX];
  uint64_t control[RECV_BATCH_MAX][CONTROL_SIZE / sizeof(uint64_t)];
} receiver_t;

// The local address a datagram was sent to, from its IPV6_PKTINFO or IP_PKTINFO control message, and the
// segment size of a GRO batch (record[3], left 0 for one datagram). A dual-stack socket gets both pktinfos
// for an IPv4 datagram; only IPV6_PKTINFO's (IPv4-mapped) address is reliable there, so IP_PKTINFO counts
// only when no IPV6_PKTINFO came (an IPv4 socket).
static void read_control(struct msghdr *header, int32_t *record) {
  uint8_t *local = (uint8_t *)(record + 8);
  int have_v6 = 0, have_v4 = 0;
  struct in_pktinfo v4 = {0};
  for (struct cmsghdr *cmsg = CMSG_FIRSTHDR(header); cmsg != NULL; cmsg = CMSG_NXTHDR(header, cmsg)) {
    if (cmsg->cmsg_level == SOL_UDP && cmsg->cmsg_type == UDP_GRO) {
      int segment_size;
      memcpy(&segment_size, CMSG_DATA(cmsg), sizeof segment_size);
      record[3] = segment_size;
    } else if (cmsg->cmsg_level == IPPROTO_IPV6 && cmsg->cmsg_type == IPV6_PKTINFO) {
      struct in6_pktinfo v6;
      memcpy(&v6, CMSG_DATA(cmsg), sizeof v6);
      memcpy(local, &v6.ipi6_addr, 16);
      have_v6 = 1;
    } else if (cmsg->cmsg_level == IPPROTO_IP && cmsg->cmsg_type == IP_PKTINFO) {
      memcpy(&v4, CMSG_DATA(cmsg), sizeof v4);
      have_v4 = 1;
    }
  }
  if (have_v4 && !have_v6) {
    memcpy(local, MAPPED_PREFIX, 12);
    memcpy(local + 12, &v4.ipi_addr, 4);
  }
  if (have_v4 || have_v6) record[2] |= FLAG_LOCAL;
}

static void udp_drain(watcher_t *watcher) {
  receiver_t *receiver = watcher->state;
  napi_env env = watcher->env;
  for (int round = 0; round < RECV_ROUNDS_MAX; round++) {
    for (size_t i = 0; i < receiver->batch; i++) {
      struct msghdr *header = &receiver->messages[i].msg_hdr;
      header->msg_name = &receiver->sources[i];
      header->msg_namelen = sizeof receiver->sources[i];
      header->msg_controllen = sizeof receiver->control[i];
      header->msg_flags = 0;
    }
    int count = recvmmsg(watcher->fd, receiver->messages, (unsigned)receiver->batch, MSG_DONTWAIT, NULL);
    if (count < 0) {
      int err = errno;
      if (err == EINTR) continue;
      // A bad descriptor cannot recover; anything else (EAGAIN, ENOMEM, a queued ICMP error) ends the wakeup.
      if (err == EBADF || err == ENOTSOCK || err == EFAULT) watcher_fail(watcher, watcher->error_prefix, err);
      return;
    }
    for (int i = 0; i < count; i++) {
      int32_t *record = receiver->buffers.records + (size_t)i * RECORD_INTS;
      struct msghdr *header = &receiver->messages[i].msg_hdr;
      record[0] = (int32_t)receiver->messages[i].msg_len;
      record[2] = header->msg_flags & MSG_TRUNC ? FLAG_TRUNCATED : 0;
      record[3] = 0;
      from_sockaddr(&receiver->sources[i], record);
      read_control(header, record);
    }
    napi_value count_value;
    napi_create_int32(env, count, &count_value);
    if (!watcher_call(watcher, 1, &count_value)) return;
    if ((size_t)count < receiver->batch) return;  // the queue is drained
  }
}

// startReceiving(fd, slab, records, slotSize, onBatch(count), onError(message)) -> { stop() }
// onBatch must be done with the slab and records when it returns: the next batch overwrites them.
static napi_value udp_start_receiving(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  napi_valuetype on_batch_type, on_error_type;
  if (argc < 6 || !int_arg(env, argv[0], &fd) || napi_typeof(env, argv[4], &on_batch_type) != napi_ok ||
      napi_typeof(env, argv[5], &on_error_type) != napi_ok || on_batch_type != napi_function ||
      on_error_type != napi_function) {
    napi_throw_type_error(env, NULL, "startReceiving(fd, slab, records, slotSize, onBatch, onError)");
    return NULL;
  }
  batch_buffers_t buffers;
  if (!batch_arg(env, argv[1], argv[2], argv[3], &buffers)) return NULL;
  int family = socket_family(fd);
  if (family < 0) return throw_code(env, "startReceiving", -family);
  receiver_t *receiver = calloc(1, sizeof *receiver);
  if (receiver == NULL) return throw_code(env, "startReceiving", ENOMEM);
  receiver->buffers = buffers;
  receiver->batch = buffers.slots < RECV_BATCH_MAX ? buffers.slots : RECV_BATCH_MAX;
  for (size_t i = 0; i < receiver->batch; i++) {
    receiver->iovecs[i].iov_base = buffers.slab + i * buffers.slot_size;
    receiver->iovecs[i].iov_len = buffers.slot_size;
    receiver->messages[i].msg_hdr.msg_iov = &receiver->iovecs[i];
    receiver->messages[i].msg_hdr.msg_iovlen = 1;
    receiver->messages[i].msg_hdr.msg_control = receiver->control[i];
  }
  // The watcher holds both arrays so their memory outlives any JS reference to them.
  napi_value keep;
  CHECK(env, napi_create_array_with_length(env, 2, &keep));
  CHECK(env, napi_set_element(env, keep, 0, argv[1]));
  CHECK(env, napi_set_element(env, keep, 1, argv[2]));
  return watcher_start(env, fd, argv[4], argv[5], keep, "UdpReceiver", "UDP receive", udp_drain, receiver);
}

// Appends one control message at `at` (aligned, as CMSG_SPACE keeps it) and returns where the next goes.
static uint8_t *put_cmsg(uint8_t *at, int level, int type, const void *data, size_t length) {
  struct cmsghdr *cmsg = (struct cmsghdr *)at;
  cmsg->cmsg_level = level;
  cmsg->cmsg_type = type;
  cmsg->cmsg_len = CMSG_LEN(length);
  memcpy(CMSG_DATA(cmsg), data, length);
  return at + CMSG_SPACE(length);
}

// Writes a sent message's control messages: its source address (pktinfo) when the record asks for one,
// and UDP_SEGMENT when it holds several datagrams. Returns the bytes used (0: no control at all).
static size_t write_control(int family, const int32_t *record, uint64_t *control) {
  uint8_t *at = (uint8_t *)control;
  if (record[2] & FLAG_LOCAL) {
    const uint8_t *source = (const uint8_t *)(record + 8);
    if (family == AF_INET6) {
      struct in6_pktinfo pktinfo = {0};
      memcpy(&pktinfo.ipi6_addr, source, 16);
      at = put_cmsg(at, IPPROTO_IPV6, IPV6_PKTINFO, &pktinfo, sizeof pktinfo);
    } else {
      struct in_pktinfo pktinfo = {0};
      memcpy(&pktinfo.ipi_spec_dst, source + 12, 4);
      at = put_cmsg(at, IPPROTO_IP, IP_PKTINFO, &pktinfo, sizeof pktinfo);
    }
  }
  if (record[3] > 0) {
    uint16_t segment_size = (uint16_t)record[3];  // record_sendable checked it fits
    at = put_cmsg(at, SOL_UDP, UDP_SEGMENT, &segment_size, sizeof segment_size);
  }
  return (size_t)(at - (uint8_t *)control);
}

// Whether a record can be sent at all: its length fits its slot, its port is one, and a segment size (if
// any) fits UDP_SEGMENT's 16 bits and cuts the message into at most GSO_SEGMENTS_MAX datagrams.
static int record_sendable(const int32_t *record, size_t slot_size) {
  int32_t length = record[0], port = record[1], segment_size = record[3];
  if (length < 0 || (size_t)length > slot_size || port < 1 || port > 65535) return 0;
  if (segment_size == 0) return 1;
  return segment_size > 0 && segment_size <= 65535 &&
         ((int64_t)length + segment_size - 1) / segment_size <= GSO_SEGMENTS_MAX;
}

// sendMany(fd, family 4|6, slab, records, slotSize, start, end) -> messages sent from `start` (> 0), or
// -errno when the message at `start` could not be sent (the caller decides: drop it, retry without its
// source, or send a GSO message's datagrams one by one). Record flag FLAG_LOCAL asks for that source address
// (IPV6_PKTINFO / IP_PKTINFO); a segment size above 0 sends the slot as one UDP_SEGMENT message.
// `family` is the one the socket was opened with (the caller knows it), so a flush costs one sendmmsg and
// no getsockname. A wrong one costs refused sends, never memory: an IPv4 socket told 6 gets -EAFNOSUPPORT
// from the kernel; a dual-stack socket told 4 still reaches IPv4 peers and refuses IPv6 ones (-EINVAL).
static napi_value udp_send_many(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd, start, end;
  double family_number;  // a double, so 6.5 or 2^32 + 6 is refused rather than truncated to 6
  if (argc < 7 || !int_arg(env, argv[0], &fd) ||
      napi_get_value_double(env, argv[1], &family_number) != napi_ok ||
      (family_number != 4 && family_number != 6) || !int_arg(env, argv[5], &start) ||
      !int_arg(env, argv[6], &end)) {
    napi_throw_type_error(env, NULL, "sendMany(fd, family 4|6, slab, records, slotSize, start, end)");
    return NULL;
  }
  batch_buffers_t buffers;
  if (!batch_arg(env, argv[2], argv[3], argv[4], &buffers)) return NULL;
  if (start < 0 || end < start || (size_t)end > buffers.slots) {
    napi_throw_range_error(env, NULL, "sendMany: start/end outside the buffers");
    return NULL;
  }
  napi_value result;
  if (start == end) {
    CHECK(env, napi_create_int32(env, 0, &result));
    return result;
  }
  int family = family_number == 6 ? AF_INET6 : AF_INET;
  int sent = -EINVAL;
  struct mmsghdr messages[RECV_BATCH_MAX];
  struct iovec iovecs[RECV_BATCH_MAX];
  struct sockaddr_storage destinations[RECV_BATCH_MAX];
  uint64_t control[RECV_BATCH_MAX][CONTROL_SIZE / sizeof(uint64_t)];
  size_t count = 0;
  memset(messages, 0, sizeof messages);
  // Stops before the first record that cannot be sent at all: the next call reports it alone.
  for (int32_t i = start; i < end && count < RECV_BATCH_MAX; i++, count++) {
    const int32_t *record = buffers.records + (size_t)i * RECORD_INTS;
    socklen_t name_length = 0;
    if (record_sendable(record, buffers.slot_size))
      name_length = to_sockaddr(family, (const uint8_t *)(record + 4), record[1], &destinations[count]);
    if (name_length == 0) break;
    struct msghdr *header = &messages[count].msg_hdr;
    iovecs[count].iov_base = buffers.slab + (size_t)i * buffers.slot_size;
    iovecs[count].iov_len = (size_t)record[0];
    header->msg_iov = &iovecs[count];
    header->msg_iovlen = 1;
    header->msg_name = &destinations[count];
    header->msg_namelen = name_length;
    header->msg_controllen = write_control(family, record, control[count]);
    if (header->msg_controllen > 0) header->msg_control = control[count];
  }
  if (count > 0) {
    do {
      sent = sendmmsg(fd, messages, (unsigned)count, MSG_DONTWAIT);
    } while (sent < 0 && errno == EINTR);
    if (sent < 0) sent = -errno;
  }
  CHECK(env, napi_create_int32(env, sent, &result));
  return result;
}

// enableOffloads(fd) -> { gso, gro }: whether this kernel sends UDP_SEGMENT messages on the socket (it
// knows the option) and now hands it GRO batches (UDP_GRO set). A kernel without either says no; a bad
// descriptor throws.
static napi_value udp_enable_offloads(napi_env env, napi_callback_info info) {
  int32_t fd;
  if (!fd_args(env, info, "enableOffloads(fd)", &fd, 0, NULL)) return NULL;
  int segment_size = 0, on = 1;
  socklen_t length = sizeof segment_size;
  int gso = getsockopt(fd, SOL_UDP, UDP_SEGMENT, &segment_size, &length) == 0;
  if (!gso && (errno == EBADF || errno == ENOTSOCK)) return throw_code(env, "enableOffloads", errno);
  int gro = setsockopt(fd, SOL_UDP, UDP_GRO, &on, sizeof on) == 0;
  if (!gro && (errno == EBADF || errno == ENOTSOCK)) return throw_code(env, "enableOffloads", errno);
  napi_value result, gso_value, gro_value;
  CHECK(env, napi_create_object(env, &result));
  CHECK(env, napi_get_boolean(env, gso, &gso_value));
  CHECK(env, napi_get_boolean(env, gro, &gro_value));
  CHECK(env, napi_set_named_property(env, result, "gso", gso_value));
  CHECK(env, napi_set_named_property(env, result, "gro", gro_value));
  return result;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor properties[] = {
      {"open", NULL, udp_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"bufferSizes", NULL, udp_buffer_sizes, NULL, NULL, NULL, napi_enumerable, NULL},
      {"receiveDrops", NULL, udp_receive_drops, NULL, NULL, NULL, napi_enumerable, NULL},
      {"startReceiving", NULL, udp_start_receiving, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sendMany", NULL, udp_send_many, NULL, NULL, NULL, napi_enumerable, NULL},
      {"enableOffloads", NULL, udp_enable_offloads, NULL, NULL, NULL, napi_enumerable, NULL},
      {"close", NULL, close_fd_js, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_value segments_max;
  if (napi_define_properties(env, exports, sizeof properties / sizeof properties[0], properties) != napi_ok ||
      napi_create_int32(env, GSO_SEGMENTS_MAX, &segments_max) != napi_ok ||
      napi_set_named_property(env, exports, "GSO_SEGMENTS_MAX", segments_max) != napi_ok)
    return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)

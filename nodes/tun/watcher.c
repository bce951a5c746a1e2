// See watcher.h. Why uv_poll on the main loop rather than the threadpool: README.md.
#include "watcher.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

napi_value throw_errno(napi_env env, const char *what, int err) {
  char message[256];
  snprintf(message, sizeof message, "%s: %s", what, strerror(err));
  napi_throw_error(env, NULL, message);
  return NULL;
}

int int_arg(napi_env env, napi_value value, int32_t *out) {
  return napi_get_value_int32(env, value, out) == napi_ok;
}

void *typed_arg(napi_env env, napi_value value, napi_typedarray_type want, size_t *count) {
  bool is_typed = false;
  napi_typedarray_type type;
  void *data;
  napi_value arraybuffer;
  size_t offset;
  if (napi_is_typedarray(env, value, &is_typed) != napi_ok || !is_typed ||
      napi_get_typedarray_info(env, value, &type, count, &data, &arraybuffer, &offset) != napi_ok ||
      type != want || data == NULL) {
    napi_throw_type_error(env, NULL, want == napi_int32_array ? "expected an Int32Array" : "expected a Uint8Array");
    return NULL;
  }
  return data;
}

int fd_args(napi_env env, napi_callback_info info, const char *usage, int32_t *fd, size_t more,
            napi_value *rest) {
  size_t argc = 1 + more;
  napi_value argv[5];
  if (argc > sizeof argv / sizeof argv[0] ||
      napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 + more ||
      !int_arg(env, argv[0], fd)) {
    napi_throw_type_error(env, NULL, usage);
    return 0;
  }
  for (size_t i = 0; i < more; i++) rest[i] = argv[1 + i];
  return 1;
}

napi_value close_fd_js(napi_env env, napi_callback_info info) {
  int32_t fd;
  if (!fd_args(env, info, "close(fd)", &fd, 0, NULL)) return NULL;
  if (close(fd) < 0) return throw_errno(env, "close", errno);
  return NULL;
}

static void watcher_free(uv_handle_t *handle) {
  watcher_t *watcher = (watcher_t *)handle->data;
  free(watcher->state);
  free(watcher);
}

static void watcher_stop(watcher_t *watcher) {
  if (watcher->stopped) return;
  watcher->stopped = 1;
  uv_poll_stop(&watcher->poll);
  napi_env env = watcher->env;
  napi_value self;
  void *ignored;
  if (napi_get_reference_value(env, watcher->self, &self) == napi_ok) napi_remove_wrap(env, self, &ignored);
  napi_delete_reference(env, watcher->self);
  napi_delete_reference(env, watcher->on_data);
  napi_delete_reference(env, watcher->on_error);
  if (watcher->buffers != NULL) napi_delete_reference(env, watcher->buffers);
  napi_async_destroy(env, watcher->async_context);
  // uv_close removes the fd from epoll at once, so the owner may close the fd right after stop().
  uv_close((uv_handle_t *)&watcher->poll, watcher_free);
}

static void call(watcher_t *watcher, napi_ref callback_ref, size_t argc, napi_value *argv) {
  napi_env env = watcher->env;
  napi_value callback, global, ignored;
  if (napi_get_reference_value(env, callback_ref, &callback) != napi_ok) return;
  napi_get_global(env, &global);
  // make_callback (not call_function): runs the microtask queue afterwards and reports uncaught
  // exceptions the way Node does for its own I/O callbacks.
  if (napi_make_callback(env, watcher->async_context, global, callback, argc, argv, &ignored) ==
      napi_pending_exception) {
    napi_value error;
    napi_get_and_clear_last_exception(env, &error);
    napi_fatal_exception(env, error);
  }
}

int watcher_call(watcher_t *watcher, size_t argc, napi_value *argv) {
  call(watcher, watcher->on_data, argc, argv);
  return !watcher->stopped;
}

// Reports `text` to the error callback and stops watching.
static void fail_with(watcher_t *watcher, const char *text) {
  if (watcher->stopped) return;
  // Off the loop before JS hears of it: the callback (or a microtask it runs) may close the fd and open
  // another with the same number, which libuv refuses to poll while this handle still claims it.
  uv_poll_stop(&watcher->poll);
  napi_value message;
  napi_create_string_utf8(watcher->env, text, NAPI_AUTO_LENGTH, &message);
  call(watcher, watcher->on_error, 1, &message);
  watcher_stop(watcher);
}

void watcher_fail(watcher_t *watcher, const char *prefix, int err) {
  char text[160];
  snprintf(text, sizeof text, "%s: %s", prefix, strerror(err));
  fail_with(watcher, text);
}

// Whether every buffer the drain function writes into is still attached. The drain holds raw pointers
// taken at start; JS can detach an ArrayBuffer (a transfer to a worker or structuredClone), which frees
// or moves its memory, and a read into it then would write into freed memory. A few Node-API calls per
// wakeup, not per datagram. Unsure (a call failed) counts as detached: better no read than a bad one.
static int buffers_attached(watcher_t *watcher) {
  if (watcher->buffers == NULL) return 1;
  napi_env env = watcher->env;
  napi_value buffers;
  uint32_t count;
  if (napi_get_reference_value(env, watcher->buffers, &buffers) != napi_ok ||
      napi_get_array_length(env, buffers, &count) != napi_ok)
    return 0;
  for (uint32_t i = 0; i < count; i++) {
    napi_value array, arraybuffer;
    napi_typedarray_type type;
    size_t length, offset;
    void *data;
    bool detached;
    if (napi_get_element(env, buffers, i, &array) != napi_ok ||
        napi_get_typedarray_info(env, array, &type, &length, &data, &arraybuffer, &offset) != napi_ok ||
        napi_is_detached_arraybuffer(env, arraybuffer, &detached) != napi_ok || detached)
      return 0;
  }
  return 1;
}

static void on_readable(uv_poll_t *poll, int status, int events) {
  (void)events;
  watcher_t *watcher = (watcher_t *)poll->data;
  napi_handle_scope scope;
  napi_open_handle_scope(watcher->env, &scope);
  if (status < 0) {
    watcher_fail(watcher, watcher->error_prefix, -status);
  } else if (!buffers_attached(watcher)) {
    char text[160];
    snprintf(text, sizeof text, "%s: buffer detached", watcher->error_prefix);
    fail_with(watcher, text);
  } else {
    watcher->drain(watcher);
  }
  napi_close_handle_scope(watcher->env, scope);
}

static napi_value stop_js(napi_env env, napi_callback_info info) {
  napi_value self;
  if (napi_get_cb_info(env, info, NULL, NULL, &self, NULL) != napi_ok) return NULL;
  watcher_t *watcher;
  // Unwrapping fails once the watcher has stopped (after a read error): stop() is then a no-op.
  if (napi_unwrap(env, self, (void **)&watcher) == napi_ok) watcher_stop(watcher);
  return NULL;
}

#define START_CHECK(call)                                         \
  do {                                                            \
    if ((call) != napi_ok) {                                      \
      watcher_stop(watcher);                                      \
      napi_throw_error(env, NULL, "napi call failed: " #call);    \
      return NULL;                                                \
    }                                                             \
  } while (0)

napi_value watcher_start(napi_env env, int fd, napi_value on_data, napi_value on_error, napi_value buffers,
                         const char *resource_name, const char *error_prefix, watcher_drain_fn drain,
                         void *state) {
  uv_loop_t *loop;
  watcher_t *watcher = calloc(1, sizeof *watcher);
  if (watcher == NULL || napi_get_uv_event_loop(env, &loop) != napi_ok) {
    free(watcher);
    free(state);
    return throw_errno(env, resource_name, ENOMEM);
  }
  watcher->env = env;
  watcher->fd = fd;
  watcher->drain = drain;
  watcher->error_prefix = error_prefix;
  watcher->state = state;
  int err = uv_poll_init(loop, &watcher->poll, fd);
  if (err < 0) {
    free(state);
    free(watcher);
    return throw_errno(env, "uv_poll_init", -err);
  }
  watcher->poll.data = watcher;
  // From here on every failure goes through watcher_stop, which releases what was made so far.
  napi_value name, handle, stop;
  if (napi_create_string_utf8(env, resource_name, NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_object(env, &handle) != napi_ok ||
      napi_async_init(env, handle, name, &watcher->async_context) != napi_ok) {
    watcher->stopped = 1;
    uv_close((uv_handle_t *)&watcher->poll, watcher_free);
    napi_throw_error(env, NULL, "watcher: napi setup failed");
    return NULL;
  }
  START_CHECK(napi_create_reference(env, on_data, 1, &watcher->on_data));
  START_CHECK(napi_create_reference(env, on_error, 1, &watcher->on_error));
  if (buffers != NULL) START_CHECK(napi_create_reference(env, buffers, 1, &watcher->buffers));
  START_CHECK(napi_create_function(env, "stop", NAPI_AUTO_LENGTH, stop_js, NULL, &stop));
  START_CHECK(napi_set_named_property(env, handle, "stop", stop));
  START_CHECK(napi_wrap(env, handle, watcher, NULL, NULL, NULL));
  START_CHECK(napi_create_reference(env, handle, 1, &watcher->self));
  err = uv_poll_start(&watcher->poll, UV_READABLE, on_readable);
  if (err < 0) {
    watcher_stop(watcher);
    return throw_errno(env, "uv_poll_start", -err);
  }
  return handle;
}

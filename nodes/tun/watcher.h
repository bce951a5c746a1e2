// What the TUN and UDP addons share: a readable-fd watcher (one uv_poll handle on the main loop, a JS
// callback for data and one for errors, and a drain function that each wakeup calls to read what is
// ready), and the small argument and error helpers.
#ifndef TUNNELBYTE_WATCHER_H
#define TUNNELBYTE_WATCHER_H

#include <node_api.h>
#include <uv.h>

#define CHECK(env, call)                                         \
  do {                                                           \
    if ((call) != napi_ok) {                                     \
      napi_throw_error((env), NULL, "napi call failed: " #call); \
      return NULL;                                               \
    }                                                            \
  } while (0)

typedef struct watcher watcher_t;

// Reads what is ready on the fd; calls watcher_call / watcher_fail as it goes.
typedef void (*watcher_drain_fn)(watcher_t *watcher);

struct watcher {
  uv_poll_t poll;
  napi_env env;
  napi_ref on_data;
  napi_ref on_error;
  napi_ref self;      // strong while watching: a watcher must not vanish with GC while packets flow
  napi_ref buffers;   // strong: a JS array of the typed arrays the drain function writes into (may be NULL);
                      // checked still attached before each drain, which fails the watcher otherwise
  napi_async_context async_context;
  const char *error_prefix;  // "TUN read": a failed poll is reported as "<prefix>: <strerror>"
  int fd;
  int stopped;
  watcher_drain_fn drain;
  void *state;        // the drain function's own memory, freed with the watcher
};

// Throws `what: strerror(err)` and returns NULL.
napi_value throw_errno(napi_env env, const char *what, int err);

// Reads an int32 argument; 0 if it is not a number.
int int_arg(napi_env env, napi_value value, int32_t *out);

// The arguments of a JS call `f(fd, ...more)`: fd as int32 and the `more` (at most 4) that follow into
// rest. 0, with a TypeError `usage` pending, when there are fewer or fd is not a number.
int fd_args(napi_env env, napi_callback_info info, const char *usage, int32_t *fd, size_t more,
            napi_value *rest);

// A typed array's bytes, checked for type; NULL (with a TypeError pending) otherwise.
void *typed_arg(napi_env env, napi_value value, napi_typedarray_type want, size_t *count);

// close(fd) for JS: throws on a bad descriptor.
napi_value close_fd_js(napi_env env, napi_callback_info info);

// Starts watching fd. Returns the JS handle { stop() }, or NULL with an exception pending (state is freed).
napi_value watcher_start(napi_env env, int fd, napi_value on_data, napi_value on_error, napi_value buffers,
                         const char *resource_name, const char *error_prefix, watcher_drain_fn drain,
                         void *state);

// Calls the data callback with argc arguments. Returns 0 if the watcher stopped during the call.
int watcher_call(watcher_t *watcher, size_t argc, napi_value *argv);

// Reports "<prefix>: strerror(err)" to the error callback and stops watching.
void watcher_fail(watcher_t *watcher, const char *prefix, int err);

#endif

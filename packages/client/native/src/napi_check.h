#ifndef STRATA_NAPI_CHECK_H
#define STRATA_NAPI_CHECK_H
#include <node_api.h>
/* In a function returning napi_value: an N-API call that fails throws and returns NULL. */
#define CHECK(call)                                                                 \
  do {                                                                              \
    if ((call) != napi_ok) {                                                        \
      napi_throw_error(env, NULL, "strata_native: N-API call failed: " #call);    \
      return NULL;                                                                  \
    }                                                                               \
  } while (0)

/* Fetches up to `want` arguments into argv (missing ones are undefined) and their count into *got
 * (when got is not NULL). Fewer than `need` throws a TypeError with the usage text: returns -1. */
static inline int get_args(napi_env env, napi_callback_info info, size_t want, size_t need, napi_value *argv, const char *usage,
                           size_t *got) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) {
    napi_throw_error(env, NULL, "strata_native: napi_get_cb_info failed");
    return -1;
  }
  if (argc < need) {
    napi_throw_type_error(env, NULL, usage);
    return -1;
  }
  if (got) *got = argc;
  return 0;
}
#endif

/* gzip inflation into caller-supplied buffers, for the layer pipeline's worker threads.
 * zlib is the copy linked into Node itself (its symbols are exported by the node binary), so
 * nothing extra is linked. The stream object is owned by a JS external and freed by its finalizer.
 *
 *   inflateCreate()                                  -> handle (gzip framing, 32 KiB window)
 *   inflateStep(handle, in, inOff, out, outOff, res)  -> fills res[0] = input bytes consumed,
 *                                                        res[1] = output bytes produced,
 *                                                        res[2] = 1 when a gzip member ended
 *   inflateReset(handle)                              -> ready for the next member
 * Corrupt input throws an Error with code Z_DATA_ERROR (or the zlib code name) and zlib's message. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <node_api.h>
#include "napi_check.h"
#include "inflate.h"


static void finalize_stream(napi_env env, void *data, void *hint) {
  z_stream *zs = data;
  inflateEnd(zs);
  free(zs);
}

static z_stream *get_stream(napi_env env, napi_value v) {
  void *p = NULL;
  if (napi_get_value_external(env, v, &p) != napi_ok || !p) {
    napi_throw_type_error(env, NULL, "expected an inflate handle");
    return NULL;
  }
  return p;
}

static int get_bytes(napi_env env, napi_value v, uint8_t **data, size_t *len) {
  bool ok = false;
  napi_is_typedarray(env, v, &ok);
  if (!ok) {
    napi_throw_type_error(env, NULL, "expected a Uint8Array");
    return -1;
  }
  napi_typedarray_type t;
  void *d;
  if (napi_get_typedarray_info(env, v, &t, len, &d, NULL, NULL) != napi_ok || t != napi_uint8_array) {
    napi_throw_type_error(env, NULL, "expected a Uint8Array");
    return -1;
  }
  *data = d;
  return 0;
}

static napi_value js_inflate_create(napi_env env, napi_callback_info info) {
  z_stream *zs = calloc(1, sizeof *zs);
  if (!zs) { napi_throw_error(env, "ENOMEM", "out of memory"); return NULL; }
  /* 15 + 16: a gzip wrapper (header, CRC-32 and length checked by zlib) */
  if (inflateInit2(zs, 15 + 16) != Z_OK) {
    free(zs);
    napi_throw_error(env, "Z_MEM_ERROR", "inflateInit2 failed");
    return NULL;
  }
  napi_value ext;
  if (napi_create_external(env, zs, finalize_stream, NULL, &ext) != napi_ok) {
    inflateEnd(zs);
    free(zs);
    napi_throw_error(env, NULL, "napi_create_external failed");
    return NULL;
  }
  return ext;
}

static const char *zcode(int r) {
  switch (r) {
    case Z_NEED_DICT: return "Z_NEED_DICT";
    case Z_DATA_ERROR: return "Z_DATA_ERROR";
    case Z_MEM_ERROR: return "Z_MEM_ERROR";
    case Z_STREAM_ERROR: return "Z_STREAM_ERROR";
    default: return "Z_ERROR";
  }
}

static napi_value js_inflate_step(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  if (get_args(env, info, 6, 6, argv, "inflateStep(handle, in, inOff, out, outOff, res)", NULL)) return NULL;
  z_stream *zs = get_stream(env, argv[0]);
  if (!zs) return NULL;
  uint8_t *in, *out;
  size_t inLen, outLen;
  if (get_bytes(env, argv[1], &in, &inLen) || get_bytes(env, argv[3], &out, &outLen)) return NULL;
  uint32_t inOff, outOff;
  if (napi_get_value_uint32(env, argv[2], &inOff) != napi_ok || napi_get_value_uint32(env, argv[4], &outOff) != napi_ok ||
      inOff > inLen || outOff > outLen) {
    napi_throw_range_error(env, NULL, "offset out of range");
    return NULL;
  }
  bool isArr = false;
  napi_is_typedarray(env, argv[5], &isArr);
  napi_typedarray_type rt;
  size_t rlen = 0;
  void *rdata = NULL;
  if (!isArr || napi_get_typedarray_info(env, argv[5], &rt, &rlen, &rdata, NULL, NULL) != napi_ok || rt != napi_float64_array || rlen < 3) {
    napi_throw_type_error(env, NULL, "res must be a Float64Array of 3");
    return NULL;
  }
  double *res = rdata;
  zs->next_in = in + inOff;
  zs->avail_in = (uInt)(inLen - inOff);
  zs->next_out = out + outOff;
  zs->avail_out = (uInt)(outLen - outOff);
  int r = inflate(zs, Z_NO_FLUSH);
  res[0] = (double)((inLen - inOff) - zs->avail_in);
  res[1] = (double)((outLen - outOff) - zs->avail_out);
  res[2] = r == Z_STREAM_END ? 1 : 0;
  if (r != Z_OK && r != Z_STREAM_END && r != Z_BUF_ERROR) {
    char msg[256];
    snprintf(msg, sizeof msg, "gzip: %s", zs->msg ? zs->msg : "corrupt data");
    napi_throw_error(env, zcode(r), msg);
    return NULL;
  }
  return NULL;
}

static napi_value js_inflate_reset(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (get_args(env, info, 1, 1, argv, "inflateReset(handle)", NULL)) return NULL;
  z_stream *zs = get_stream(env, argv[0]);
  if (!zs) return NULL;
  inflateReset(zs);
  return NULL;
}

void strata_register_inflate(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"inflateCreate", NULL, js_inflate_create, NULL, NULL, NULL, napi_enumerable, NULL},
    {"inflateStep", NULL, js_inflate_step, NULL, NULL, NULL, napi_enumerable, NULL},
    {"inflateReset", NULL, js_inflate_reset, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}

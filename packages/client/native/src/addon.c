/* strata_native: the few Linux syscalls Node does not expose, for the layer engine and mounts.
 * Every function is synchronous and throws an Error with Node-style `code`, `errno`,
 * `syscall` and `path` properties on failure. Paths may be strings (UTF-8) or Buffers
 * (raw bytes, for names that are not valid UTF-8). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <fcntl.h>
#include <unistd.h>
#include <node_api.h>
#include "napi_check.h"
#include "crc64.h"
#include "inflate.h"
#include "hugepages.h"


static napi_value throw_errno(napi_env env, int err, const char *syscall, const char *path) {
  char msg[PATH_MAX + 256];
  const char *name = strerrorname_np(err);
  if (!name) name = "EUNKNOWN";
  if (path)
    snprintf(msg, sizeof msg, "%s: %s, %s '%s'", name, strerror(err), syscall, path);
  else
    snprintf(msg, sizeof msg, "%s: %s, %s", name, strerror(err), syscall);
  napi_value m, code, e, v;
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &m);
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code);
  napi_create_error(env, code, m, &e);
  napi_create_int32(env, -err, &v);
  napi_set_named_property(env, e, "errno", v);
  napi_set_named_property(env, e, "code", code);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, e, "syscall", v);
  if (path) {
    napi_create_string_utf8(env, path, NAPI_AUTO_LENGTH, &v);
    napi_set_named_property(env, e, "path", v);
  }
  napi_throw(env, e);
  return NULL;
}

/* Copies a string or Buffer argument into a NUL-terminated malloc'd string.
 * Returns NULL (with a pending exception) on error. */
static char *get_cstr(napi_env env, napi_value v, const char *what) {
  bool isbuf = false;
  napi_is_buffer(env, v, &isbuf);
  if (isbuf) {
    void *data;
    size_t len;
    if (napi_get_buffer_info(env, v, &data, &len) != napi_ok) return NULL;
    if (memchr(data, 0, len)) {
      napi_throw_type_error(env, NULL, "argument contains a NUL byte");
      return NULL;
    }
    char *s = malloc(len + 1);
    memcpy(s, data, len);
    s[len] = 0;
    return s;
  }
  napi_valuetype t;
  napi_typeof(env, v, &t);
  if (t != napi_string) {
    char msg[128];
    snprintf(msg, sizeof msg, "%s must be a string or Buffer", what);
    napi_throw_type_error(env, NULL, msg);
    return NULL;
  }
  size_t len;
  napi_get_value_string_utf8(env, v, NULL, 0, &len);
  char *s = malloc(len + 1);
  napi_get_value_string_utf8(env, v, s, len + 1, &len);
  if (strlen(s) != len) {
    free(s);
    napi_throw_type_error(env, NULL, "argument contains a NUL byte");
    return NULL;
  }
  return s;
}

static int get_u32(napi_env env, napi_value v, uint32_t *out) {
  napi_valuetype t;
  napi_typeof(env, v, &t);
  if (t != napi_number) {
    napi_throw_type_error(env, NULL, "expected a number");
    return -1;
  }
  double d;
  napi_get_value_double(env, v, &d);
  if (!(d >= 0 && d <= 4294967295.0) || d != (double)(uint32_t)d) {
    napi_throw_range_error(env, NULL, "expected an unsigned 32-bit integer");
    return -1;
  }
  *out = (uint32_t)d;
  return 0;
}

/* mknod(path, mode, major, minor) */
static napi_value js_mknod(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (get_args(env, info, 4, 4, argv, "mknod(path, mode, major, minor)", NULL)) return NULL;
  uint32_t mode, maj, min;
  if (get_u32(env, argv[1], &mode) || get_u32(env, argv[2], &maj) || get_u32(env, argv[3], &min)) return NULL;
  char *path = get_cstr(env, argv[0], "path");
  if (!path) return NULL;
  napi_value r = NULL;
  if (mknod(path, (mode_t)mode, makedev(maj, min)) != 0) r = throw_errno(env, errno, "mknod", path);
  free(path);
  return r;
}

/* setxattr(path, name, value: Buffer, noFollow: boolean) */
static napi_value js_setxattr(napi_env env, napi_callback_info info) {
  size_t argc;
  napi_value argv[4];
  if (get_args(env, info, 4, 3, argv, "setxattr(path, name, value, noFollow)", &argc)) return NULL;
  bool isbuf = false;
  napi_is_buffer(env, argv[2], &isbuf);
  if (!isbuf) { napi_throw_type_error(env, NULL, "value must be a Buffer"); return NULL; }
  void *data;
  size_t len;
  CHECK(napi_get_buffer_info(env, argv[2], &data, &len));
  bool nofollow = false;
  if (argc >= 4) napi_get_value_bool(env, argv[3], &nofollow);
  char *path = get_cstr(env, argv[0], "path");
  if (!path) return NULL;
  char *name = get_cstr(env, argv[1], "name");
  if (!name) { free(path); return NULL; }
  int rc = nofollow ? lsetxattr(path, name, data, len, 0) : setxattr(path, name, data, len, 0);
  napi_value r = NULL;
  if (rc != 0) r = throw_errno(env, errno, nofollow ? "lsetxattr" : "setxattr", path);
  free(path);
  free(name);
  return r;
}

/* getxattr(path, name): Buffer | undefined (lgetxattr; undefined when the attribute is absent) */
static napi_value js_getxattr(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (get_args(env, info, 2, 2, argv, "getxattr(path, name)", NULL)) return NULL;
  char *path = get_cstr(env, argv[0], "path");
  if (!path) return NULL;
  char *name = get_cstr(env, argv[1], "name");
  if (!name) { free(path); return NULL; }
  napi_value r = NULL;
  for (;;) {
    ssize_t n = lgetxattr(path, name, NULL, 0);
    if (n < 0) {
      if (errno == ENODATA) napi_get_undefined(env, &r);
      else r = throw_errno(env, errno, "lgetxattr", path);
      break;
    }
    void *out;
    napi_value buf;
    char *tmp = malloc(n > 0 ? (size_t)n : 1);
    ssize_t m = lgetxattr(path, name, tmp, (size_t)n);
    if (m < 0) {
      int e = errno;
      free(tmp);
      if (e == ERANGE) continue; /* grew between the two calls */
      if (e == ENODATA) napi_get_undefined(env, &r);
      else r = throw_errno(env, e, "lgetxattr", path);
      break;
    }
    if (napi_create_buffer_copy(env, (size_t)m, tmp, &out, &buf) == napi_ok) r = buf;
    free(tmp);
    break;
  }
  free(path);
  free(name);
  return r;
}

/* listxattr(path): string[] (llistxattr) */
static napi_value js_listxattr(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (get_args(env, info, 1, 1, argv, "listxattr(path)", NULL)) return NULL;
  char *path = get_cstr(env, argv[0], "path");
  if (!path) return NULL;
  napi_value r = NULL;
  for (;;) {
    ssize_t n = llistxattr(path, NULL, 0);
    if (n < 0) { r = throw_errno(env, errno, "llistxattr", path); break; }
    char *tmp = malloc(n > 0 ? (size_t)n : 1);
    ssize_t m = llistxattr(path, tmp, (size_t)n);
    if (m < 0) {
      int e = errno;
      free(tmp);
      if (e == ERANGE) continue;
      r = throw_errno(env, e, "llistxattr", path);
      break;
    }
    napi_value arr;
    napi_create_array(env, &arr);
    uint32_t idx = 0;
    for (ssize_t i = 0; i < m;) {
      size_t l = strnlen(tmp + i, (size_t)(m - i));
      napi_value s;
      napi_create_string_utf8(env, tmp + i, l, &s);
      napi_set_element(env, arr, idx++, s);
      i += (ssize_t)l + 1;
    }
    free(tmp);
    r = arr;
    break;
  }
  free(path);
  return r;
}

/* mount(source, target, fstype, flags, data) */
static napi_value js_mount(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  if (get_args(env, info, 5, 5, argv, "mount(source, target, fstype, flags, data)", NULL)) return NULL;
  uint32_t flags;
  if (get_u32(env, argv[3], &flags)) return NULL;
  char *src = get_cstr(env, argv[0], "source");
  char *tgt = src ? get_cstr(env, argv[1], "target") : NULL;
  char *fst = tgt ? get_cstr(env, argv[2], "fstype") : NULL;
  char *data = fst ? get_cstr(env, argv[4], "data") : NULL;
  napi_value r = NULL;
  if (data && mount(src, tgt, fst, flags, data[0] ? data : NULL) != 0) r = throw_errno(env, errno, "mount", tgt);
  free(src);
  free(tgt);
  free(fst);
  free(data);
  return r;
}

/* umount(target, flags) (umount2) */
static napi_value js_umount(napi_env env, napi_callback_info info) {
  size_t argc;
  napi_value argv[2];
  if (get_args(env, info, 2, 1, argv, "umount(target, flags)", &argc)) return NULL;
  uint32_t flags = 0;
  if (argc >= 2) {
    napi_valuetype t;
    napi_typeof(env, argv[1], &t);
    if (t != napi_undefined && get_u32(env, argv[1], &flags)) return NULL;
  }
  char *tgt = get_cstr(env, argv[0], "target");
  if (!tgt) return NULL;
  napi_value r = NULL;
  if (umount2(tgt, (int)flags) != 0) r = throw_errno(env, errno, "umount2", tgt);
  free(tgt);
  return r;
}

/* crc64Update(state: Buffer(8) big-endian CRC so far, data: Uint8Array): updates state in place */
static napi_value js_crc64_update(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (get_args(env, info, 2, 2, argv, "crc64Update(state, data)", NULL)) return NULL;
  void *st, *data;
  size_t stlen, len;
  napi_typedarray_type tt;
  napi_value ab;
  size_t off;
  if (napi_get_typedarray_info(env, argv[0], &tt, &stlen, &st, &ab, &off) != napi_ok || tt != napi_uint8_array || stlen != 8) {
    napi_throw_type_error(env, NULL, "state must be an 8-byte Uint8Array");
    return NULL;
  }
  if (napi_get_typedarray_info(env, argv[1], &tt, &len, &data, &ab, &off) != napi_ok || tt != napi_uint8_array) {
    napi_throw_type_error(env, NULL, "data must be a Uint8Array");
    return NULL;
  }
  uint8_t *s = st;
  uint64_t crc = 0;
  for (int i = 0; i < 8; i++) crc = (crc << 8) | s[i];
  crc = crc64_update(crc, data, len);
  for (int i = 7; i >= 0; i--) { s[i] = (uint8_t)crc; crc >>= 8; }
  return NULL;
}

/* syncfs(path): flushes the whole filesystem holding path (syncfs(2) on an fd of it). Blocks the
 * calling thread for the duration; meant for worker threads. */
static napi_value js_syncfs(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (get_args(env, info, 1, 1, argv, "syncfs(path)", NULL)) return NULL;
  char *path = get_cstr(env, argv[0], "path");
  if (!path) return NULL;
  napi_value r = NULL;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) r = throw_errno(env, errno, "open", path);
  else {
    if (syncfs(fd) != 0) r = throw_errno(env, errno, "syncfs", path);
    close(fd);
  }
  free(path);
  return r;
}

/* startWriteback(fd, offset, length): asks the kernel to start writing that range of fd's dirty
 * pages now (sync_file_range with SYNC_FILE_RANGE_WRITE: does not wait), so a later syncfs has
 * less left to wait for. length 0 means to the end of the file. */
static napi_value js_start_writeback(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (get_args(env, info, 3, 3, argv, "startWriteback(fd, offset, length)", NULL)) return NULL;
  uint32_t fd;
  double off = 0, len = 0;
  if (get_u32(env, argv[0], &fd)) return NULL;
  if (napi_get_value_double(env, argv[1], &off) != napi_ok || napi_get_value_double(env, argv[2], &len) != napi_ok || off < 0 || len < 0) {
    napi_throw_range_error(env, NULL, "offset and length must be non-negative numbers");
    return NULL;
  }
  if (sync_file_range((int)fd, (off64_t)off, (off64_t)len, SYNC_FILE_RANGE_WRITE) != 0) return throw_errno(env, errno, "sync_file_range", NULL);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  crc64_init();
  napi_property_descriptor props[] = {
    {"mknod", NULL, js_mknod, NULL, NULL, NULL, napi_enumerable, NULL},
    {"setxattr", NULL, js_setxattr, NULL, NULL, NULL, napi_enumerable, NULL},
    {"getxattr", NULL, js_getxattr, NULL, NULL, NULL, napi_enumerable, NULL},
    {"listxattr", NULL, js_listxattr, NULL, NULL, NULL, napi_enumerable, NULL},
    {"mount", NULL, js_mount, NULL, NULL, NULL, napi_enumerable, NULL},
    {"umount", NULL, js_umount, NULL, NULL, NULL, napi_enumerable, NULL},
    {"crc64Update", NULL, js_crc64_update, NULL, NULL, NULL, napi_enumerable, NULL},
    {"syncfs", NULL, js_syncfs, NULL, NULL, NULL, napi_enumerable, NULL},
    {"startWriteback", NULL, js_start_writeback, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  strata_register_inflate(env, exports);
  strata_register_hugepages(env, exports);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)

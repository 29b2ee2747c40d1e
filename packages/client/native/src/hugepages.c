/* hugeArena(bytes): an ArrayBuffer of `bytes` (a multiple of 2 MiB) of anonymous memory aligned to
 * 2 MiB and advised MADV_HUGEPAGE, unmapped when garbage collected. With transparent huge pages in
 * `madvise` mode (the common default) its first touch costs one page fault per 2 MiB instead of
 * one per 4 KiB. Used by the client's pool of 1 MiB I/O buffers (src/registry/lease.ts, which
 * states the measured figure). The advice is best effort: without huge pages the memory is plain
 * anonymous memory. */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <node_api.h>
#include "napi_check.h"
#include "hugepages.h"

#define HUGE_PAGE ((size_t)2 << 20)
#define MAX_ARENA ((size_t)1 << 30)

static void unmap_arena(napi_env env, void *data, void *hint) {
  (void)env;
  munmap(data, (size_t)(uintptr_t)hint);
}

static napi_value js_huge_arena(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (get_args(env, info, 1, 1, argv, "hugeArena(bytes)", NULL)) return NULL;
  uint32_t want;
  if (napi_get_value_uint32(env, argv[0], &want) != napi_ok || want == 0 || want % HUGE_PAGE != 0 || want > MAX_ARENA) {
    napi_throw_range_error(env, NULL, "hugeArena: bytes must be a positive multiple of 2 MiB, at most 1 GiB");
    return NULL;
  }
  size_t len = want;
  /* map one huge page more than asked, keep the 2 MiB aligned part */
  void *p = mmap(NULL, len + HUGE_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    napi_throw_error(env, "ENOMEM", strerror(errno));
    return NULL;
  }
  uintptr_t at = ((uintptr_t)p + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1);
  size_t head = at - (uintptr_t)p;
  if (head) munmap(p, head);
  if (HUGE_PAGE - head) munmap((void *)(at + len), HUGE_PAGE - head);
  madvise((void *)at, len, MADV_HUGEPAGE);
  napi_value ab;
  if (napi_create_external_arraybuffer(env, (void *)at, len, unmap_arena, (void *)(uintptr_t)len, &ab) != napi_ok) {
    munmap((void *)at, len);
    napi_throw_error(env, NULL, "hugeArena: external ArrayBuffers are not supported here");
    return NULL;
  }
  return ab;
}

void strata_register_hugepages(napi_env env, napi_value exports) {
  napi_property_descriptor d = {"hugeArena", NULL, js_huge_arena, NULL, NULL, NULL, napi_enumerable, NULL};
  napi_define_properties(env, exports, 1, &d);
}

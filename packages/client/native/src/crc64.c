/* CRC-64/ISO (reflected polynomial 0xD800000000000000, init and xorout all ones),
 * the checksum tar-split stores for file contents. Slicing-by-8. */
#include <stdint.h>
#include <stddef.h>
#include <string.h>
#include <pthread.h>
#include <stdlib.h>
#include "crc64.h"

static uint64_t table[8][256];

static void build_tables(void) {
  for (int i = 0; i < 256; i++) {
    uint64_t c = (uint64_t)i;
    for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0xD800000000000000ULL : c >> 1;
    table[0][i] = c;
  }
  for (int i = 0; i < 256; i++) {
    uint64_t c = table[0][i];
    for (int t = 1; t < 8; t++) {
      c = table[0][c & 0xff] ^ (c >> 8);
      table[t][i] = c;
    }
  }
}

static pthread_once_t once = PTHREAD_ONCE_INIT;

/* Thread-safe: the addon is loaded by the main thread and by layer worker threads. */
void crc64_init(void) {
  pthread_once(&once, build_tables);
}

/* Table-driven CRC on the internal (not inverted) register. */
static uint64_t crc64_raw(uint64_t crc, const uint8_t *p, size_t n) {
  while (n >= 8) {
    uint64_t w;
    memcpy(&w, p, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    w = __builtin_bswap64(w);
#endif
    crc ^= w;
    crc = table[7][crc & 0xff] ^ table[6][(crc >> 8) & 0xff] ^ table[5][(crc >> 16) & 0xff] ^
          table[4][(crc >> 24) & 0xff] ^ table[3][(crc >> 32) & 0xff] ^ table[2][(crc >> 40) & 0xff] ^
          table[1][(crc >> 48) & 0xff] ^ table[0][crc >> 56];
    p += 8;
    n -= 8;
  }
  while (n--) crc = table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
  return crc;
}

#if defined(__x86_64__)
#include <immintrin.h>

/* Carry-less multiplication folding (reflected domain). A 128-bit register R loaded little-endian
 * holds message bits in stream order: its low 64 bits H are the high-degree half. Folding R over
 * d more message bits computes R*x^d = H*x^(d+64) + L*x^d (mod P); since a reflected clmul of two
 * 64-bit values yields the product times x, the constants are bitrev64(x^(d+63) mod P) for H and
 * bitrev64(x^(d-1) mod P) for L, with P = x^64 + x^4 + x^3 + x + 1. The final 128-bit register is
 * reduced by running the table CRC over its 16 bytes from a zero register. */
#define K128_H 0x6b70000000000001ULL /* x^191 */
#define K128_L 0xf500000000000001ULL /* x^127 */
#define K512_H 0x01b001b1b0000001ULL /* x^575 */
#define K512_L 0xb100010100000001ULL /* x^511 */

__attribute__((target("pclmul,sse2"))) static inline __m128i fold(__m128i x, __m128i k) {
  return _mm_xor_si128(_mm_clmulepi64_si128(x, k, 0x00), _mm_clmulepi64_si128(x, k, 0x11));
}

__attribute__((target("pclmul,sse2"))) static uint64_t crc64_clmul(uint64_t crc, const uint8_t *p, size_t n) {
  const __m128i k128 = _mm_set_epi64x((long long)K128_L, (long long)K128_H);
  const __m128i k512 = _mm_set_epi64x((long long)K512_L, (long long)K512_H);
  __m128i x0 = _mm_loadu_si128((const __m128i *)p);
  __m128i x1 = _mm_loadu_si128((const __m128i *)(p + 16));
  __m128i x2 = _mm_loadu_si128((const __m128i *)(p + 32));
  __m128i x3 = _mm_loadu_si128((const __m128i *)(p + 48));
  x0 = _mm_xor_si128(x0, _mm_cvtsi64_si128((long long)crc));
  p += 64;
  n -= 64;
  while (n >= 64) {
    x0 = _mm_xor_si128(fold(x0, k512), _mm_loadu_si128((const __m128i *)p));
    x1 = _mm_xor_si128(fold(x1, k512), _mm_loadu_si128((const __m128i *)(p + 16)));
    x2 = _mm_xor_si128(fold(x2, k512), _mm_loadu_si128((const __m128i *)(p + 32)));
    x3 = _mm_xor_si128(fold(x3, k512), _mm_loadu_si128((const __m128i *)(p + 48)));
    p += 64;
    n -= 64;
  }
  x1 = _mm_xor_si128(x1, fold(x0, k128));
  x2 = _mm_xor_si128(x2, fold(x1, k128));
  x3 = _mm_xor_si128(x3, fold(x2, k128));
  while (n >= 16) {
    x3 = _mm_xor_si128(fold(x3, k128), _mm_loadu_si128((const __m128i *)p));
    p += 16;
    n -= 16;
  }
  uint8_t tmp[16];
  _mm_storeu_si128((__m128i *)tmp, x3);
  return crc64_raw(crc64_raw(0, tmp, 16), p, n);
}

static int have_clmul = -1;
#endif

/* Continues a CRC: `crc` is the value returned for the preceding bytes (0 for none). */
uint64_t crc64_update(uint64_t crc, const uint8_t *p, size_t n) {
#if defined(__x86_64__)
  if (have_clmul < 0) have_clmul = __builtin_cpu_supports("pclmul") && !getenv("STRATA_CRC64_NO_CLMUL") ? 1 : 0;
  if (have_clmul && n >= 128) return ~crc64_clmul(~crc, p, n);
#endif
  return ~crc64_raw(~crc, p, n);
}

/* CRC-64/ISO (reflected polynomial 0xD800000000000000, init and xorout all ones),
 * the checksum tar-split stores for file contents. Slicing-by-8. */
#include <stdint.h>
#include <stddef.h>
#include <string.h>
#include <pthread.h>
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

/* Continues a CRC: `crc` is the value returned for the preceding bytes (0 for none). */
uint64_t crc64_update(uint64_t crc, const uint8_t *p, size_t n) {
  crc = ~crc;
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
  return ~crc;
}

#ifndef STRATA_CRC64_H
#define STRATA_CRC64_H
#include <stdint.h>
#include <stddef.h>
void crc64_init(void);
uint64_t crc64_update(uint64_t crc, const uint8_t *p, size_t n);
#endif

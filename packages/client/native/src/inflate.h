#ifndef STRATA_INFLATE_H
#define STRATA_INFLATE_H
#include <node_api.h>
/* Adds inflateCreate/inflateStep/inflateReset to the addon's exports. */
void strata_register_inflate(napi_env env, napi_value exports);
#endif

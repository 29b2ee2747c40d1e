#ifndef STRATA_HUGEPAGES_H
#define STRATA_HUGEPAGES_H
#include <node_api.h>
void strata_register_hugepages(napi_env env, napi_value exports);
#endif

{
  "targets": [
    {
      "target_name": "strata_hash",
      "sources": ["hashstate.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS", "OPENSSL_SUPPRESS_DEPRECATED"],
      "cflags_cc": ["-O2"]
    },
    {
      "target_name": "strata_sendfile",
      "sources": ["sendfile.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags_cc": ["-O2"]
    },
    {
      "target_name": "strata_memory",
      "sources": ["memory.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags_cc": ["-O2"]
    },
    {
      "target_name": "strata_relay",
      "sources": ["relay.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags_cc": ["-O2"]
    }
  ]
}

{
  "targets": [
    {
      "target_name": "strata_native",
      "sources": ["src/addon.c", "src/crc64.c", "src/inflate.c", "src/hugepages.c"],
      "cflags": ["-O3", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "defines": ["_GNU_SOURCE", "NAPI_VERSION=8"]
    },
    {
      "target_name": "strata-mount",
      "type": "executable",
      "sources": ["src/strata-mount.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"],
      "defines": ["_GNU_SOURCE"]
    }
  ]
}

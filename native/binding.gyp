{
  "targets": [
    {
      "target_name": "sriov_native",
      "sources": ["sriov_native.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-std=gnu11"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}

{
  "targets": [
    {
      "target_name": "attnlab_native",
      "sources": ["src/addon.cc", "src/kernels_avx512.cc", "src/kernels_avx2.cc", "src/kernels_base.cc"],
      "cflags_cc!": ["-fno-exceptions", "-O2"],
      "cflags_cc": ["-std=c++17", "-O3", "-fno-math-errno", "-fno-trapping-math", "-Wall", "-Wno-unused-function", "-Wno-psabi"],
      "libraries": ["-lopenblas", "-lpthread"]
    }
  ]
}

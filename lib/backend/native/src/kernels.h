// Declarations of the numeric kernels (kernels.inc), one namespace per instruction set; addon.cc picks one at load.
#pragma once

// Attention problem description shared by the forward and backward kernels (see kernels.inc for the shape legend).
struct Attn {
  const float *q, *k, *v;
  long B, H, G, Sq, Sk, D, E;
  float scale;
  const int* iv;       // [maskBatch, Sq, 4] visible key intervals, or null (every key visible)
  long ivBatchStride;  // Sq * 4, or 0 when one mask serves every batch row
};

#define ATTNLAB_DECLARE_KERNELS(ns)                                                                                 \
  namespace ns {                                                                                                    \
  void unary(int op, const float* x, float* y, long lo, long hi);                                                   \
  void binary(int op, const float* a, const float* b, float* y, const long* dims, const long* astr, const long* bstr, \
              int sa, int sb, long lo, long hi);                                                                    \
  void reduce_inner(int op, const float* x, float* y, long r, long lo, long hi);                                    \
  void reduce_middle(int op, const float* x, float* y, long r, long inner, long lo, long hi);                       \
  void softmax_rows(const float* x, float* y, long n, bool log, long lo, long hi);                                  \
  void gelu_grad(const float* x, const float* dy, float* dx, long lo, long hi);                                     \
  void adam(const float* p, const float* m, const float* v, const float* g, float* p1, float* m1, float* v1,        \
            const float* hp, long lo, long hi);                                                                     \
  void layernorm_fwd(const float* x, const float* g, const float* b, float* y, float* mean, float* rstd, long n,    \
                     float eps, long lo, long hi);                                                                  \
  void layernorm_bwd(const float* x, const float* g, const float* dy, const float* mean, const float* rstd,         \
                     float* dx, float* dg, float* db, long n, long lo, long hi);                                    \
  long flash_scratch_floats(long D, long E, long Sk);                                                               \
  long flash_bwd_scratch_floats(long D, long E);                                                                    \
  void flash_fwd(const Attn& a, float* O, float* L, float* scratch, long lo, long hi);                              \
  void flash_delta(const float* dO, const float* O, long E, float* Drow, long lo, long hi);                         \
  void flash_bwd(const Attn& a, const float* dO, const float* L, const float* Drow, float* dQacc, float* dK,        \
                 float* dV, float* scratch, long lo, long hi);                                                      \
  double fma_probe_flops();                                                                                         \
  float fma_probe(long rounds);                                                                                     \
  }

ATTNLAB_DECLARE_KERNELS(k_avx512)
ATTNLAB_DECLARE_KERNELS(k_avx2)
ATTNLAB_DECLARE_KERNELS(k_base)

// attnlab native kernels: an N-API addon that computes directly on tfjs's wasm heap.
//
// Every entry point takes the wasm heap (an ArrayBuffer) and byte offsets into it, so inputs are read and outputs
// written in place, without copies. The caller (lib/backend/native.ts) allocates outputs through the wasm backend first,
// then passes the heap: allocation may grow the heap and replace its ArrayBuffer.
//
// Threads: one pool of `threads` (default 2) workers including the calling thread. OpenBLAS runs single-threaded
// inside each worker, so the two thread systems never compete for the two cores.
//
// Determinism: every kernel gives the same bits whatever the thread count and whichever thread takes which piece of
// work. Work is cut into pieces whose boundaries depend only on the problem size; a reduction keeps one partial per
// piece and adds the partials in piece order. That holds for the sgemm calls too: OpenBLAS's result for an element
// depends on how the product is split into calls (measured: row or column pieces change up to 40% of the elements in
// the last bits), so Gemm splits by problem size, never by the thread count.
#include <node_api.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "kernels.h"

extern "C" {
// OpenBLAS's CBLAS entry points (declared here so the build needs only the library, not a particular header path).
enum { CblasRowMajor = 101 };
enum { CblasNoTrans = 111, CblasTrans = 112 };
void cblas_sgemm(int order, int ta, int tb, int m, int n, int k, float alpha, const float* a, int lda, const float* b,
                 int ldb, float beta, float* c, int ldc);
void openblas_set_num_threads(int n);
char* openblas_get_config(void);
}

namespace {

// ------------------------------------------------------------------------------------------------------------ pool
class Pool {
 public:
  explicit Pool(int n) : n_(n < 1 ? 1 : n) {
    for (int t = 1; t < n_; t++) workers_.emplace_back([this, t] { loop(t); });
  }
  ~Pool() {
    {
      std::lock_guard<std::mutex> g(mu_);
      stop_ = true;
      gen_++;
    }
    cv_.notify_all();
    for (auto& w : workers_) w.join();
  }
  int size() const { return n_; }

  // Offer fn(tid) to every thread (tid 0 is the caller, which always runs it) and return once no thread is inside.
  // A worker that has not started by the time the caller finishes is not waited for: on a machine whose other core
  // is busy, waiting for a descheduled worker would cost a scheduler time slice. fn must therefore share out its
  // work dynamically (an atomic counter), never assume every tid runs, and its result must not depend on which tid
  // ran which piece (tid may only pick scratch memory).
  void run(const std::function<void(int)>& fn) {
    if (n_ == 1) {
      fn(0);
      return;
    }
    std::lock_guard<std::mutex> one(run_mu_);  // JS worker threads share this pool: one job at a time
    job_ = &fn;
    open_.store(true);
    {
      std::lock_guard<std::mutex> g(mu_);
      gen_++;
    }
    cv_.notify_all();
    fn(0);
    open_.store(false);
    while (inside_.load() != 0) __builtin_ia32_pause();
  }

 private:
  void loop(int tid) {
    uint64_t seen = 0;
    for (;;) {
      // Spin briefly (kernels come in bursts from one training step), then sleep.
      bool got = false;
      for (int i = 0; i < 4000 && !got; i++) {
        if (gen_.load(std::memory_order_acquire) != seen) got = true;
        else __builtin_ia32_pause();
      }
      if (!got) {
        std::unique_lock<std::mutex> g(mu_);
        cv_.wait(g, [&] { return gen_.load() != seen; });
      }
      seen = gen_.load();
      if (stop_) return;
      inside_.fetch_add(1);
      if (open_.load() && gen_.load() == seen) (*job_)(tid);
      inside_.fetch_sub(1);
    }
  }

  int n_;
  std::vector<std::thread> workers_;
  std::mutex mu_, run_mu_;
  std::condition_variable cv_;
  std::atomic<uint64_t> gen_{0};
  std::atomic<bool> open_{false};
  std::atomic<int> inside_{0};
  const std::function<void(int)>* job_ = nullptr;
  std::atomic<bool> stop_{false};
};

Pool* pool = nullptr;

// Split [0, n) into chunks of `grain` handed out dynamically; single-threaded when the work is small. The chunk
// boundaries depend on n and grain only, so a kernel whose result depends on them is still deterministic.
void parallel_for(long n, long grain, const std::function<void(long, long)>& fn, bool parallel = true) {
  if (n <= 0) return;
  if (!parallel || pool->size() == 1 || n <= grain) {
    fn(0, n);
    return;
  }
  std::atomic<long> next{0};
  pool->run([&](int) {
    for (;;) {
      long lo = next.fetch_add(grain);
      if (lo >= n) break;
      fn(lo, lo + grain < n ? lo + grain : n);
    }
  });
}

// ------------------------------------------------------------------------------------------------------- dispatch
struct Kernels {
  const char* isa;
  decltype(&k_base::unary) unary;
  decltype(&k_base::binary) binary;
  decltype(&k_base::reduce_inner) reduce_inner;
  decltype(&k_base::reduce_middle) reduce_middle;
  decltype(&k_base::softmax_rows) softmax_rows;
  decltype(&k_base::gelu_grad) gelu_grad;
  decltype(&k_base::adam) adam;
  decltype(&k_base::layernorm_fwd) layernorm_fwd;
  decltype(&k_base::layernorm_bwd) layernorm_bwd;
  decltype(&k_base::flash_scratch_floats) flash_scratch_floats;
  decltype(&k_base::flash_bwd_scratch_floats) flash_bwd_scratch_floats;
  decltype(&k_base::flash_fwd) flash_fwd;
  decltype(&k_base::flash_delta) flash_delta;
  decltype(&k_base::flash_bwd) flash_bwd;
};
#define ATTNLAB_TABLE(ns, name)                                                                                     \
  Kernels {                                                                                                         \
    name, ns::unary, ns::binary, ns::reduce_inner, ns::reduce_middle, ns::softmax_rows, ns::gelu_grad, ns::adam,    \
        ns::layernorm_fwd, ns::layernorm_bwd, ns::flash_scratch_floats,                                             \
        ns::flash_bwd_scratch_floats, ns::flash_fwd, ns::flash_delta, ns::flash_bwd                                 \
  }
Kernels K;

void choose_kernels() {
  __builtin_cpu_init();
  const char* force = getenv("ATTNLAB_NATIVE_ISA");
  std::string f = force ? force : "";
  bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
  bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (avx512 && (f.empty() || f == "avx512")) K = ATTNLAB_TABLE(k_avx512, "avx512");
  else if (avx2 && (f.empty() || f == "avx512" || f == "avx2")) K = ATTNLAB_TABLE(k_avx2, "avx2");
  else K = ATTNLAB_TABLE(k_base, "sse2");
}

// ------------------------------------------------------------------------------------------------------ napi glue
struct Args {
  napi_env env;
  size_t argc = 24;
  napi_value argv[24];
  uint8_t* heap = nullptr;
  size_t heapBytes = 0;
  bool ok = true;

  Args(napi_env e, napi_callback_info info) : env(e) {
    napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
    void* data = nullptr;
    if (argc < 1 || napi_get_arraybuffer_info(env, argv[0], &data, &heapBytes) != napi_ok) {
      fail("the first argument must be the wasm heap ArrayBuffer");
      return;
    }
    heap = static_cast<uint8_t*>(data);
  }
  void fail(const char* msg) {
    if (ok) napi_throw_error(env, "ATTNLAB_NATIVE", msg);
    ok = false;
  }
  double num(size_t i) {
    double v = 0;
    if (i >= argc || napi_get_value_double(env, argv[i], &v) != napi_ok) fail("expected a number argument");
    return v;
  }
  long integer(size_t i) { return (long)num(i); }
  // A float pointer into the heap at byte offset argv[i], checked to hold `count` floats.
  float* f32(size_t i, long count) {
    long off = integer(i);
    if (!ok) return nullptr;
    if (off < 0 || (off & 3) || (size_t)off + (size_t)count * 4 > heapBytes) {
      fail("a tensor offset lies outside the wasm heap");
      return nullptr;
    }
    return reinterpret_cast<float*>(heap + off);
  }
  int32_t* i32(size_t i, long count) { return reinterpret_cast<int32_t*>(f32(i, count)); }
  // An Int32Array argument (not on the heap), or null when the argument is null/undefined.
  const int32_t* i32array(size_t i, long* length) {
    napi_valuetype t;
    if (i >= argc || napi_typeof(env, argv[i], &t) != napi_ok || t == napi_null || t == napi_undefined) {
      *length = 0;
      return nullptr;
    }
    napi_typedarray_type tt;
    size_t len;
    void* data;
    if (napi_get_typedarray_info(env, argv[i], &tt, &len, &data, nullptr, nullptr) != napi_ok || tt != napi_int32_array) {
      fail("expected an Int32Array argument");
      return nullptr;
    }
    *length = (long)len;
    return static_cast<const int32_t*>(data);
  }
};

napi_value undefined(napi_env env) {
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}

// gemm(heap, aOff, bOff, cOff, M, N, K, transA, transB, batch, aIndex?, bIndex?, aBatches, bBatches)
// C[i] = op(A[aIndex[i]]) op(B[bIndex[i]]) for i < batch; an index array left null means the identity map.
napi_value Gemm(napi_env env, napi_callback_info info) {
  Args a(env, info);
  if (!a.ok) return nullptr;
  long M = a.integer(4), N = a.integer(5), Kd = a.integer(6);
  bool ta = a.num(7) != 0, tb = a.num(8) != 0;
  long batch = a.integer(9);
  long na = 0, nb = 0;
  const int32_t* ai = a.i32array(10, &na);
  const int32_t* bi = a.i32array(11, &nb);
  long aBatches = a.integer(12), bBatches = a.integer(13);
  const float* A = a.f32(1, aBatches * M * Kd);
  const float* B = a.f32(2, bBatches * Kd * N);
  float* C = a.f32(3, batch * M * N);
  if (!a.ok) return nullptr;
  if ((ai && na < batch) || (bi && nb < batch)) {
    a.fail("gemm: batch index arrays are shorter than the batch");
    return nullptr;
  }
  long lda = ta ? M : Kd, ldb = tb ? Kd : N;
  int opA = ta ? CblasTrans : CblasNoTrans, opB = tb ? CblasTrans : CblasNoTrans;
  auto one = [&](long i, long m0, long m1, long n0, long n1) {
    const float* Ab = A + (ai ? ai[i] : i) * M * Kd;
    const float* Bb = B + (bi ? bi[i] : i) * Kd * N;
    const float* As = ta ? Ab + m0 : Ab + m0 * lda;
    const float* Bs = tb ? Bb + n0 * ldb : Bb + n0;
    if (Kd == 0) {
      for (long r = m0; r < m1; r++)
        for (long c = n0; c < n1; c++) C[i * M * N + r * N + c] = 0;
      return;
    }
    cblas_sgemm(CblasRowMajor, opA, opB, (int)(m1 - m0), (int)(n1 - n0), (int)Kd, 1.0f, As, (int)lda, Bs, (int)ldb,
                0.0f, C + i * M * N + m0 * N + n0, (int)N);
  };
  double flops = 2.0 * M * N * Kd;
  bool par = flops * batch > 2.0e5;
  // Whole products when there are enough of them; else pieces of each. The split changes sgemm's last bits, so it
  // depends on the shapes only: kGemmTasks suits the default pool of 2 threads (as many tasks as it used to make).
  constexpr long kGemmTasks = 4;
  if (batch >= kGemmTasks || !par) {
    parallel_for(batch, 1, [&](long lo, long hi) {
      for (long i = lo; i < hi; i++) one(i, 0, M, 0, N);
    }, par);
  } else {
    // Few large products: split each one's rows (or columns) into at most kGemmTasks pieces of at least 32.
    bool rows = M >= N;
    long extent = rows ? M : N;
    long pieces = extent / 32 < kGemmTasks ? (extent / 32 > 1 ? extent / 32 : 1) : kGemmTasks;
    long step = (extent + pieces - 1) / pieces;
    parallel_for(batch * pieces, 1, [&](long lo, long hi) {
      for (long t = lo; t < hi; t++) {
        long i = t / pieces, p = t % pieces, s0 = p * step, s1 = s0 + step < extent ? s0 + step : extent;
        if (s0 >= s1) continue;
        if (rows) one(i, s0, s1, 0, N);
        else one(i, 0, M, s0, s1);
      }
    });
  }
  return undefined(env);
}

// unary(heap, op, xOff, yOff, n)
napi_value Unary(napi_env env, napi_callback_info info) {
  Args a(env, info);
  if (!a.ok) return nullptr;
  int op = (int)a.integer(1);
  long n = a.integer(4);
  const float* x = a.f32(2, n);
  float* y = a.f32(3, n);
  if (!a.ok) return nullptr;
  parallel_for(n, 1 << 14, [&](long lo, long hi) { K.unary(op, x, y, lo, hi); });
  return undefined(env);
}

// binary(heap, op, aOff, bOff, yOff, aSize, bSize, d0, d1, d2, n, as0, as1, as2, bs0, bs1, bs2, sa, sb)
napi_value Binary(napi_env env, napi_callback_info info) {
  Args a(env, info);
  if (!a.ok) return nullptr;
  int op = (int)a.integer(1);
  long dims[4] = {a.integer(7), a.integer(8), a.integer(9), a.integer(10)};
  long as[3] = {a.integer(11), a.integer(12), a.integer(13)};
  long bs[3] = {a.integer(14), a.integer(15), a.integer(16)};
  int sa = (int)a.integer(17), sb = (int)a.integer(18);
  long total = dims[0] * dims[1] * dims[2] * dims[3];
  const float* x = a.f32(2, a.integer(5));
  const float* y = a.f32(3, a.integer(6));
  float* out = a.f32(4, total);
  if (!a.ok) return nullptr;
  long rows = dims[0] * dims[1] * dims[2];
  long grain = (1 << 14) / (dims[3] > 0 ? dims[3] : 1) + 1;
  parallel_for(rows, grain, [&](long lo, long hi) { K.binary(op, x, y, out, dims, as, bs, sa, sb, lo, hi); });
  return undefined(env);
}

// reduce(heap, op, xOff, yOff, outer, r, inner)
napi_value Reduce(napi_env env, napi_callback_info info) {
  Args a(env, info);
  if (!a.ok) return nullptr;
  int op = (int)a.integer(1);
  long outer = a.integer(4), r = a.integer(5), inner = a.integer(6);
  const float* x = a.f32(2, outer * r * inner);
  float* y = a.f32(3, outer * inner);
  if (!a.ok) return nullptr;
  if (inner == 1) {
    parallel_for(outer, (1 << 14) / (r + 1) + 1, [&](long lo, long hi) { K.reduce_inner(op, x, y, r, lo, hi); });
  } else {
    long chunks = (inner + 255) / 256;
    bool par = outer * r * inner > (1 << 14);
    parallel_for(outer * chunks, 1, [&](long lo, long hi) { K.reduce_middle(op, x, y, r, inner, lo, hi); }, par);
  }
  return undefined(env);
}

// softmax(heap, xOff, yOff, rows, n, log)
napi_value Softmax(napi_env env, napi_callback_info info) {
  Args a(env, info);
  if (!a.ok) return nullptr;
  long rows = a.integer(3), n = a.integer(4);
  bool log = a.num(5) != 0;
  const float* x = a.f32(1, rows * n);
  float* y = a.f32(2, rows * n);
  if (!a.ok) return nullptr;
  parallel_for(rows, (1 << 13) / (n + 1) + 1, [&](long lo, long hi) { K.softmax_rows(x, y, n, log, lo, hi); });
  return undefined(env);
}

// gather(heap, xOff, idxOff, yOff, numIdx, rowLen, numRows) -> index of the first out-of-range entry, or -1.
napi_value Gather(napi_env env, napi_callback_info info) {
  Args a(env, info);
  if (!a.ok) return nullptr;
  long n = a.integer(4), len = a.integer(5), rows = a.integer(6);
  const float* x = a.f32(1, rows * len);
  const int32_t* idx = a.i32(2, n);
  float* y = a.f32(3, n * len);
  if (!a.ok) return nullptr;
  std::atomic<long> bad{-1};  // the smallest bad index, whichever thread saw it first
  parallel_for(n, (1 << 14) / (len + 1) + 1, [&](long lo, long hi) {
    for (long i = lo; i < hi; i++) {
      long r = idx[i];
      if (r < 0 || r >= rows) {
        long seen = bad.load();
        while ((seen < 0 || i < seen) && !bad.compare_exchange_weak(seen, i)) {
        }
        std::memset(y + i * len, 0, len * 4);
        continue;
      }
      std::memcpy(y + i * len, x + r * len, len * 4);
    }
  });
  napi_value out;
  napi_create_double(env, (double)bad.load(), &out);
  return out;
}

// segmentSum(heap, xOff, idxOff, yOff, n, rowLen, numSegments): y[s] = sum of x rows i with idx[i] == s.
// Threads split the columns, so no two write the same output, and every column adds its rows in index order however
// the columns are split. Returns the first out-of-range index, or -1.
napi_value SegmentSum(napi_env env, napi_callback_info info) {
  Args a(env, info);
  if (!a.ok) return nullptr;
  long n = a.integer(4), len = a.integer(5), segs = a.integer(6);
  const float* x = a.f32(1, n * len);
  const int32_t* idx = a.i32(2, n);
  float* y = a.f32(3, segs * len);
  if (!a.ok) return nullptr;
  long bad = -1;
  for (long i = 0; i < n && bad < 0; i++)
    if (idx[i] >= segs) bad = i;  // negative ids are dropped, as in TensorFlow
  std::memset(y, 0, segs * len * 4);
  if (bad < 0) {
    long chunk = len >= 64 ? (len / pool->size() + 15) / 16 * 16 : len;
    long pieces = (len + chunk - 1) / chunk;
    parallel_for(pieces, 1, [&](long lo, long hi) {
      for (long p = lo; p < hi; p++) {
        long c0 = p * chunk, c1 = c0 + chunk < len ? c0 + chunk : len;
        for (long i = 0; i < n; i++) {
          if (idx[i] < 0) continue;
          const float* src = x + i * len;
          float* dst = y + idx[i] * len;
          for (long c = c0; c < c1; c++) dst[c] += src[c];
        }
      }
    }, n * len > (1 << 14));
  }
  napi_value out;
  napi_create_double(env, (double)bad, &out);
  return out;
}

bool read_attn(Args& a, size_t base, Attn& at) {
  // base: B, H, G, Sq, Sk, D, E, scale, iv (Int32Array|null), ivBatchStride
  at.B = a.integer(base);
  at.H = a.integer(base + 1);
  at.G = a.integer(base + 2);
  at.Sq = a.integer(base + 3);
  at.Sk = a.integer(base + 4);
  at.D = a.integer(base + 5);
  at.E = a.integer(base + 6);
  at.scale = (float)a.num(base + 7);
  long ivLen = 0;
  at.iv = a.i32array(base + 8, &ivLen);
  at.ivBatchStride = a.integer(base + 9);
  if (!a.ok) return false;
  if (at.G <= 0 || at.H % at.G != 0) {
    a.fail("flash: kv heads must divide query heads");
    return false;
  }
  if (at.iv && ivLen < (at.ivBatchStride ? at.B : 1) * at.Sq * 4) {
    a.fail("flash: the mask interval array is too short");
    return false;
  }
  return true;
}

// adam(heap, pOff, mOff, vOff, gOff, p1Off, m1Off, v1Off, n, lr, b1, b2, eps, bc1, bc2, l2, wd)
napi_value Adam(napi_env env, napi_callback_info info) {
  Args a(env, info);
  if (!a.ok) return nullptr;
  long n = a.integer(8);
  float hp[10];
  for (int i = 0; i < 8; i++) hp[i] = (float)a.num(9 + i);
  // 1 - beta in double, then rounded: in float32, 1 - 0.999f is off by 5e-5 relative, which moved the first Adam
  // step by 2e-6 compared with the composed ops.
  hp[8] = (float)(1.0 - a.num(10));
  hp[9] = (float)(1.0 - a.num(11));
  const float* p = a.f32(1, n);
  const float* m = a.f32(2, n);
  const float* v = a.f32(3, n);
  const float* g = a.f32(4, n);
  float* p1 = a.f32(5, n);
  float* m1 = a.f32(6, n);
  float* v1 = a.f32(7, n);
  if (!a.ok) return nullptr;
  parallel_for(n, 1 << 14, [&](long lo, long hi) { K.adam(p, m, v, g, p1, m1, v1, hp, lo, hi); });
  return undefined(env);
}

// geluGrad(heap, xOff, dyOff, dxOff, n)
napi_value GeluGrad(napi_env env, napi_callback_info info) {
  Args a(env, info);
  if (!a.ok) return nullptr;
  long n = a.integer(4);
  const float* x = a.f32(1, n);
  const float* dy = a.f32(2, n);
  float* dx = a.f32(3, n);
  if (!a.ok) return nullptr;
  parallel_for(n, 1 << 14, [&](long lo, long hi) { K.gelu_grad(x, dy, dx, lo, hi); });
  return undefined(env);
}

// layerNorm(heap, xOff, gOff, bOff, yOff, meanOff, rstdOff, rows, n, eps)
napi_value LayerNorm(napi_env env, napi_callback_info info) {
  Args a(env, info);
  if (!a.ok) return nullptr;
  long rows = a.integer(7), n = a.integer(8);
  float eps = (float)a.num(9);
  const float* x = a.f32(1, rows * n);
  const float* g = a.f32(2, n);
  const float* b = a.f32(3, n);
  float* y = a.f32(4, rows * n);
  float* mean = a.f32(5, rows);
  float* rstd = a.f32(6, rows);
  if (!a.ok) return nullptr;
  parallel_for(rows, (1 << 14) / (n + 1) + 1, [&](long lo, long hi) { K.layernorm_fwd(x, g, b, y, mean, rstd, n, eps, lo, hi); });
  return undefined(env);
}

// layerNormGrad(heap, xOff, gOff, dyOff, meanOff, rstdOff, dxOff, dgOff, dbOff, rows, n)
napi_value LayerNormGrad(napi_env env, napi_callback_info info) {
  Args a(env, info);
  if (!a.ok) return nullptr;
  long rows = a.integer(9), n = a.integer(10);
  const float* x = a.f32(1, rows * n);
  const float* g = a.f32(2, n);
  const float* dy = a.f32(3, rows * n);
  const float* mean = a.f32(4, rows);
  const float* rstd = a.f32(5, rows);
  float* dx = a.f32(6, rows * n);
  float* dg = a.f32(7, n);
  float* db = a.f32(8, n);
  if (!a.ok) return nullptr;
  // dgamma and dbeta sum over rows: one partial per fixed chunk of rows (about 16k elements: its size depends on n
  // only), added up in chunk order, so the sums are the same whatever the thread count and whichever thread took which
  // chunk. Smaller chunks would add partials to sum (measured: 8k-element chunks cost 4-9% at 1 thread).
  long grain = (1 << 14) / (n + 1) + 1;
  long chunks = (rows + grain - 1) / grain;
  std::vector<float> part((size_t)chunks * 2 * n, 0.0f);  // per chunk: dgamma, dbeta
  parallel_for(chunks, 1, [&](long lo, long hi) {
    for (long c = lo; c < hi; c++) {
      float* pg = part.data() + (size_t)c * 2 * n;
      long r0 = c * grain, r1 = r0 + grain < rows ? r0 + grain : rows;
      K.layernorm_bwd(x, g, dy, mean, rstd, dx, pg, pg + n, n, r0, r1);
    }
  }, rows * n > (1 << 14));
  std::memset(dg, 0, n * 4);
  std::memset(db, 0, n * 4);
  for (long c = 0; c < chunks; c++) {
    const float* pg = part.data() + (size_t)c * 2 * n;
    for (long j = 0; j < n; j++) {
      dg[j] += pg[j];
      db[j] += pg[n + j];
    }
  }
  return undefined(env);
}

// flashFwd(heap, qOff, kOff, vOff, oOff, lOff, B, H, G, Sq, Sk, D, E, scale, iv, ivBatchStride)
napi_value FlashFwd(napi_env env, napi_callback_info info) {
  Args a(env, info);
  if (!a.ok) return nullptr;
  Attn at;
  if (!read_attn(a, 6, at)) return nullptr;
  at.q = a.f32(1, at.B * at.H * at.Sq * at.D);
  at.k = a.f32(2, at.B * at.G * at.Sk * at.D);
  at.v = a.f32(3, at.B * at.G * at.Sk * at.E);
  float* O = a.f32(4, at.B * at.H * at.Sq * at.E);
  float* L = a.f32(5, at.B * at.H * at.Sq);
  if (!a.ok) return nullptr;
  long nqb = (at.Sq + 63) / 64;
  long per = K.flash_scratch_floats(at.D, at.E);
  std::vector<float> scratch(per * pool->size() + 16);
  std::atomic<long> next{0};
  long tasks = at.B * at.H * nqb;
  pool->run([&](int tid) {
    float* s = scratch.data() + tid * per;
    for (;;) {
      long t = next.fetch_add(1);
      if (t >= tasks) break;
      K.flash_fwd(at, O, L, s, t, t + 1);
    }
  });
  return undefined(env);
}

// flashBwd(heap, qOff, kOff, vOff, oOff, dOOff, lOff, dqOff, dkOff, dvOff, B, H, G, Sq, Sk, D, E, scale, iv, ivStride)
napi_value FlashBwd(napi_env env, napi_callback_info info) {
  Args a(env, info);
  if (!a.ok) return nullptr;
  Attn at;
  if (!read_attn(a, 10, at)) return nullptr;
  long qn = at.B * at.H * at.Sq;
  at.q = a.f32(1, qn * at.D);
  at.k = a.f32(2, at.B * at.G * at.Sk * at.D);
  at.v = a.f32(3, at.B * at.G * at.Sk * at.E);
  const float* O = a.f32(4, qn * at.E);
  const float* dO = a.f32(5, qn * at.E);
  const float* L = a.f32(6, qn);
  float* dQ = a.f32(7, qn * at.D);
  float* dK = a.f32(8, at.B * at.G * at.Sk * at.D);
  float* dV = a.f32(9, at.B * at.G * at.Sk * at.E);
  if (!a.ok) return nullptr;
  long dp = (at.D + 15) / 16 * 16;
  std::vector<float> Drow(qn);
  long rowGrain = (1 << 15) / (at.D + at.E) + 1;  // small problems stay on one thread: a pool handoff costs more
  parallel_for(qn, rowGrain, [&](long lo, long hi) { K.flash_delta(dO, O, at.E, Drow.data(), lo, hi); });
  // A key block's dK and dV are summed inside its task; dQ sums over key blocks. Those are dealt to nkc fixed chunks
  // (key block kb to chunk kb % nkc, so causal work spreads evenly), each with its own dQ partial, added in chunk
  // order. nkc depends on the problem size only: about kFlashTasks tasks balance the default 2 threads.
  constexpr long kFlashTasks = 16;
  long bgs = at.B * at.G, nkb = (at.Sk + 63) / 64;
  long nkc = (kFlashTasks + bgs - 1) / bgs < nkb ? (kFlashTasks + bgs - 1) / bgs : nkb;
  if (nkc == 0) {  // no keys: no gradient reaches q
    std::memset(dQ, 0, qn * at.D * 4);
    return undefined(env);
  }
  // Not zeroed here: each task zeroes the rows it owns (in parallel, and into its own cache).
  std::unique_ptr<float[]> dQacc(new float[(size_t)nkc * qn * dp]);
  long per = K.flash_bwd_scratch_floats(at.D, at.E);
  std::vector<float> scratch(per * pool->size() + 16);
  long tasks = bgs * nkc, headRows = at.H / at.G * at.Sq;
  std::atomic<long> next{0};
  pool->run([&](int tid) {
    float* s = scratch.data() + tid * per;
    for (;;) {
      // Chunk-major order: under a causal mask the low chunks carry the most work, so they go first.
      long t = next.fetch_add(1);
      if (t >= tasks) break;
      long c = t / bgs, bg = t % bgs;
      float* acc = dQacc.get() + (size_t)c * qn * dp;
      // The dQ rows of kv group bg: its query heads, contiguous in [b, h, q].
      std::memset(acc + bg * headRows * dp, 0, headRows * dp * 4);
      for (long kb = c; kb < nkb; kb += nkc)
        K.flash_bwd(at, dO, L, Drow.data(), acc, dK, dV, s, bg * nkb + kb, bg * nkb + kb + 1);
    }
  });
  // dQ = partial 0 + partial 1 + ... in chunk order; the inner loops run along a row, so they vectorize.
  parallel_for(qn, rowGrain, [&](long lo, long hi) {
    for (long r = lo; r < hi; r++) {
      float* o = dQ + r * at.D;
      const float* p = dQacc.get() + r * dp;
      for (long c = 0; c < at.D; c++) o[c] = p[c];
      for (long k = 1; k < nkc; k++) {
        const float* pk = p + (size_t)k * qn * dp;
        for (long c = 0; c < at.D; c++) o[c] += pk[c];
      }
    }
  });
  return undefined(env);
}

napi_value Info(napi_env env, napi_callback_info) {
  napi_value obj, v;
  napi_create_object(env, &obj);
  napi_create_string_utf8(env, K.isa, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, obj, "isa", v);
  napi_create_int32(env, pool->size(), &v);
  napi_set_named_property(env, obj, "threads", v);
  const char* cfg = openblas_get_config();
  napi_create_string_utf8(env, cfg ? cfg : "", NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, obj, "blas", v);
  return obj;
}

// setThreads(n): rebuild the pool (benchmarks compare 1 and 2 threads).
napi_value SetThreads(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  double n = 0;
  if (argc < 1 || napi_get_value_double(env, argv[0], &n) != napi_ok) {
    napi_throw_type_error(env, "ATTNLAB_NATIVE", "setThreads: n must be a number (an integer in [1, 64])");
    return nullptr;
  }
  if (!(n >= 1 && n <= 64 && n == (double)(int)n)) {
    char msg[96];
    snprintf(msg, sizeof msg, "setThreads: n must be an integer in [1, 64], got %g", n);
    napi_throw_range_error(env, "ATTNLAB_NATIVE", msg);
    return nullptr;
  }
  delete pool;
  pool = new Pool((int)n);
  return undefined(env);
}

int default_threads() {
  const char* e = getenv("ATTNLAB_THREADS");
  if (e && atoi(e) > 0) return atoi(e);
  unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : hw > 2 ? 2 : (int)hw;
}

napi_value Init(napi_env env, napi_value exports) {
  choose_kernels();
  openblas_set_num_threads(1);
  if (!pool) pool = new Pool(default_threads());
  struct {
    const char* name;
    napi_callback cb;
  } fns[] = {{"gemm", Gemm},       {"unary", Unary},           {"binary", Binary},     {"reduce", Reduce},
             {"softmax", Softmax}, {"gather", Gather},
             {"geluGrad", GeluGrad}, {"adam", Adam}, {"layerNorm", LayerNorm}, {"layerNormGrad", LayerNormGrad},         {"segmentSum", SegmentSum},
             {"flashFwd", FlashFwd}, {"flashBwd", FlashBwd}, {"info", Info},        {"setThreads", SetThreads}};
  for (auto& f : fns) {
    napi_value fn;
    napi_create_function(env, f.name, NAPI_AUTO_LENGTH, f.cb, nullptr, &fn);
    napi_set_named_property(env, exports, f.name, fn);
  }
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)

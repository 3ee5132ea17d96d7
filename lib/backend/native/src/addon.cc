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
#include <chrono>
#include <condition_variable>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <initializer_list>
#include <new>
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
  decltype(&k_base::fma_probe_flops) fma_probe_flops;
  decltype(&k_base::fma_probe) fma_probe;
};
#define ATTNLAB_TABLE(ns, name)                                                                                     \
  Kernels {                                                                                                         \
    name, ns::unary, ns::binary, ns::reduce_inner, ns::reduce_middle, ns::softmax_rows, ns::gelu_grad, ns::adam,    \
        ns::layernorm_fwd, ns::layernorm_bwd, ns::flash_scratch_floats,                                             \
        ns::flash_bwd_scratch_floats, ns::flash_fwd, ns::flash_delta, ns::flash_bwd, ns::fma_probe_flops,          \
        ns::fma_probe                                                                                               \
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
// Every entry checks its arguments before touching memory and throws a JS error naming the entry and the argument
// (never a segfault): numbers must be integers where sizes or offsets are meant, sizes non-negative and their products
// representable, every tensor range inside the heap and not at offset 0 (the wasm allocator's failure value: a tensor
// there would overwrite the start of the heap), strides and batch indices inside their operands. Scratch memory the
// entry allocates itself is checked too: a failed allocation throws an out-of-memory error naming the bytes asked.
constexpr double kMaxInt = 9007199254740992.0;  // 2^53
constexpr long kMaxDim = 1L << 40;               // no single size on a 4 GiB heap comes near this

struct Args {
  napi_env env;
  const char* op;
  size_t argc = 24;
  napi_value argv[24];
  uint8_t* heap = nullptr;
  size_t heapBytes = 0;
  bool ok = true;

  Args(napi_env e, napi_callback_info info, const char* name) : env(e), op(name) {
    napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
    void* data = nullptr;
    if (argc < 1 || napi_get_arraybuffer_info(env, argv[0], &data, &heapBytes) != napi_ok) {
      fail("the first argument must be the wasm heap ArrayBuffer");
      return;
    }
    heap = static_cast<uint8_t*>(data);
  }
  // Throw (once) "attnlab native <op>: <message>".
  void fail(const char* fmt, ...) __attribute__((format(printf, 2, 3))) {
    if (!ok) return;
    ok = false;
    char msg[512];
    int n = snprintf(msg, sizeof msg, "attnlab native %s: ", op);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg + n, sizeof msg - n, fmt, ap);
    va_end(ap);
    napi_throw_error(env, "ATTNLAB_NATIVE", msg);
  }
  void oom(size_t bytes, const char* what) {
    if (!ok) return;
    ok = false;
    char msg[256];
    snprintf(msg, sizeof msg, "attnlab native %s: out of memory: could not allocate %zu bytes for %s", op, bytes, what);
    napi_throw_error(env, "ATTNLAB_NATIVE_OOM", msg);
  }
  double num(size_t i, const char* name = "a number argument") {
    double v = 0;
    if (!ok) return 0;
    if (i >= argc || napi_get_value_double(env, argv[i], &v) != napi_ok) {
      fail("%s (argument %zu) must be a number", name, i);
      return 0;
    }
    return v;
  }
  // An integer argument (a JS number with no fraction, |v| <= 2^53).
  long integer(size_t i, const char* name = "an integer argument") {
    double v = num(i, name);
    if (!ok) return 0;
    if (!(v == v) || v < -kMaxInt || v > kMaxInt || v != (double)(long)v) {
      fail("%s (argument %zu) must be an integer, got %g", name, i, v);
      return 0;
    }
    return (long)v;
  }
  // A size: an integer in [0, 2^40].
  long size(size_t i, const char* name) {
    long v = integer(i, name);
    if (ok && (v < 0 || v > kMaxDim)) fail("%s (argument %zu) must be a size in [0, 2^40], got %ld", name, i, v);
    return ok ? v : 0;
  }
  // The product of sizes, or -1 when it overflows (every factor is already >= 0).
  static long prod(std::initializer_list<long> xs) {
    long r = 1;
    for (long x : xs)
      if (__builtin_mul_overflow(r, x, &r) || r > (1L << 50)) return -1;
    return r;
  }
  // A float pointer into the heap at byte offset argv[i], checked to hold `count` floats.
  float* f32(size_t i, long count, const char* name) {
    long off = integer(i, name);
    if (!ok) return nullptr;
    if (count < 0) {
      fail("the size of %s overflows", name);
      return nullptr;
    }
    if (count > 0 && off == 0) {
      fail("%s sits at heap offset 0, the allocator's failure value (%ld bytes asked): the wasm heap is out of memory",
           name, count * 4);
      return nullptr;
    }
    if (off < 0 || (off & 3) || (size_t)off > heapBytes || (size_t)count * 4 > heapBytes - (size_t)off) {
      fail("%s (%ld floats at byte offset %ld) lies outside the %zu-byte wasm heap", name, count, off, heapBytes);
      return nullptr;
    }
    return reinterpret_cast<float*>(heap + off);
  }
  int32_t* i32(size_t i, long count, const char* name) { return reinterpret_cast<int32_t*>(f32(i, count, name)); }
  // An Int32Array argument (not on the heap), or null when the argument is null/undefined.
  const int32_t* i32array(size_t i, long* length, const char* name) {
    napi_valuetype t;
    *length = 0;
    if (!ok) return nullptr;
    if (i >= argc || napi_typeof(env, argv[i], &t) != napi_ok || t == napi_null || t == napi_undefined) return nullptr;
    napi_typedarray_type tt;
    size_t len;
    void* data;
    if (napi_get_typedarray_info(env, argv[i], &tt, &len, &data, nullptr, nullptr) != napi_ok || tt != napi_int32_array) {
      fail("%s (argument %zu) must be an Int32Array or null", name, i);
      return nullptr;
    }
    *length = (long)len;
    return static_cast<const int32_t*>(data);
  }
  // Scratch memory off the wasm heap; false (with an out-of-memory error thrown) when it cannot be had.
  template <typename V>
  bool scratch(V& vec, long count, const char* what) {
    if (!ok) return false;
    if (count < 0) {
      fail("the size of %s overflows", what);
      return false;
    }
    try {
      vec.resize((size_t)count);
    } catch (const std::exception&) {
      oom((size_t)count * sizeof(typename V::value_type), what);
      return false;
    }
    return true;
  }
};

// Runs an entry, turning any C++ exception that escapes it into a JS error (a bad_alloc into an out-of-memory one).
template <napi_value (*F)(napi_env, napi_callback_info)>
napi_value guarded(napi_env env, napi_callback_info info) {
  const char* code = "ATTNLAB_NATIVE";
  const char* what = "an unexpected C++ exception";
  try {
    return F(env, info);
  } catch (const std::bad_alloc&) {
    code = "ATTNLAB_NATIVE_OOM";
    what = "out of memory (a scratch allocation failed)";
  } catch (const std::exception& e) {
    what = e.what();
  }
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) napi_throw_error(env, code, (std::string("attnlab native: ") + what).c_str());
  return nullptr;
}

napi_value undefined(napi_env env) {
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}

// Op codes the kernels know (the enums in kernels.inc: 12 unary ops and GELU, 7 binary ops, 4 reductions).
constexpr int kUnaryOps = 13, kBinaryOps = 7, kReduceOps = 4;

// gemm(heap, aOff, bOff, cOff, M, N, K, transA, transB, batch, aIndex?, bIndex?, aBatches, bBatches)
// C[i] = op(A[aIndex[i]]) op(B[bIndex[i]]) for i < batch; an index array left null means the identity map.
napi_value Gemm(napi_env env, napi_callback_info info) {
  Args a(env, info, "gemm");
  if (!a.ok) return nullptr;
  long M = a.size(4, "M"), N = a.size(5, "N"), Kd = a.size(6, "K");
  bool ta = a.num(7, "transA") != 0, tb = a.num(8, "transB") != 0;
  long batch = a.size(9, "batch");
  long na = 0, nb = 0;
  const int32_t* ai = a.i32array(10, &na, "aIndex");
  const int32_t* bi = a.i32array(11, &nb, "bIndex");
  long aBatches = a.size(12, "aBatches"), bBatches = a.size(13, "bBatches");
  if (!a.ok) return nullptr;
  if (M > INT32_MAX || N > INT32_MAX || Kd > INT32_MAX) {
    a.fail("M, N and K must each be below 2^31 (BLAS sizes), got %ld, %ld, %ld", M, N, Kd);
    return nullptr;
  }
  const float* A = a.f32(1, Args::prod({aBatches, M, Kd}), "a");
  const float* B = a.f32(2, Args::prod({bBatches, Kd, N}), "b");
  float* C = a.f32(3, Args::prod({batch, M, N}), "c");
  if (!a.ok) return nullptr;
  // Every batch index must name a matrix of its operand: the index arrays when given, else the identity map.
  for (int side = 0; side < 2; side++) {
    const int32_t* idx = side ? bi : ai;
    long len = side ? nb : na, count = side ? bBatches : aBatches;
    const char* name = side ? "bIndex" : "aIndex";
    if (!idx) {
      if (batch > count && batch > 0) {
        a.fail("batch %ld exceeds the %ld matrices of %s with no %s to map them", batch, count, side ? "b" : "a", name);
        return nullptr;
      }
      continue;
    }
    if (len < batch) {
      a.fail("%s has %ld entries, fewer than the batch (%ld)", name, len, batch);
      return nullptr;
    }
    for (long i = 0; i < batch; i++) {
      if (idx[i] < 0 || idx[i] >= count) {
        a.fail("%s[%ld] = %d is outside [0, %ld) (%s's batch)", name, i, idx[i], count, side ? "b" : "a");
        return nullptr;
      }
    }
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
  Args a(env, info, "unary");
  if (!a.ok) return nullptr;
  long op = a.integer(1, "op");
  long n = a.size(4, "n");
  if (a.ok && (op < 0 || op > kUnaryOps - 1)) a.fail("op must be a unary op code in [0, %d], got %ld", kUnaryOps - 1, op);
  const float* x = a.f32(2, n, "x");
  float* y = a.f32(3, n, "y");
  if (!a.ok) return nullptr;
  parallel_for(n, 1 << 14, [&](long lo, long hi) { K.unary((int)op, x, y, lo, hi); });
  return undefined(env);
}

// binary(heap, op, aOff, bOff, yOff, aSize, bSize, d0, d1, d2, n, as0, as1, as2, bs0, bs1, bs2, sa, sb)
napi_value Binary(napi_env env, napi_callback_info info) {
  Args a(env, info, "binary");
  if (!a.ok) return nullptr;
  long op = a.integer(1, "op");
  long aSize = a.size(5, "aSize"), bSize = a.size(6, "bSize");
  long dims[4] = {a.size(7, "d0"), a.size(8, "d1"), a.size(9, "d2"), a.size(10, "n")};
  long as[3] = {a.size(11, "as0"), a.size(12, "as1"), a.size(13, "as2")};
  long bs[3] = {a.size(14, "bs0"), a.size(15, "bs1"), a.size(16, "bs2")};
  long sa = a.integer(17, "sa"), sb = a.integer(18, "sb");
  if (!a.ok) return nullptr;
  if (op < 0 || op > kBinaryOps - 1) {
    a.fail("op must be a binary op code in [0, %d], got %ld", kBinaryOps - 1, op);
    return nullptr;
  }
  if ((sa != 0 && sa != 1) || (sb != 0 && sb != 1)) {
    a.fail("the inner strides sa and sb must be 0 or 1, got %ld and %ld", sa, sb);
    return nullptr;
  }
  long total = Args::prod({dims[0], dims[1], dims[2], dims[3]});
  if (total > 0) {
    // The last element each operand's strides reach must lie inside it.
    long reachA = 0, reachB = 0;
    for (int d = 0; d < 3; d++) {
      long ta = Args::prod({dims[d] - 1, as[d]}), tb = Args::prod({dims[d] - 1, bs[d]});
      if (ta < 0 || tb < 0) reachA = reachB = -1;
      if (reachA >= 0) reachA += ta;
      if (reachB >= 0) reachB += tb;
    }
    if (reachA >= 0) reachA += (dims[3] - 1) * sa;
    if (reachB >= 0) reachB += (dims[3] - 1) * sb;
    if (reachA < 0 || reachA >= aSize || reachB < 0 || reachB >= bSize) {
      a.fail("strides [%ld, %ld, %ld | %ld] and [%ld, %ld, %ld | %ld] over dims [%ld, %ld, %ld, %ld] reach elements %ld "
             "and %ld, outside a (%ld elements) or b (%ld)",
             as[0], as[1], as[2], sa, bs[0], bs[1], bs[2], sb, dims[0], dims[1], dims[2], dims[3], reachA, reachB, aSize,
             bSize);
      return nullptr;
    }
  }
  const float* x = a.f32(2, aSize, "a");
  const float* y = a.f32(3, bSize, "b");
  float* out = a.f32(4, total, "y");
  if (!a.ok) return nullptr;
  long rows = dims[0] * dims[1] * dims[2];
  long grain = (1 << 14) / (dims[3] > 0 ? dims[3] : 1) + 1;
  parallel_for(rows, grain, [&](long lo, long hi) { K.binary((int)op, x, y, out, dims, as, bs, (int)sa, (int)sb, lo, hi); });
  return undefined(env);
}

// reduce(heap, op, xOff, yOff, outer, r, inner)
napi_value Reduce(napi_env env, napi_callback_info info) {
  Args a(env, info, "reduce");
  if (!a.ok) return nullptr;
  long op = a.integer(1, "op");
  long outer = a.size(4, "outer"), r = a.size(5, "r"), inner = a.size(6, "inner");
  if (a.ok && (op < 0 || op > kReduceOps - 1)) a.fail("op must be a reduce op code in [0, %d], got %ld", kReduceOps - 1, op);
  if (a.ok && r == 0) a.fail("r (the reduced extent) must be at least 1");
  const float* x = a.f32(2, Args::prod({outer, r, inner}), "x");
  float* y = a.f32(3, Args::prod({outer, inner}), "y");
  if (!a.ok) return nullptr;
  if (inner == 1) {
    parallel_for(outer, (1 << 14) / (r + 1) + 1, [&](long lo, long hi) { K.reduce_inner((int)op, x, y, r, lo, hi); });
  } else {
    long chunks = (inner + 255) / 256;
    bool par = outer * r * inner > (1 << 14);
    parallel_for(outer * chunks, 1, [&](long lo, long hi) { K.reduce_middle((int)op, x, y, r, inner, lo, hi); }, par);
  }
  return undefined(env);
}

// softmax(heap, xOff, yOff, rows, n, log)
napi_value Softmax(napi_env env, napi_callback_info info) {
  Args a(env, info, "softmax");
  if (!a.ok) return nullptr;
  long rows = a.size(3, "rows"), n = a.size(4, "n");
  bool log = a.num(5, "log") != 0;
  const float* x = a.f32(1, Args::prod({rows, n}), "x");
  float* y = a.f32(2, Args::prod({rows, n}), "y");
  if (!a.ok) return nullptr;
  parallel_for(rows, (1 << 13) / (n + 1) + 1, [&](long lo, long hi) { K.softmax_rows(x, y, n, log, lo, hi); });
  return undefined(env);
}

// gather(heap, xOff, idxOff, yOff, numIdx, rowLen, numRows) -> index of the first out-of-range entry, or -1.
napi_value Gather(napi_env env, napi_callback_info info) {
  Args a(env, info, "gather");
  if (!a.ok) return nullptr;
  long n = a.size(4, "numIdx"), len = a.size(5, "rowLen"), rows = a.size(6, "numRows");
  const float* x = a.f32(1, Args::prod({rows, len}), "x");
  const int32_t* idx = a.i32(2, n, "indices");
  float* y = a.f32(3, Args::prod({n, len}), "y");
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
  Args a(env, info, "segmentSum");
  if (!a.ok) return nullptr;
  long n = a.size(4, "n"), len = a.size(5, "rowLen"), segs = a.size(6, "numSegments");
  const float* x = a.f32(1, Args::prod({n, len}), "x");
  const int32_t* idx = a.i32(2, n, "segmentIds");
  float* y = a.f32(3, Args::prod({segs, len}), "y");
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
  at.B = a.size(base, "B");
  at.H = a.size(base + 1, "H");
  at.G = a.size(base + 2, "G");
  at.Sq = a.size(base + 3, "Sq");
  at.Sk = a.size(base + 4, "Sk");
  at.D = a.size(base + 5, "D");
  at.E = a.size(base + 6, "E");
  double scale = a.num(base + 7, "scale");
  long ivLen = 0;
  at.iv = a.i32array(base + 8, &ivLen, "iv");
  at.ivBatchStride = a.size(base + 9, "ivBatchStride");
  if (!a.ok) return false;
  at.scale = (float)scale;
  if (!std::isfinite(at.scale)) {
    a.fail("scale must be a finite float32, got %g", scale);
    return false;
  }
  if (at.G <= 0 || at.H % at.G != 0) {
    a.fail("kv heads G = %ld must be positive and divide the query heads H = %ld", at.G, at.H);
    return false;
  }
  if (at.D > (1L << 20) || at.E > (1L << 20) || at.Sq > INT32_MAX || at.Sk > INT32_MAX) {
    a.fail("D = %ld and E = %ld must be at most 2^20, Sq = %ld and Sk = %ld below 2^31", at.D, at.E, at.Sq, at.Sk);
    return false;
  }
  if (at.iv) {
    if (at.ivBatchStride != 0 && at.ivBatchStride != at.Sq * 4) {
      a.fail("ivBatchStride must be 0 or Sq * 4 = %ld, got %ld", at.Sq * 4, at.ivBatchStride);
      return false;
    }
    long need = (at.ivBatchStride ? at.B : 1) * at.Sq * 4;
    if (ivLen < need) {
      a.fail("the mask interval array has %ld entries, fewer than the %ld needed", ivLen, need);
      return false;
    }
    for (long i = 0; i < need; i += 2) {
      if (at.iv[i] < 0 || at.iv[i] > at.iv[i + 1] || at.iv[i + 1] > at.Sk) {
        a.fail("mask interval %ld, [%d, %d), is not inside [0, Sk = %ld]", i / 2, at.iv[i], at.iv[i + 1], at.Sk);
        return false;
      }
    }
  }
  return true;
}

// adam(heap, pOff, mOff, vOff, gOff, p1Off, m1Off, v1Off, n, lr, b1, b2, eps, bc1, bc2, l2, wd)
napi_value Adam(napi_env env, napi_callback_info info) {
  Args a(env, info, "adam");
  if (!a.ok) return nullptr;
  long n = a.size(8, "n");
  float hp[10];
  for (int i = 0; i < 8; i++) hp[i] = (float)a.num(9 + i, "a hyper-parameter");
  // 1 - beta in double, then rounded: in float32, 1 - 0.999f is off by 5e-5 relative, which moved the first Adam
  // step by 2e-6 compared with the composed ops.
  hp[8] = (float)(1.0 - a.num(10));
  hp[9] = (float)(1.0 - a.num(11));
  const float* p = a.f32(1, n, "p");
  const float* m = a.f32(2, n, "m");
  const float* v = a.f32(3, n, "v");
  const float* g = a.f32(4, n, "g");
  float* p1 = a.f32(5, n, "p1");
  float* m1 = a.f32(6, n, "m1");
  float* v1 = a.f32(7, n, "v1");
  if (!a.ok) return nullptr;
  parallel_for(n, 1 << 14, [&](long lo, long hi) { K.adam(p, m, v, g, p1, m1, v1, hp, lo, hi); });
  return undefined(env);
}

// geluGrad(heap, xOff, dyOff, dxOff, n)
napi_value GeluGrad(napi_env env, napi_callback_info info) {
  Args a(env, info, "geluGrad");
  if (!a.ok) return nullptr;
  long n = a.size(4, "n");
  const float* x = a.f32(1, n, "x");
  const float* dy = a.f32(2, n, "dy");
  float* dx = a.f32(3, n, "dx");
  if (!a.ok) return nullptr;
  parallel_for(n, 1 << 14, [&](long lo, long hi) { K.gelu_grad(x, dy, dx, lo, hi); });
  return undefined(env);
}

// layerNorm(heap, xOff, gOff, bOff, yOff, meanOff, rstdOff, rows, n, eps)
napi_value LayerNorm(napi_env env, napi_callback_info info) {
  Args a(env, info, "layerNorm");
  if (!a.ok) return nullptr;
  long rows = a.size(7, "rows"), n = a.size(8, "n");
  float eps = (float)a.num(9, "eps");
  if (a.ok && n == 0 && rows > 0) a.fail("n (the normalised extent) must be at least 1");
  const float* x = a.f32(1, Args::prod({rows, n}), "x");
  const float* g = a.f32(2, n, "gamma");
  const float* b = a.f32(3, n, "beta");
  float* y = a.f32(4, Args::prod({rows, n}), "y");
  float* mean = a.f32(5, rows, "mean");
  float* rstd = a.f32(6, rows, "rstd");
  if (!a.ok) return nullptr;
  parallel_for(rows, (1 << 14) / (n + 1) + 1, [&](long lo, long hi) { K.layernorm_fwd(x, g, b, y, mean, rstd, n, eps, lo, hi); });
  return undefined(env);
}

// layerNormGrad(heap, xOff, gOff, dyOff, meanOff, rstdOff, dxOff, dgOff, dbOff, rows, n)
napi_value LayerNormGrad(napi_env env, napi_callback_info info) {
  Args a(env, info, "layerNormGrad");
  if (!a.ok) return nullptr;
  long rows = a.size(9, "rows"), n = a.size(10, "n");
  const float* x = a.f32(1, Args::prod({rows, n}), "x");
  const float* g = a.f32(2, n, "gamma");
  const float* dy = a.f32(3, Args::prod({rows, n}), "dy");
  const float* mean = a.f32(4, rows, "mean");
  const float* rstd = a.f32(5, rows, "rstd");
  float* dx = a.f32(6, Args::prod({rows, n}), "dx");
  float* dg = a.f32(7, n, "dgamma");
  float* db = a.f32(8, n, "dbeta");
  if (!a.ok) return nullptr;
  // dgamma and dbeta sum over rows: one partial per fixed chunk of rows (about 16k elements: its size depends on n
  // only), added up in chunk order, so the sums are the same whatever the thread count and whichever thread took which
  // chunk. Smaller chunks would add partials to sum (measured: 8k-element chunks cost 4-9% at 1 thread).
  long grain = (1 << 14) / (n + 1) + 1;
  long chunks = (rows + grain - 1) / grain;
  std::vector<float> part;  // per chunk: dgamma, dbeta
  if (!a.scratch(part, Args::prod({chunks, 2, n}), "the per-chunk dgamma and dbeta partials")) return nullptr;
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
  Args a(env, info, "flashFwd");
  if (!a.ok) return nullptr;
  Attn at;
  if (!read_attn(a, 6, at)) return nullptr;
  at.q = a.f32(1, Args::prod({at.B, at.H, at.Sq, at.D}), "q");
  at.k = a.f32(2, Args::prod({at.B, at.G, at.Sk, at.D}), "k");
  at.v = a.f32(3, Args::prod({at.B, at.G, at.Sk, at.E}), "v");
  float* O = a.f32(4, Args::prod({at.B, at.H, at.Sq, at.E}), "o");
  float* L = a.f32(5, Args::prod({at.B, at.H, at.Sq}), "lse");
  if (!a.ok) return nullptr;
  long nqb = (at.Sq + 63) / 64;
  long per = K.flash_scratch_floats(at.D, at.E, at.Sk);
  std::vector<float> scratch;
  if (!a.scratch(scratch, per * pool->size() + 16, "the per-thread packed keys and score blocks")) return nullptr;
  std::atomic<long> next{0};
  long tasks = at.B * at.H * nqb;
  // Runs of consecutive query blocks of one head share their packed key blocks: a whole head per run when there are
  // enough heads to keep every thread busy, else about 4 runs per thread (the split never changes the result).
  long heads = at.B * at.H, want = 4L * pool->size();
  long run = heads >= want ? nqb : (nqb * heads + want - 1) / want;
  if (run < 1) run = 1;
  pool->run([&](int tid) {
    float* s = scratch.data() + tid * per;
    for (;;) {
      long t = next.fetch_add(run);
      if (t >= tasks) break;
      K.flash_fwd(at, O, L, s, t, t + run < tasks ? t + run : tasks);
    }
  });
  return undefined(env);
}

// flashBwd(heap, qOff, kOff, vOff, oOff, dOOff, lOff, dqOff, dkOff, dvOff, B, H, G, Sq, Sk, D, E, scale, iv, ivStride)
napi_value FlashBwd(napi_env env, napi_callback_info info) {
  Args a(env, info, "flashBwd");
  if (!a.ok) return nullptr;
  Attn at;
  if (!read_attn(a, 10, at)) return nullptr;
  long qn = Args::prod({at.B, at.H, at.Sq});
  at.q = a.f32(1, Args::prod({qn, at.D}), "q");
  at.k = a.f32(2, Args::prod({at.B, at.G, at.Sk, at.D}), "k");
  at.v = a.f32(3, Args::prod({at.B, at.G, at.Sk, at.E}), "v");
  const float* O = a.f32(4, Args::prod({qn, at.E}), "o");
  const float* dO = a.f32(5, Args::prod({qn, at.E}), "dy");
  const float* L = a.f32(6, qn, "lse");
  float* dQ = a.f32(7, Args::prod({qn, at.D}), "dq");
  float* dK = a.f32(8, Args::prod({at.B, at.G, at.Sk, at.D}), "dk");
  float* dV = a.f32(9, Args::prod({at.B, at.G, at.Sk, at.E}), "dv");
  if (!a.ok) return nullptr;
  if (Args::prod({at.B, at.G}) == 0 || qn == 0) {  // no query or no kv head: every gradient is empty or zero
    std::memset(dQ, 0, (size_t)Args::prod({qn, at.D}) * 4);
    std::memset(dK, 0, (size_t)Args::prod({at.B, at.G, at.Sk, at.D}) * 4);
    std::memset(dV, 0, (size_t)Args::prod({at.B, at.G, at.Sk, at.E}) * 4);
    return undefined(env);
  }
  long dp = (at.D + 15) / 16 * 16;
  std::vector<float> Drow;
  if (!a.scratch(Drow, qn, "the row sums dO . O")) return nullptr;
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
  std::unique_ptr<float[]> dQacc(new (std::nothrow) float[(size_t)nkc * qn * dp]);
  if (!dQacc) {
    a.oom((size_t)nkc * qn * dp * 4, "the dQ partials");
    return nullptr;
  }
  long per = K.flash_bwd_scratch_floats(at.D, at.E);
  std::vector<float> scratch;
  if (!a.scratch(scratch, per * pool->size() + 16, "the per-thread score blocks")) return nullptr;
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

// ------------------------------------------------------------------------------------------ causal linear scan
// Un-normalised causal linear attention, chunked (the hot loop of the recurrent family, lib/attention/linear-scan.ts):
//   y_t = sum_{i <= t} (q_t . k_i) v_i = q_t^T S_t,   S_t = sum_{i <= t} k_i v_i^T
// per slice (batch x head): Q, K [T, D], V, Y [T, E]. Each chunk of kScanChunk rows takes its own pairs as masked
// products (A = tril(Qc Kc^T), Yc = A Vc) and the earlier chunks through the running state (Yc += Qc S; S += Kc^T Vc),
// every product one OpenBLAS sgemm: O(T (C (D + E) + D E)) work, O(D E + C^2) scratch per slice. Backward:
//   dQc = tril(dYc Vc^T) Kc + dYc S^T                     (forward over chunks, S before the chunk)
//   dKc = tril(dYc Vc^T)^T Qc + Vc R^T,  dVc = tril(Qc Kc^T)^T dYc + Kc R   (backward over chunks,
//   R = sum of the later chunks' Qc^T dYc)
// Slices are dealt to the pool's threads; OpenBLAS itself runs single-threaded inside each.
constexpr long kScanChunk = 64;

inline void sgemm(bool ta, bool tb, long m, long n, long k, const float* a, long lda, const float* b, long ldb,
                  float beta, float* c, long ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)m, (int)n, (int)k,
              1.0f, a, (int)lda, b, (int)ldb, beta, c, (int)ldc);
}

// Zero the strict upper triangle of an n x n row-major matrix (keep i >= j: row t sees columns i <= t).
inline void keep_lower(float* a, long n) {
  for (long t = 0; t < n; t++) std::memset(a + t * n + t + 1, 0, (n - t - 1) * 4);
}

void linscan_fwd_slice(const float* q, const float* k, const float* v, float* y, long T, long D, long E, float* S,
                       float* A) {
  std::memset(S, 0, D * E * 4);
  for (long c0 = 0; c0 < T; c0 += kScanChunk) {
    const long n = c0 + kScanChunk < T ? kScanChunk : T - c0;
    const float *qc = q + c0 * D, *kc = k + c0 * D, *vc = v + c0 * E;
    float* yc = y + c0 * E;
    sgemm(false, true, n, n, D, qc, D, kc, D, 0.0f, A, n);
    keep_lower(A, n);
    sgemm(false, false, n, E, n, A, n, vc, E, 0.0f, yc, E);
    if (c0 > 0) sgemm(false, false, n, E, D, qc, D, S, E, 1.0f, yc, E);
    if (c0 + n < T) sgemm(true, false, D, E, n, kc, D, vc, E, 1.0f, S, E);
  }
}

void linscan_bwd_slice(const float* q, const float* k, const float* v, const float* dy, float* dq, float* dk,
                       float* dv, long T, long D, long E, float* S, float* A) {
  std::memset(S, 0, D * E * 4);
  for (long c0 = 0; c0 < T; c0 += kScanChunk) {
    const long n = c0 + kScanChunk < T ? kScanChunk : T - c0;
    const float *kc = k + c0 * D, *vc = v + c0 * E, *dyc = dy + c0 * E;
    sgemm(false, true, n, n, E, dyc, E, vc, E, 0.0f, A, n);
    keep_lower(A, n);
    sgemm(false, false, n, D, n, A, n, kc, D, 0.0f, dq + c0 * D, D);
    if (c0 > 0) sgemm(false, true, n, D, E, dyc, E, S, E, 1.0f, dq + c0 * D, D);
    if (c0 + n < T) sgemm(true, false, D, E, n, kc, D, vc, E, 1.0f, S, E);
  }
  float* R = S;
  std::memset(R, 0, D * E * 4);
  const long chunks = (T + kScanChunk - 1) / kScanChunk;
  for (long ch = chunks - 1; ch >= 0; ch--) {
    const long c0 = ch * kScanChunk, n = c0 + kScanChunk < T ? kScanChunk : T - c0;
    const float *qc = q + c0 * D, *kc = k + c0 * D, *vc = v + c0 * E, *dyc = dy + c0 * E;
    float *dkc = dk + c0 * D, *dvc = dv + c0 * E;
    sgemm(false, true, n, n, E, dyc, E, vc, E, 0.0f, A, n);
    keep_lower(A, n);
    sgemm(true, false, n, D, n, A, n, qc, D, 0.0f, dkc, D);
    sgemm(false, true, n, n, D, qc, D, kc, D, 0.0f, A, n);
    keep_lower(A, n);
    sgemm(true, false, n, E, n, A, n, dyc, E, 0.0f, dvc, E);
    if (ch < chunks - 1) {
      sgemm(false, true, n, D, E, vc, E, R, E, 1.0f, dkc, D);
      sgemm(false, false, n, E, D, kc, D, R, E, 1.0f, dvc, E);
    }
    if (ch > 0) sgemm(true, false, D, E, n, qc, D, dyc, E, 1.0f, R, E);
  }
}

// Runs body(S, A, slice) over `slices` independent (batch x head) slices, dealt out one at a time.
template <typename F>
bool linscan_run(Args& a, long slices, long D, long E, F body) {
  long per = Args::prod({D, E}) + kScanChunk * kScanChunk + 16;
  std::vector<float> scratch;
  if (!a.scratch(scratch, Args::prod({per, (long)pool->size()}), "the per-thread scan state")) return false;
  std::atomic<long> next{0};
  auto work = [&](int tid) {
    float* s = scratch.data() + tid * per;
    for (;;) {
      long sl = next.fetch_add(1);
      if (sl >= slices) break;
      body(s, s + D * E, sl);
    }
  };
  if (slices > 1) pool->run(work);
  else work(0);
  return true;
}

// linearScan(heap, qOff, kOff, vOff, yOff, slices, T, D, E)
napi_value LinearScan(napi_env env, napi_callback_info info) {
  Args a(env, info, "linearScan");
  if (!a.ok) return nullptr;
  long n = a.size(5, "slices"), T = a.size(6, "T"), D = a.size(7, "D"), E = a.size(8, "E");
  const float* q = a.f32(1, Args::prod({n, T, D}), "q");
  const float* k = a.f32(2, Args::prod({n, T, D}), "k");
  const float* v = a.f32(3, Args::prod({n, T, E}), "v");
  float* y = a.f32(4, Args::prod({n, T, E}), "y");
  if (!a.ok) return nullptr;
  if (Args::prod({n, T, E}) == 0) return undefined(env);
  if (D == 0) {  // no features: every score is 0
    std::memset(y, 0, (size_t)(n * T * E) * 4);
    return undefined(env);
  }
  if (!linscan_run(a, n, D, E, [&](float* S, float* A, long sl) {
        linscan_fwd_slice(q + sl * T * D, k + sl * T * D, v + sl * T * E, y + sl * T * E, T, D, E, S, A);
      }))
    return nullptr;
  return undefined(env);
}

// linearScanGrad(heap, qOff, kOff, vOff, dyOff, dqOff, dkOff, dvOff, slices, T, D, E)
napi_value LinearScanGrad(napi_env env, napi_callback_info info) {
  Args a(env, info, "linearScanGrad");
  if (!a.ok) return nullptr;
  long n = a.size(8, "slices"), T = a.size(9, "T"), D = a.size(10, "D"), E = a.size(11, "E");
  const float* q = a.f32(1, Args::prod({n, T, D}), "q");
  const float* k = a.f32(2, Args::prod({n, T, D}), "k");
  const float* v = a.f32(3, Args::prod({n, T, E}), "v");
  const float* dy = a.f32(4, Args::prod({n, T, E}), "dy");
  float* dq = a.f32(5, Args::prod({n, T, D}), "dq");
  float* dk = a.f32(6, Args::prod({n, T, D}), "dk");
  float* dv = a.f32(7, Args::prod({n, T, E}), "dv");
  if (!a.ok) return nullptr;
  if (Args::prod({n, T}) == 0) return undefined(env);
  if (D == 0 || E == 0) {  // no features or no values: every gradient is empty or zero
    std::memset(dq, 0, (size_t)(n * T * D) * 4);  // sizes checked by f32() above
    std::memset(dk, 0, (size_t)(n * T * D) * 4);
    std::memset(dv, 0, (size_t)(n * T * E) * 4);
    return undefined(env);
  }
  if (!linscan_run(a, n, D, E, [&](float* S, float* A, long sl) {
        long o = sl * T * D, p = sl * T * E;
        linscan_bwd_slice(q + o, k + o, v + p, dy + p, dq + o, dk + o, dv + p, T, D, E, S, A);
      }))
    return nullptr;
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

// fmaPeak(seconds, threads): the machine's fp32 FMA throughput as this build's kernels can use it. `threads` plain
// threads (not the pool, whose workers may sit out a job) each run the probe in rounds of 2^16 until `seconds` have
// passed; the result is the sum of the threads' own rates, in GFLOP/s. Returns {gflops, threads, isa, seconds}.
volatile float fma_sink = 0;
napi_value FmaPeak(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  double seconds = 0, threads = 0;
  if (argc < 2 || napi_get_value_double(env, argv[0], &seconds) != napi_ok ||
      napi_get_value_double(env, argv[1], &threads) != napi_ok) {
    napi_throw_type_error(env, "ATTNLAB_NATIVE", "attnlab native fmaPeak: expected (seconds: number, threads: number)");
    return nullptr;
  }
  if (!(seconds > 0 && seconds <= 10)) {
    char msg[160];
    snprintf(msg, sizeof msg, "attnlab native fmaPeak: seconds must be in (0, 10], got %g", seconds);
    napi_throw_range_error(env, "ATTNLAB_NATIVE", msg);
    return nullptr;
  }
  if (!(threads >= 1 && threads <= 256 && threads == std::floor(threads))) {
    char msg[160];
    snprintf(msg, sizeof msg, "attnlab native fmaPeak: threads must be an integer in [1, 256], got %g", threads);
    napi_throw_range_error(env, "ATTNLAB_NATIVE", msg);
    return nullptr;
  }
  const int n = (int)threads;
  std::vector<double> rate(n, 0.0);
  std::vector<float> sink(n, 0.0f);
  auto work = [&](int t) {
    using clk = std::chrono::steady_clock;
    const auto t0 = clk::now();
    long rounds = 0;
    double elapsed = 0;
    do {
      sink[t] += K.fma_probe(1L << 16);
      rounds += 1L << 16;
      elapsed = std::chrono::duration<double>(clk::now() - t0).count();
    } while (elapsed < seconds);
    rate[t] = rounds * K.fma_probe_flops() / elapsed;
  };
  std::vector<std::thread> ts;
  for (int t = 1; t < n; t++) ts.emplace_back(work, t);
  work(0);
  for (auto& th : ts) th.join();
  double total = 0;
  float s = 0;
  for (int t = 0; t < n; t++) total += rate[t], s += sink[t];
  fma_sink = s;  // keeps the probe's result live
  napi_value obj, v;
  napi_create_object(env, &obj);
  napi_create_double(env, total / 1e9, &v);
  napi_set_named_property(env, obj, "gflops", v);
  napi_create_int32(env, n, &v);
  napi_set_named_property(env, obj, "threads", v);
  napi_create_string_utf8(env, K.isa, NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, obj, "isa", v);
  napi_create_double(env, seconds, &v);
  napi_set_named_property(env, obj, "seconds", v);
  return obj;
}

// ------------------------------------------------------------------------------------------------ toylm decoding
// toylmGenerate(heap, weights: Float64Array of heap offsets, B, S, steps, V, M, L, H, G, F, posKind, ropeBase,
//               prompt, tokensOut, logitsOut)
// Greedy decoding of a pre-norm ToyLM (lib/layers/toylm.ts: GPT-2 blocks without biases in attention, exact GELU
// MLP with biases, layer norm eps 1e-5, final layer norm, tied or separate unembedding) in one call, with its own KV
// cache: the prompt [B, S] is fed one position at a time, then `steps` tokens are chosen by argmax, each fed back.
// weights: embed [V, M], positions [maxLen, M] (posKind 1; else -1), unembed [M, V] (-1: tied, embedᵀ), final norm
// gamma, beta, then per layer ln1 gamma, beta, wq [M, H·Dh], wk [M, G·Dh], wv, wo [H·Dh, M], ln2 gamma, beta,
// w1 [M, F], b1 [F], w2 [F, M], b2 [M]. posKind: 0 none, 1 a table added to the embedding, 2 RoPE (half-split
// pairs, base ropeBase). tokensOut [B, steps] int32; logitsOut [B, steps, V] the logits each token was chosen from,
// or -1. Single-threaded: at batch 1 a step is a few hundred microseconds of work, below what a second thread pays.
napi_value ToylmGenerate(napi_env env, napi_callback_info info) {
  Args a(env, info, "toylmGenerate");
  if (!a.ok) return nullptr;
  napi_typedarray_type tt;
  size_t nw = 0;
  void* wdata = nullptr;
  if (a.argc < 16 || napi_get_typedarray_info(env, a.argv[1], &tt, &nw, &wdata, nullptr, nullptr) != napi_ok ||
      tt != napi_float64_array) {
    a.fail("weights (argument 1) must be a Float64Array of heap offsets");
    return nullptr;
  }
  const double* woff = static_cast<const double*>(wdata);
  long B = a.size(2, "batch"), S = a.size(3, "prompt length"), steps = a.size(4, "steps"), V = a.size(5, "vocab");
  long M = a.size(6, "dModel"), L = a.size(7, "layers"), H = a.size(8, "heads"), G = a.size(9, "kvHeads");
  long F = a.size(10, "hidden");
  long posKind = a.integer(11, "positional");
  double ropeBase = a.num(12, "ropeBase");
  if (!a.ok) return nullptr;
  if (B < 1 || S < 1 || steps < 1 || V < 1 || M < 1 || L < 1 || H < 1 || G < 1 || F < 1 || H % G || M % H ||
      posKind < 0 || posKind > 2 || (long)nw != 5 + 12 * L) {
    a.fail("bad shapes: batch %ld, prompt %ld, steps %ld, vocab %ld, dModel %ld, layers %ld, heads %ld, kvHeads %ld, "
           "hidden %ld, positional %ld, %zu weight offsets (expected %ld)",
           B, S, steps, V, M, L, H, G, F, posKind, nw, 5 + 12 * L);
    return nullptr;
  }
  const long Dh = M / H, T = S + steps - 1;  // positions fed through the model
  if (posKind == 2 && Dh % 2) {
    a.fail("RoPE needs an even head dim, got %ld", Dh);
    return nullptr;
  }
  const int32_t* prompt = a.i32(13, B * S, "prompt");
  int32_t* tokOut = a.i32(14, B * steps, "tokensOut");
  long logitsOff = a.integer(15, "logitsOut");
  if (!a.ok) return nullptr;
  float* logitsOut = logitsOff < 0 ? nullptr : a.f32(15, B * steps * V, "logitsOut");
  if (!a.ok) return nullptr;
  for (long i = 0; i < B * S; i++)
    if (prompt[i] < 0 || prompt[i] >= V) {
      a.fail("prompt token %d at %ld is outside [0, %ld)", prompt[i], i, V);
      return nullptr;
    }
  // A weight at heap offset woff[i] holding `count` floats (or none when the offset is -1 and `optional`).
  auto W = [&](long i, long count, const char* name, bool optional = false) -> const float* {
    double o = woff[i];
    if (optional && o == -1) return nullptr;
    if (!(o > 0) || o != (double)(long)o || ((long)o & 3) || (size_t)o + (size_t)count * 4 > a.heapBytes) {
      a.fail("weight %s (offset %g, %ld floats) lies outside the %zu-byte wasm heap", name, o, count, a.heapBytes);
      return nullptr;
    }
    return reinterpret_cast<const float*>(a.heap + (long)o);
  };
  const float* embed = W(0, V * M, "embed");
  const float* pos = W(1, T * M, "positions", true);
  const float* unembed = W(2, M * V, "unembed", true);
  const float* lnfG = W(3, M, "ln_final.gamma");
  const float* lnfB = W(4, M, "ln_final.beta");
  struct Layer {
    const float *g1, *b1n, *wq, *wk, *wv, *wo, *g2, *b2n, *w1, *b1, *w2, *b2;
  };
  std::vector<Layer> layer((size_t)L);
  const long HD = H * Dh, GD = G * Dh;
  for (long l = 0; l < L; l++) {
    long o = 5 + 12 * l;
    layer[l] = {W(o, M, "ln1.gamma"),  W(o + 1, M, "ln1.beta"),   W(o + 2, M * HD, "wq"), W(o + 3, M * GD, "wk"),
                W(o + 4, M * GD, "wv"), W(o + 5, HD * M, "wo"),    W(o + 6, M, "ln2.gamma"), W(o + 7, M, "ln2.beta"),
                W(o + 8, M * F, "w1"),  W(o + 9, F, "b1"),         W(o + 10, F * M, "w2"), W(o + 11, M, "b2")};
  }
  if (!a.ok) return nullptr;
  if (posKind == 1 && !pos) {
    a.fail("positional table expected (positional 1) but its offset is -1");
    return nullptr;
  }
  std::vector<float> kc, vc, x, h, q, kv, z, u, logits, scores, cosT, sinT;
  const long cacheFloats = Args::prod({L, B, G, T, Dh});
  if (!a.scratch(kc, cacheFloats, "the key cache") || !a.scratch(vc, cacheFloats, "the value cache") ||
      !a.scratch(x, B * M, "activations") || !a.scratch(h, B * M, "activations") || !a.scratch(q, B * HD, "queries") ||
      !a.scratch(kv, 2 * B * GD, "keys and values") || !a.scratch(z, B * HD, "head outputs") ||
      !a.scratch(u, B * F, "the MLP's hidden layer") || !a.scratch(logits, B * V, "logits") ||
      !a.scratch(scores, T, "scores"))
    return nullptr;
  if (posKind == 2) {
    if (!a.scratch(cosT, T * (Dh / 2), "RoPE tables") || !a.scratch(sinT, T * (Dh / 2), "RoPE tables")) return nullptr;
    for (long p = 0; p < T; p++)
      for (long i = 0; i < Dh / 2; i++) {
        double ang = p * std::pow(ropeBase, -(2.0 * i) / Dh);
        cosT[p * (Dh / 2) + i] = (float)std::cos(ang);
        sinT[p * (Dh / 2) + i] = (float)std::sin(ang);
      }
  }
  auto norm = [&](const float* in, float* out, const float* g, const float* b) {
    for (long r = 0; r < B; r++) {
      const float* xi = in + r * M;
      double mean = 0, var = 0;
      for (long i = 0; i < M; i++) mean += xi[i];
      mean /= M;
      for (long i = 0; i < M; i++) var += (xi[i] - mean) * (xi[i] - mean);
      float rstd = (float)(1.0 / std::sqrt(var / M + 1e-5));
      for (long i = 0; i < M; i++) out[r * M + i] = (float)((xi[i] - mean) * rstd) * g[i] + b[i];
    }
  };
  // out [B, n] = in [B, k] w [k, n] (+ accumulate into out when beta = 1)
  auto mm = [&](const float* in, const float* w, float* out, long k, long n, float beta) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)B, (int)n, (int)k, 1.0f, in, (int)k, w, (int)n, beta, out,
                (int)n);
  };
  auto rope = [&](float* v, long p) {  // one head vector at position p
    const long hd = Dh / 2;
    for (long i = 0; i < hd; i++) {
      float c = cosT[p * hd + i], s = sinT[p * hd + i], x1 = v[i], x2 = v[i + hd];
      v[i] = x1 * c - x2 * s;
      v[i + hd] = x1 * s + x2 * c;
    }
  };
  const float scale = (float)(1.0 / std::sqrt((double)Dh));
  std::vector<int32_t> cur((size_t)B);
  for (long r = 0; r < B; r++) cur[r] = prompt[r * S];
  for (long p = 0; p < T; p++) {
    for (long r = 0; r < B; r++)
      for (long i = 0; i < M; i++) x[r * M + i] = embed[(long)cur[r] * M + i] + (pos ? pos[p * M + i] : 0.0f);
    for (long l = 0; l < L; l++) {
      const Layer& w = layer[l];
      norm(x.data(), h.data(), w.g1, w.b1n);
      mm(h.data(), w.wq, q.data(), M, HD, 0.0f);
      float* kn = kv.data();
      float* vn = kv.data() + B * GD;
      mm(h.data(), w.wk, kn, M, GD, 0.0f);
      mm(h.data(), w.wv, vn, M, GD, 0.0f);
      for (long r = 0; r < B; r++) {
        for (long g = 0; g < G; g++) {
          float* kd = kc.data() + ((((l * B + r) * G + g) * T) + p) * Dh;
          float* vd = vc.data() + ((((l * B + r) * G + g) * T) + p) * Dh;
          std::memcpy(kd, kn + r * GD + g * Dh, Dh * sizeof(float));
          std::memcpy(vd, vn + r * GD + g * Dh, Dh * sizeof(float));
          if (posKind == 2) rope(kd, p);
        }
        for (long hh = 0; hh < H; hh++) {
          float* qh = q.data() + r * HD + hh * Dh;
          if (posKind == 2) rope(qh, p);
          const long g = hh / (H / G);
          const float* K = kc.data() + (((l * B + r) * G + g) * T) * Dh;
          const float* Vv = vc.data() + (((l * B + r) * G + g) * T) * Dh;
          float mx = -INFINITY;
          for (long t = 0; t <= p; t++) {
            float sdot = 0;
            for (long i = 0; i < Dh; i++) sdot += qh[i] * K[t * Dh + i];
            scores[t] = sdot * scale;
            mx = scores[t] > mx ? scores[t] : mx;
          }
          double sum = 0;
          for (long t = 0; t <= p; t++) {
            scores[t] = std::exp(scores[t] - mx);
            sum += scores[t];
          }
          float* zh = z.data() + r * HD + hh * Dh;
          for (long i = 0; i < Dh; i++) zh[i] = 0;
          const float inv = (float)(1.0 / sum);
          for (long t = 0; t <= p; t++) {
            const float wt = scores[t] * inv;
            for (long i = 0; i < Dh; i++) zh[i] += wt * Vv[t * Dh + i];
          }
        }
      }
      mm(z.data(), w.wo, x.data(), HD, M, 1.0f);  // x += z wo
      norm(x.data(), h.data(), w.g2, w.b2n);
      for (long r = 0; r < B; r++) std::memcpy(u.data() + r * F, w.b1, F * sizeof(float));
      mm(h.data(), w.w1, u.data(), M, F, 1.0f);
      for (long i = 0; i < B * F; i++) u[i] = 0.5f * u[i] * (1.0f + std::erf(u[i] * 0.70710678118654752f));
      for (long r = 0; r < B; r++)
        for (long i = 0; i < M; i++) x[r * M + i] += w.b2[i];
      mm(u.data(), w.w2, x.data(), F, M, 1.0f);
    }
    const long t = p - (S - 1);  // the generated token this position predicts (t >= 0)
    for (long r = 0; r < B; r++) cur[r] = p + 1 < S ? prompt[r * S + p + 1] : 0;
    if (t < 0) continue;
    norm(x.data(), h.data(), lnfG, lnfB);
    if (unembed) {
      mm(h.data(), unembed, logits.data(), M, V, 0.0f);
    } else {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)B, (int)V, (int)M, 1.0f, h.data(), (int)M, embed, (int)M,
                  0.0f, logits.data(), (int)V);
    }
    for (long r = 0; r < B; r++) {
      const float* lg = logits.data() + r * V;
      long best = 0;
      for (long i = 1; i < V; i++)
        if (lg[i] > lg[best]) best = i;  // the first maximum, as tf.argMax
      tokOut[r * steps + t] = (int32_t)best;
      cur[r] = (int32_t)best;
      if (logitsOut) std::memcpy(logitsOut + (r * steps + t) * V, lg, V * sizeof(float));
    }
  }
  return undefined(env);
}


napi_value Init(napi_env env, napi_value exports) {
  choose_kernels();
  openblas_set_num_threads(1);
  if (!pool) pool = new Pool(default_threads());
  struct {
    const char* name;
    napi_callback cb;
  } fns[] = {{"gemm", guarded<Gemm>},
             {"unary", guarded<Unary>},
             {"binary", guarded<Binary>},
             {"reduce", guarded<Reduce>},
             {"softmax", guarded<Softmax>},
             {"gather", guarded<Gather>},
             {"geluGrad", guarded<GeluGrad>},
             {"adam", guarded<Adam>},
             {"layerNorm", guarded<LayerNorm>},
             {"layerNormGrad", guarded<LayerNormGrad>},
             {"segmentSum", guarded<SegmentSum>},
             {"flashFwd", guarded<FlashFwd>},
             {"flashBwd", guarded<FlashBwd>},
             {"linearScan", guarded<LinearScan>},
             {"linearScanGrad", guarded<LinearScanGrad>},
             {"info", Info},
             {"fmaPeak", FmaPeak},
             {"toylmGenerate", guarded<ToylmGenerate>},
             {"setThreads", guarded<SetThreads>}};
  for (auto& f : fns) {
    napi_value fn;
    napi_create_function(env, f.name, NAPI_AUTO_LENGTH, f.cb, nullptr, &fn);
    napi_set_named_property(env, exports, f.name, fn);
  }
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)

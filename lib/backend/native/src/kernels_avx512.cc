// The kernels built for the avx512 instruction set; see kernels.inc.
#include "kernels.h"
#define ATTNLAB_FMA_CHAINS 10
#define ATTNLAB_FMA_BYTES 64
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,fma,avx2")
namespace k_avx512 {
#include "kernels.inc"
}

// The kernels built for the avx2 instruction set; see kernels.inc.
#include "kernels.h"
#define ATTNLAB_FMA_CHAINS 12
#define ATTNLAB_FMA_BYTES 32
#pragma GCC target("avx2,fma")
namespace k_avx2 {
#include "kernels.inc"
}

// The kernels built for the avx2 instruction set; see kernels.inc.
#include "kernels.h"
#pragma GCC target("avx2,fma")
namespace k_avx2 {
#include "kernels.inc"
}

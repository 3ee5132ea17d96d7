// The kernels built for the base instruction set; see kernels.inc.
#include "kernels.h"
#define ATTNLAB_FMA_CHAINS 12
#define ATTNLAB_FMA_BYTES 16
namespace k_base {
#include "kernels.inc"
}

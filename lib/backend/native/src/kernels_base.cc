// The kernels built for the base instruction set; see kernels.inc.
#include "kernels.h"
namespace k_base {
#include "kernels.inc"
}

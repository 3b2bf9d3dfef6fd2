"""The CUDA source CuPy generates for one of the project's `ElementwiseKernel`s, and NVRTC to compile it.

For tests only (tests/test_gpu_path.py), on machines without a GPU or CuPy. The kernel source is laid out
as CuPy 14 lays out an `ElementwiseKernel`'s: the type placeholders as typedefs, the preamble, then
`extern "C" __global__ void <name>(<params>, CIndexer<...> _ind)` whose loop `CUPY_FOR(i, _ind.size())`
binds every non-raw array argument by reference (`const T &x = _raw_x[_ind.get()];` for inputs,
`T &y = _raw_y[_ind.get()];` for outputs) before the operation. Array parameters are `CArray<type, ndim,
c_contiguous, use_32bit_indexing>`, const for inputs; raw ones keep their own name and are indexed by
the kernel. CuPy's own `cupy/carray.cuh` (which needs CuPy's bundled CCCL headers) is replaced here by
a stand-in with the same class names and members the generated code and the kernels use, so the test
checks that every kernel body compiles with the bindings CuPy gives it, not CuPy's headers.
"""

from __future__ import annotations

import ctypes
import glob
import os
import re
import sys

import numpy as np

C_TYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double", np.dtype(np.int32): "int",
           np.dtype(np.int64): "long long", np.dtype(np.uint32): "unsigned int", np.dtype(np.bool_): "bool"}

CARRAY_STANDIN = r"""
// Stand-in for CuPy's cupy/carray.cuh: the names and members generated elementwise kernels use.
#define CUPY_FOR(i, n) \
    for (ptrdiff_t i = static_cast<ptrdiff_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); \
         i += static_cast<ptrdiff_t>(blockDim.x) * gridDim.x)

template <typename T, int _ndim, bool _c_contiguous = false, bool _use_32bit_indexing = false>
class CArray {
 public:
  static const int ndim = _ndim;
  __device__ ptrdiff_t size() const { return size_; }
  __device__ const ptrdiff_t* shape() const { return shape_; }
  __device__ const ptrdiff_t* strides() const { return strides_; }
  __device__ T* data() const { return data_; }
  __device__ T& operator[](const ptrdiff_t* index) { return *at(index); }
  __device__ const T& operator[](const ptrdiff_t* index) const { return *at(index); }
  __device__ T& operator[](ptrdiff_t flat) { return *at_flat(flat); }
  __device__ const T& operator[](ptrdiff_t flat) const { return *at_flat(flat); }

 private:
  T* data_;
  ptrdiff_t size_;
  ptrdiff_t shape_[_ndim];
  ptrdiff_t strides_[_ndim];  // in bytes

  __device__ T* at(const ptrdiff_t* index) const {
    char* p = reinterpret_cast<char*>(data_);
    for (int dim = 0; dim < _ndim; ++dim) p += strides_[dim] * index[dim];
    return reinterpret_cast<T*>(p);
  }
  __device__ T* at_flat(ptrdiff_t flat) const {
    if (_c_contiguous) return data_ + flat;
    char* p = reinterpret_cast<char*>(data_);
    for (int dim = _ndim - 1; dim >= 0; --dim) {
      p += (flat % shape_[dim]) * strides_[dim];
      flat /= shape_[dim];
    }
    return reinterpret_cast<T*>(p);
  }
};

template <int _ndim, bool _use_32bit_indexing = false>
class CIndexer {
 public:
  __device__ ptrdiff_t size() const { return size_; }
  __device__ void set(ptrdiff_t flat) {
    for (int dim = _ndim - 1; dim >= 0; --dim) {
      index_[dim] = flat % shape_[dim];
      flat /= shape_[dim];
    }
  }
  __device__ const ptrdiff_t* get() const { return index_; }

 private:
  ptrdiff_t size_;
  ptrdiff_t shape_[_ndim];
  ptrdiff_t index_[_ndim];
};
"""

_PARAM = re.compile(r"^(?:(raw)\s+)?(\w+)\s+(\w+)$")


def parse_params(text: str) -> list[tuple[bool, str, str]]:
    """(raw, type, name) for each parameter of "T x, raw T y, int32 n", as CuPy reads them."""
    params = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        match = _PARAM.match(" ".join(part.split()))
        if match is None:
            raise ValueError(f"cannot parse the kernel parameter {part!r}")
        raw, type_, name = match.groups()
        params.append((raw is not None, type_, name))
    return params


def kernel_source(kernel, dtype, ndim: int, contiguous: bool) -> str:
    """The source CuPy generates for `kernel` called with `dtype` arrays of `ndim` dimensions.

    Parameters typed with a placeholder letter (T) are arrays of `dtype`; parameters with a dtype of
    their own (`int32 H`) are scalars, unless raw. Non-raw arrays have `ndim` dimensions (1 and
    contiguous after CuPy merges the axes of contiguous arguments; 2 and strided for views).
    """
    c_type = C_TYPES[np.dtype(dtype)]
    inputs, outputs = parse_params(kernel.in_params), parse_params(kernel.out_params)
    letters = sorted({type_ for _, type_, _ in inputs + outputs if len(type_) == 1})
    params, bindings = [], []
    for is_input, (raw, type_, name) in [(True, p) for p in inputs] + [(False, p) for p in outputs]:
        element = type_ if len(type_) == 1 else C_TYPES[np.dtype(type_)]
        const = "const " if is_input else ""
        if len(type_) > 1 and not raw:  # a scalar argument
            params.append(f"{const}{element} {name}")
        elif raw:
            params.append(f"{const}CArray<{c_type if len(type_) == 1 else element}, 2, 1, 1> {name}")
        else:
            params.append(f"{const}CArray<{c_type if len(type_) == 1 else element}, {ndim}, "
                          f"{int(contiguous)}, 1> _raw_{name}")
            bindings.append(f"{const}{element} &{name} = _raw_{name}[_ind.get()];")
    params.append(f"CIndexer<{ndim}, 1> _ind")
    typedefs = "".join(f"typedef {c_type} {letter};\n" for letter in letters)
    operation = "\n".join([*bindings, kernel.operation])
    return (f"#include <cupy/carray.cuh>\n{typedefs}\n{kernel.preamble}\n"
            f"extern \"C\" __global__ void {kernel.name}({', '.join(params)}) {{\n"
            f"  ;\n  #pragma unroll 1\n  CUPY_FOR(i, _ind.size()) {{\n    _ind.set(i);\n{operation};\n  }}\n  ;\n}}\n")


# ---------------------------------------------------------------- NVRTC through ctypes


def find_nvrtc() -> str | None:
    """libnvrtc from $TINYGRAD_LSTM_NVRTC, a pip wheel (nvidia-cuda-nvrtc-cu12 / cuda-toolkit), or the CUDA Toolkit."""
    if os.environ.get("TINYGRAD_LSTM_NVRTC"):
        return os.environ["TINYGRAD_LSTM_NVRTC"]
    candidates = []
    for site in sys.path:
        candidates += glob.glob(os.path.join(site, "nvidia", "**", "libnvrtc.so*"), recursive=True)
    cuda_home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH") or "/usr/local/cuda"
    candidates += glob.glob(os.path.join(cuda_home, "lib64", "libnvrtc.so*"))
    candidates = [c for c in candidates if re.search(r"libnvrtc\.so(\.\d+)*$", c)]
    return sorted(candidates)[-1] if candidates else None


class NVRTC:
    """The few NVRTC calls needed to compile one source and read the log."""

    def __init__(self, path: str):
        self.lib = ctypes.CDLL(path)
        self.lib.nvrtcGetErrorString.restype = ctypes.c_char_p

    def version(self) -> tuple[int, int]:
        major, minor = ctypes.c_int(), ctypes.c_int()
        self._check(self.lib.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor)))
        return major.value, minor.value

    def compile(self, source: str, headers: dict[str, str], options: list[str]) -> tuple[bool, str]:
        """(compiled, log) for `source` with in-memory `headers` {include name: text}."""
        program = ctypes.c_void_p()
        names = (ctypes.c_char_p * len(headers))(*(n.encode() for n in headers))
        texts = (ctypes.c_char_p * len(headers))(*(t.encode() for t in headers.values()))
        self._check(self.lib.nvrtcCreateProgram(ctypes.byref(program), source.encode(), b"kernel.cu",
                                                len(headers), texts, names))
        try:
            flags = (ctypes.c_char_p * len(options))(*(o.encode() for o in options))
            result = self.lib.nvrtcCompileProgram(program, len(options), flags)
            size = ctypes.c_size_t()
            self._check(self.lib.nvrtcGetProgramLogSize(program, ctypes.byref(size)))
            log = ctypes.create_string_buffer(size.value)
            self._check(self.lib.nvrtcGetProgramLog(program, log))
            return result == 0, log.value.decode(errors="replace")
        finally:
            self.lib.nvrtcDestroyProgram(ctypes.byref(program))

    def _check(self, result: int) -> None:
        if result != 0:
            raise RuntimeError(f"NVRTC: {self.lib.nvrtcGetErrorString(result).decode()}")

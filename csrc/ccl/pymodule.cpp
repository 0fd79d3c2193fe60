// CPython binding of ccl.hpp: workloads.ocr._ccl.
//
// Plain C API and the buffer protocol, so building needs no numpy headers and no pybind11:
// the caller passes a C-contiguous 1-byte mask and a writable int32 labels buffer of the same
// shape; statistics come back as bytes (n * 5 int64 values) that numpy views without copying.
// The GIL is released while labelling.
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <cstring>

#include "ccl.hpp"

namespace {

struct Buffers {
  Py_buffer mask{};
  Py_buffer labels{};
  bool have_mask = false;
  bool have_labels = false;
  ~Buffers() {
    if (have_mask) PyBuffer_Release(&mask);
    if (have_labels) PyBuffer_Release(&labels);
  }
};

// Checks shapes and element types; returns false with a Python error set.
bool open_buffers(PyObject* mask_obj, PyObject* labels_obj, int ndim, Buffers& b) {
  if (PyObject_GetBuffer(mask_obj, &b.mask, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) != 0) return false;
  b.have_mask = true;
  if (PyObject_GetBuffer(labels_obj, &b.labels,
                         PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_WRITABLE) != 0) {
    return false;
  }
  b.have_labels = true;
  const char* mf = b.mask.format ? b.mask.format : "B";
  if (b.mask.itemsize != 1 || std::strchr("?Bb", mf[0]) == nullptr || mf[1] != '\0') {
    PyErr_Format(PyExc_TypeError, "mask must hold bool or uint8 values, got format '%s'", mf);
    return false;
  }
  const char* lf = b.labels.format ? b.labels.format : "";
  if (b.labels.itemsize != 4 || (std::strcmp(lf, "i") != 0 && std::strcmp(lf, "=i") != 0)) {
    PyErr_Format(PyExc_TypeError, "labels must be an int32 array, got format '%s'", lf);
    return false;
  }
  if (b.mask.ndim != ndim || b.labels.ndim != ndim) {
    PyErr_Format(PyExc_ValueError, "mask and labels must both have %d dimensions", ndim);
    return false;
  }
  for (int i = 0; i < ndim; ++i) {
    if (b.mask.shape[i] != b.labels.shape[i]) {
      PyErr_SetString(PyExc_ValueError, "labels must have the mask's shape");
      return false;
    }
  }
  return true;
}

PyObject* stats_bytes(const std::vector<int64_t>& stats) {
  return PyBytes_FromStringAndSize(reinterpret_cast<const char*>(stats.data()),
                                   static_cast<Py_ssize_t>(stats.size() * sizeof(int64_t)));
}

PyObject* label(PyObject*, PyObject* args) {
  PyObject *mask_obj, *labels_obj;
  if (!PyArg_ParseTuple(args, "OO:label", &mask_obj, &labels_obj)) return nullptr;
  Buffers b;
  if (!open_buffers(mask_obj, labels_obj, 2, b)) return nullptr;
  thread_local std::vector<int64_t> stats;  // reused: no allocation per call once warm
  Py_BEGIN_ALLOW_THREADS
  abvoc_ccl::label_with_stats(static_cast<const uint8_t*>(b.mask.buf), b.mask.shape[0],
                              b.mask.shape[1], static_cast<int32_t*>(b.labels.buf), stats);
  Py_END_ALLOW_THREADS
  return stats_bytes(stats);
}

PyObject* label_batch(PyObject*, PyObject* args) {
  PyObject *mask_obj, *labels_obj;
  int threads = 0;
  if (!PyArg_ParseTuple(args, "OO|i:label_batch", &mask_obj, &labels_obj, &threads)) {
    return nullptr;
  }
  Buffers b;
  if (!open_buffers(mask_obj, labels_obj, 3, b)) return nullptr;
  std::vector<std::vector<int64_t>> stats;
  Py_BEGIN_ALLOW_THREADS
  abvoc_ccl::label_batch(static_cast<const uint8_t*>(b.mask.buf), b.mask.shape[0],
                         b.mask.shape[1], b.mask.shape[2], static_cast<int32_t*>(b.labels.buf),
                         stats, threads);
  Py_END_ALLOW_THREADS
  PyObject* out = PyList_New(static_cast<Py_ssize_t>(stats.size()));
  if (!out) return nullptr;
  for (size_t i = 0; i < stats.size(); ++i) {
    PyObject* item = stats_bytes(stats[i]);
    if (!item) {
      Py_DECREF(out);
      return nullptr;
    }
    PyList_SET_ITEM(out, static_cast<Py_ssize_t>(i), item);
  }
  return out;
}

PyMethodDef methods[] = {
    {"label", label, METH_VARARGS,
     "label(mask, labels) -> bytes: label a 2-D mask in place, return n*5 int64 stats "
     "(x0, y0, x1, y1, area)."},
    {"label_batch", label_batch, METH_VARARGS,
     "label_batch(masks, labels, threads=0) -> list[bytes]: label a 3-D batch, one image per "
     "thread."},
    {nullptr, nullptr, 0, nullptr}};

PyModuleDef module = {PyModuleDef_HEAD_INIT, "_ccl",
                      "Connected components with per-component box and area (csrc/ccl).", -1,
                      methods};

}  // namespace

PyMODINIT_FUNC PyInit__ccl(void) { return PyModule_Create(&module); }

// A small C ABI over at::cuda::CUDAGraph and the CUDA caching allocator's statistics, for
// wst-models (tch has no graph API). Every function catches C++ exceptions and returns them
// as a heap-allocated message (free it with wst_free_error); 0 means success.
//
// Capture protocol (what torch.cuda.graph does): synchronise, make a pooled non-default
// stream current, warm up on it, capture_begin, enqueue the work (tch ops from Rust),
// capture_end, replay any number of times, then synchronise and restore the stream.

#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAStream.h>

#include <cstdint>
#include <cstring>
#include <exception>
#include <memory>
#include <optional>
#include <string>

#include "guarded.h"

using wst_shim::guarded;

// One captured graph and the side stream it is captured and replayed on.
struct WstCudaGraph {
  c10::DeviceIndex device;
  at::cuda::CUDAGraph graph;
  std::optional<c10::cuda::CUDAStream> side;
  std::optional<c10::cuda::CUDAStream> previous;
  bool captured = false;

  explicit WstCudaGraph(c10::DeviceIndex d) : device(d) {}
};

extern "C" {

void wst_free_error(char* err) { std::free(err); }

int wst_cuda_graph_new(int device, WstCudaGraph** out, char** err) {
  return guarded(err, [&] {
    *out = nullptr;
    auto g = std::make_unique<WstCudaGraph>(static_cast<c10::DeviceIndex>(device));
    *out = g.release();
  });
}

void wst_cuda_graph_free(WstCudaGraph* g) {
  if (g == nullptr) return;
  try {
    if (g->previous.has_value()) {
      c10::cuda::device_synchronize();
      c10::cuda::setCurrentCUDAStream(*g->previous);
    }
  } catch (...) {
  }
  delete g;
}

// Synchronises the device and makes a pooled non-default stream current (captures must not
// run on the default stream). Idempotent.
int wst_cuda_graph_enter_stream(WstCudaGraph* g, char** err) {
  return guarded(err, [&] {
    if (g->side.has_value()) return;
    c10::cuda::device_synchronize();
    g->previous = c10::cuda::getCurrentCUDAStream(g->device);
    g->side = c10::cuda::getStreamFromPool(false, g->device);
    c10::cuda::setCurrentCUDAStream(*g->side);
  });
}

// Synchronises the device and restores the stream that was current before enter. Idempotent.
int wst_cuda_graph_exit_stream(WstCudaGraph* g, char** err) {
  return guarded(err, [&] {
    if (!g->previous.has_value()) return;
    c10::cuda::device_synchronize();
    c10::cuda::setCurrentCUDAStream(*g->previous);
    g->previous.reset();
    g->side.reset();
  });
}

int wst_cuda_graph_capture_begin(WstCudaGraph* g, char** err) {
  return guarded(err, [&] {
    if (!g->side.has_value()) {
      throw std::runtime_error("wst_cuda_graph_capture_begin: enter the side stream first");
    }
    g->graph.capture_begin();
  });
}

int wst_cuda_graph_capture_end(WstCudaGraph* g, char** err) {
  return guarded(err, [&] {
    g->graph.capture_end();
    g->captured = true;
  });
}

int wst_cuda_graph_replay(WstCudaGraph* g, char** err) {
  return guarded(err, [&] {
    if (!g->captured) {
      throw std::runtime_error("wst_cuda_graph_replay: nothing captured");
    }
    g->graph.replay();
  });
}

// Peak bytes allocated through the caching allocator on `device` since the last reset.
int wst_cuda_peak_allocated(int device, int64_t* out, char** err) {
  return guarded(err, [&] {
    auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(
        static_cast<c10::DeviceIndex>(device));
    *out = stats
               .allocated_bytes[static_cast<size_t>(
                   c10::CachingAllocator::StatType::AGGREGATE)]
               .peak;
  });
}

int wst_cuda_reset_peak(int device, char** err) {
  return guarded(err, [&] {
    c10::cuda::CUDACachingAllocator::resetPeakStats(static_cast<c10::DeviceIndex>(device));
  });
}

int wst_cuda_synchronize(char** err) {
  return guarded(err, [&] { c10::cuda::device_synchronize(); });
}

}  // extern "C"

//! CUDA graphs and CUDA memory statistics, through a small C++ shim over `at::cuda::CUDAGraph`
//! and the CUDA caching allocator (`csrc/cuda_graph.cpp`, built by `build.rs` when the libtorch
//! in use has CUDA; tch has no graph API).
//!
//! A [`CudaGraph`] records the kernels that tch ops enqueue between [`CudaGraph::capture`]'s
//! begin and end, on a pooled non-default stream (capture is not allowed on the default
//! stream), and [`CudaGraph::replay`] launches them all at once: one launch instead of hundreds,
//! which is what makes small-batch decoding fast. Captured work reads and writes the same
//! device buffers on every replay, so the code being captured must keep its inputs and outputs
//! in tensors allocated before the capture and update them in place.
#![allow(unsafe_code)]

use tch::Device;

use crate::{Error, Result};

#[cfg(wst_cuda_graph)]
mod ffi {
    use std::os::raw::{c_char, c_int};

    /// The shim's graph object (opaque).
    #[repr(C)]
    pub struct WstCudaGraph {
        _private: [u8; 0],
    }

    extern "C" {
        pub fn wst_free_error(err: *mut c_char);
        pub fn wst_cuda_graph_new(
            device: c_int,
            out: *mut *mut WstCudaGraph,
            err: *mut *mut c_char,
        ) -> c_int;
        pub fn wst_cuda_graph_free(g: *mut WstCudaGraph);
        pub fn wst_cuda_graph_enter_stream(g: *mut WstCudaGraph, err: *mut *mut c_char) -> c_int;
        pub fn wst_cuda_graph_exit_stream(g: *mut WstCudaGraph, err: *mut *mut c_char) -> c_int;
        pub fn wst_cuda_graph_capture_begin(g: *mut WstCudaGraph, err: *mut *mut c_char) -> c_int;
        pub fn wst_cuda_graph_capture_end(g: *mut WstCudaGraph, err: *mut *mut c_char) -> c_int;
        pub fn wst_cuda_graph_replay(g: *mut WstCudaGraph, err: *mut *mut c_char) -> c_int;
        pub fn wst_cuda_peak_allocated(
            device: c_int,
            out: *mut i64,
            err: *mut *mut c_char,
        ) -> c_int;
        pub fn wst_cuda_reset_peak(device: c_int, err: *mut *mut c_char) -> c_int;
    }

    /// Runs one shim call and turns its status and message into a result.
    pub fn check(op: &'static str, f: impl FnOnce(*mut *mut c_char) -> c_int) -> crate::Result<()> {
        let mut err: *mut c_char = std::ptr::null_mut();
        let status = f(&mut err);
        if status == 0 {
            return Ok(());
        }
        let message = if err.is_null() {
            "failed (no message)".to_string()
        } else {
            // SAFETY: the shim returns a NUL-terminated malloc'd copy, freed right after.
            let m = unsafe { std::ffi::CStr::from_ptr(err) }
                .to_string_lossy()
                .into_owned();
            unsafe { wst_free_error(err) };
            m
        };
        Err(crate::Error::CudaGraph { op, message })
    }
}

/// True when this build has the CUDA-graph shim and libtorch sees a CUDA device.
pub fn cuda_graphs_available() -> bool {
    cfg!(wst_cuda_graph) && tch::Cuda::is_available()
}

/// True unless the environment variable `WST_CUDA_GRAPH` is `0`, `false` or `off`.
pub fn cuda_graphs_enabled_by_env() -> bool {
    !matches!(
        std::env::var("WST_CUDA_GRAPH").as_deref(),
        Ok("0" | "false" | "off")
    )
}

fn cuda_index(device: Device, op: &'static str) -> Result<i32> {
    match device {
        Device::Cuda(i) => i32::try_from(i).map_err(|_| Error::CudaGraph {
            op,
            message: format!("CUDA device index {i} out of range"),
        }),
        other => Err(Error::CudaGraph {
            op,
            message: format!("needs a CUDA device, got {other:?}"),
        }),
    }
}

#[cfg(not(wst_cuda_graph))]
fn unavailable<T>(op: &'static str) -> Result<T> {
    Err(Error::CudaGraph {
        op,
        message: "this build has no CUDA-graph shim (libtorch without CUDA, or CUDA headers \
                  missing at build time)"
            .into(),
    })
}

/// Peak bytes allocated by libtorch's CUDA caching allocator on `device` since the last
/// [`cuda_reset_peak_memory`] (what `torch.cuda.max_memory_allocated` reports).
pub fn cuda_peak_memory(device: Device) -> Result<u64> {
    let d = cuda_index(device, "peak_memory")?;
    #[cfg(wst_cuda_graph)]
    {
        let mut out = 0i64;
        // SAFETY: plain out-parameters; the shim catches C++ exceptions.
        ffi::check("peak_memory", |err| unsafe {
            ffi::wst_cuda_peak_allocated(d, &mut out, err)
        })?;
        Ok(u64::try_from(out).unwrap_or(0))
    }
    #[cfg(not(wst_cuda_graph))]
    {
        let _ = d;
        unavailable("peak_memory")
    }
}

/// Resets the peak counted by [`cuda_peak_memory`].
pub fn cuda_reset_peak_memory(device: Device) -> Result<()> {
    let d = cuda_index(device, "reset_peak")?;
    #[cfg(wst_cuda_graph)]
    {
        // SAFETY: no pointers but the error out-parameter.
        ffi::check("reset_peak", |err| unsafe {
            ffi::wst_cuda_reset_peak(d, err)
        })
    }
    #[cfg(not(wst_cuda_graph))]
    {
        let _ = d;
        unavailable("reset_peak")
    }
}

/// One CUDA graph with the side stream it is captured and replayed on.
///
/// Typical use: [`CudaGraph::new`], [`CudaGraph::enter_side_stream`], a few eager warm-up runs
/// of the work (on the side stream, so cuBLAS workspaces exist for it), [`CudaGraph::capture`]
/// the work once, [`CudaGraph::replay`] it as often as needed, and
/// [`CudaGraph::exit_side_stream`] (dropping the graph also restores the stream).
#[derive(Debug)]
pub struct CudaGraph {
    #[cfg(wst_cuda_graph)]
    ptr: *mut ffi::WstCudaGraph,
    captured: bool,
}

impl CudaGraph {
    /// An empty graph for `device` (a CUDA device); an error when this build has no shim.
    pub fn new(device: Device) -> Result<Self> {
        let d = cuda_index(device, "new")?;
        #[cfg(wst_cuda_graph)]
        {
            let mut ptr = std::ptr::null_mut();
            // SAFETY: `ptr` receives a heap object owned by the returned value (freed in Drop).
            ffi::check("new", |err| unsafe {
                ffi::wst_cuda_graph_new(d, &mut ptr, err)
            })?;
            Ok(CudaGraph {
                ptr,
                captured: false,
            })
        }
        #[cfg(not(wst_cuda_graph))]
        {
            let _ = d;
            unavailable("new")
        }
    }

    /// Synchronises the device and makes the graph's non-default stream current for this
    /// thread: work enqueued from now on (warm-up, capture, replays) runs on it.
    pub fn enter_side_stream(&mut self) -> Result<()> {
        #[cfg(wst_cuda_graph)]
        {
            // SAFETY: `self.ptr` is a live graph object.
            ffi::check("enter_stream", |err| unsafe {
                ffi::wst_cuda_graph_enter_stream(self.ptr, err)
            })
        }
        #[cfg(not(wst_cuda_graph))]
        unavailable("enter_stream")
    }

    /// Synchronises the device and restores the stream that was current before
    /// [`CudaGraph::enter_side_stream`].
    pub fn exit_side_stream(&mut self) -> Result<()> {
        #[cfg(wst_cuda_graph)]
        {
            // SAFETY: `self.ptr` is a live graph object.
            ffi::check("exit_stream", |err| unsafe {
                ffi::wst_cuda_graph_exit_stream(self.ptr, err)
            })
        }
        #[cfg(not(wst_cuda_graph))]
        unavailable("exit_stream")
    }

    /// Records the device work `work` enqueues (nothing runs during capture). The capture is
    /// ended even when `work` fails; its error comes first.
    pub fn capture<T>(&mut self, work: impl FnOnce() -> Result<T>) -> Result<T> {
        #[cfg(wst_cuda_graph)]
        {
            // SAFETY: `self.ptr` is a live graph object.
            ffi::check("capture_begin", |err| unsafe {
                ffi::wst_cuda_graph_capture_begin(self.ptr, err)
            })?;
            let out = work();
            // SAFETY: as above.
            let end = ffi::check("capture_end", |err| unsafe {
                ffi::wst_cuda_graph_capture_end(self.ptr, err)
            });
            let out = out?;
            end?;
            self.captured = true;
            Ok(out)
        }
        #[cfg(not(wst_cuda_graph))]
        {
            let _ = work;
            unavailable("capture_begin")
        }
    }

    /// True after a successful [`CudaGraph::capture`].
    pub fn is_captured(&self) -> bool {
        self.captured
    }

    /// Launches the captured work on the current stream.
    pub fn replay(&self) -> Result<()> {
        #[cfg(wst_cuda_graph)]
        {
            // SAFETY: `self.ptr` is a live graph object.
            ffi::check("replay", |err| unsafe {
                ffi::wst_cuda_graph_replay(self.ptr, err)
            })
        }
        #[cfg(not(wst_cuda_graph))]
        unavailable("replay")
    }
}

impl Drop for CudaGraph {
    fn drop(&mut self) {
        #[cfg(wst_cuda_graph)]
        // SAFETY: `self.ptr` came from `wst_cuda_graph_new` and is freed once.
        unsafe {
            ffi::wst_cuda_graph_free(self.ptr)
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_devices_are_refused_with_a_clear_error() {
        let e = CudaGraph::new(Device::Cpu).unwrap_err();
        assert!(e.to_string().contains("needs a CUDA device"), "{e}");
        assert!(cuda_peak_memory(Device::Cpu).is_err());
        if !tch::Cuda::is_available() {
            assert!(!cuda_graphs_available());
        }
    }
}

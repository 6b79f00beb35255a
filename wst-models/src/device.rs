//! Run-time choice of the device: CUDA when asked for or available, else the CPU.

use tch::Device;
use wst_core::DeviceChoice;

use crate::{Error, Result};

/// The tch device for a config choice. `Cuda` without a usable GPU is [`Error::NoCuda`].
pub fn select_device(choice: DeviceChoice) -> Result<Device> {
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Auto => Ok(Device::cuda_if_available()),
        DeviceChoice::Cuda => {
            if tch::Cuda::is_available() {
                Ok(Device::Cuda(0))
            } else {
                Err(Error::NoCuda)
            }
        }
    }
}

/// Number of CUDA devices libtorch can use.
pub fn cuda_device_count() -> usize {
    if tch::Cuda::is_available() {
        usize::try_from(tch::Cuda::device_count()).unwrap_or(0)
    } else {
        0
    }
}

/// One line about the linked libtorch: CUDA devices, cuDNN, threads.
pub fn torch_info() -> String {
    format!(
        "cuda devices: {}, cudnn: {}, cpu threads: {}",
        cuda_device_count(),
        tch::Cuda::cudnn_is_available(),
        tch::get_num_threads()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_is_always_available() {
        assert_eq!(select_device(DeviceChoice::Cpu).unwrap(), Device::Cpu);
        let auto = select_device(DeviceChoice::Auto).unwrap();
        assert_eq!(auto.is_cuda(), cuda_device_count() > 0);
        if cuda_device_count() == 0 {
            assert!(matches!(
                select_device(DeviceChoice::Cuda),
                Err(Error::NoCuda)
            ));
        }
    }
}

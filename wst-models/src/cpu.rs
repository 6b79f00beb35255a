//! What the CPU is, read once from CPUID: the facts the CPU paths choose their kernels by
//! (bf16 or f32 for dtype `auto`, MKL or oneDNN for f32 products, where the transposed product
//! pays). Off x86-64 every fact is false or 0.

use std::sync::OnceLock;

/// The CPU's vendor, family and the instruction sets the CPU paths care about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cpu {
    /// CPUID leaf 0's vendor string is "GenuineIntel".
    pub intel: bool,
    /// The family (CPUID leaf 1: the base family, plus the extended family where the base is
    /// 15): 25 for AMD Zen 3 and 4, 26 for Zen 5, 6 for most Intel cores.
    pub family: u32,
    /// AVX-512 foundation.
    pub avx512f: bool,
    /// AVX512-BF16 (bf16 dot products: AMD Zen 4 and later, Intel Cooper Lake and later).
    pub avx512bf16: bool,
}

/// This machine's CPU, read on first use.
pub(crate) fn cpu() -> Cpu {
    static CPU: OnceLock<Cpu> = OnceLock::new();
    *CPU.get_or_init(read)
}

#[cfg(target_arch = "x86_64")]
fn read() -> Cpu {
    use std::arch::x86_64::__cpuid;
    let r = __cpuid(0);
    let mut vendor = [0u8; 12];
    vendor[..4].copy_from_slice(&r.ebx.to_le_bytes());
    vendor[4..8].copy_from_slice(&r.edx.to_le_bytes());
    vendor[8..].copy_from_slice(&r.ecx.to_le_bytes());
    let eax = __cpuid(1).eax;
    let base = (eax >> 8) & 0xf;
    Cpu {
        intel: &vendor == b"GenuineIntel",
        family: if base == 0xf {
            base + ((eax >> 20) & 0xff)
        } else {
            base
        },
        avx512f: std::arch::is_x86_feature_detected!("avx512f"),
        avx512bf16: std::arch::is_x86_feature_detected!("avx512bf16"),
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn read() -> Cpu {
    Cpu {
        intel: false,
        family: 0,
        avx512f: false,
        avx512bf16: false,
    }
}

#[cfg(test)]
mod tests {
    /// Vendor, family and flags read from CPUID are the ones Linux reports.
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    #[test]
    fn the_cpu_is_the_one_linux_reports() {
        let info = std::fs::read_to_string("/proc/cpuinfo").expect("/proc/cpuinfo");
        let field = |name: &str| {
            info.lines()
                .find_map(|l| {
                    let (key, value) = l.split_once(':')?;
                    (key.trim() == name).then(|| value.trim().to_string())
                })
                .unwrap_or_else(|| panic!("no {name:?} line in /proc/cpuinfo"))
        };
        let cpu = super::cpu();
        assert_eq!(cpu.family, field("cpu family").parse::<u32>().unwrap());
        assert_eq!(cpu.intel, field("vendor_id") == "GenuineIntel");
        let flags: Vec<String> = field("flags").split(' ').map(str::to_string).collect();
        assert_eq!(cpu.avx512f, flags.iter().any(|f| f == "avx512f"));
        assert_eq!(cpu.avx512bf16, flags.iter().any(|f| f == "avx512_bf16"));
    }
}

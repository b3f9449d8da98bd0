//! Hardware and operating system: what explains a numeric difference between machines.

use std::ffi::OsStr;
use std::path::Path;

use repro_core::record::{Gpu, Hardware, OsInfo};

use crate::script::resolve_program;

/// CPU features that change which numeric kernels libraries pick (and so results).
const INTERESTING_FLAGS: [&str; 18] = [
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512dq",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
    "asimd",
    "sve",
    "sve2",
];

/// Cores this process may use (affinity and cgroup quota aware): what BLAS and OpenMP pick.
pub fn usable_cores() -> u32 {
    std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1)
}

pub fn capture(path_var: Option<&OsStr>) -> Hardware {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let mut cpu_model = None;
    let mut logical = 0u32;
    let mut flags: Vec<String> = Vec::new();
    for line in cpuinfo.lines() {
        let Some((k, v)) = line.split_once(':') else { continue };
        let (k, v) = (k.trim(), v.trim());
        match k {
            "processor" => logical += 1,
            "model name" | "Model" | "cpu model" if cpu_model.is_none() => cpu_model = Some(v.to_string()),
            "flags" | "Features" if flags.is_empty() => {
                flags = v.split_whitespace().filter(|f| INTERESTING_FLAGS.contains(f)).map(str::to_string).collect();
            }
            _ => {}
        }
    }
    let memory_bytes = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        m.lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
    });
    let (gpus, gpu_probe) = gpus(path_var);
    Hardware {
        cpu_model,
        usable_cores: usable_cores(),
        logical_cpus: if logical > 0 { logical } else { usable_cores() },
        memory_bytes,
        cpu_flags: flags,
        gpus,
        gpu_probe,
    }
}

fn gpus(path_var: Option<&OsStr>) -> (Vec<Gpu>, String) {
    let Some(smi) = resolve_program("nvidia-smi", Path::new("/"), path_var) else {
        return (Vec::new(), "nvidia-smi not found".into());
    };
    let query = std::process::Command::new(&smi)
        .args(["--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"])
        .output();
    let out = match query {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        Ok(o) => {
            return (
                Vec::new(),
                format!(
                    "nvidia-smi failed: {}",
                    String::from_utf8_lossy(&o.stderr).lines().next().unwrap_or("").trim()
                ),
            )
        }
        Err(e) => return (Vec::new(), format!("nvidia-smi could not run: {e}")),
    };
    // The CUDA version the driver supports is only in the banner of a plain `nvidia-smi`.
    let cuda = std::process::Command::new(&smi).output().ok().and_then(|o| {
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        let i = text.find("CUDA Version:")?;
        text[i + "CUDA Version:".len()..].split_whitespace().next().map(str::to_string)
    });
    let gpus: Vec<Gpu> = out
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut f = l.split(',').map(|s| s.trim().to_string());
            Gpu { model: f.next().unwrap_or_default(), driver: f.next(), memory: f.next(), cuda: cuda.clone() }
        })
        .collect();
    let probe = format!("nvidia-smi: {} GPU(s)", gpus.len());
    (gpus, probe)
}

pub fn os_info() -> OsInfo {
    let name = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| t.lines().find_map(|l| l.strip_prefix("PRETTY_NAME=")).map(|v| v.trim_matches('"').to_string()))
        .unwrap_or_else(|| std::env::consts::OS.to_string());
    OsInfo { name, kernel: kernel_release(), arch: std::env::consts::ARCH.to_string(), libc: libc_version() }
}

#[cfg(unix)]
fn kernel_release() -> String {
    // SAFETY: utsname is plain data; uname fills it with NUL-terminated strings.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut u) } != 0 {
        return String::new();
    }
    let field = |f: &[libc::c_char]| {
        let bytes: Vec<u8> = f.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    format!("{} {}", field(&u.sysname), field(&u.release))
}

#[cfg(not(unix))]
fn kernel_release() -> String {
    String::new()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn libc_version() -> Option<String> {
    // SAFETY: returns a pointer to a static NUL-terminated string.
    let p = unsafe { libc::gnu_get_libc_version() };
    if p.is_null() {
        return None;
    }
    let v = unsafe { std::ffi::CStr::from_ptr(p) };
    Some(format!("glibc {}", v.to_string_lossy()))
}

/// The static (musl) build shares no libc with the machine, but the libc that matters is
/// the one the training process runs on: the system's. glibc names itself through getconf
/// ("glibc 2.36", what the glibc build records); a musl system (Alpine) has its loader in /lib.
#[cfg(all(target_os = "linux", target_env = "musl"))]
fn libc_version() -> Option<String> {
    let named = std::process::Command::new("getconf").arg("GNU_LIBC_VERSION").output().ok();
    if let Some(out) = named.filter(|o| o.status.success()) {
        let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !version.is_empty() {
            return Some(version);
        }
    }
    let loaders = std::fs::read_dir("/lib").ok()?;
    loaders.flatten().any(|e| e.file_name().to_string_lossy().starts_with("ld-musl-")).then(|| "musl".into())
}

#[cfg(not(target_os = "linux"))]
fn libc_version() -> Option<String> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_machine() {
        let h = capture(None);
        assert!(h.usable_cores >= 1);
        assert!(h.logical_cpus >= h.usable_cores.min(h.logical_cpus));
        assert_eq!(h.gpu_probe, "nvidia-smi not found");
        let os = os_info();
        assert!(!os.arch.is_empty());
    }
}

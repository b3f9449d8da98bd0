//! The determinism lint: the known traps that make a framework's results change from one
//! run to the next, each with its fix.

use std::collections::BTreeMap;

use super::ProbeRecord;

/// A setting that makes results vary, and what to do about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trap {
    pub what: String,
    pub fix: String,
}

fn trap(what: impl Into<String>, fix: impl Into<String>) -> Trap {
    Trap { what: what.into(), fix: fix.into() }
}

/// The traps in a run's framework state. `variables` are the determinism variables the
/// command saw (the record's `environment.variables`).
pub fn determinism_traps(probe: &ProbeRecord, variables: &BTreeMap<String, String>) -> Vec<Trap> {
    let mut traps = Vec::new();
    if let Some(t) = &probe.frameworks.torch {
        let gpu = t.cuda_available == Some(true);
        if t.deterministic_algorithms == Some(true) && gpu && !variables.contains_key("CUBLAS_WORKSPACE_CONFIG") {
            traps.push(trap(
                "torch deterministic algorithms are on but CUBLAS_WORKSPACE_CONFIG is unset (cuBLAS raises or varies)",
                "export CUBLAS_WORKSPACE_CONFIG=:4096:8 (repro run sets it when unset)",
            ));
        }
        if t.cudnn_benchmark == Some(true) {
            traps.push(trap(
                "torch.backends.cudnn.benchmark is on: cuDNN picks its algorithms by timing, differently each run",
                "set torch.backends.cudnn.benchmark = False",
            ));
        }
        if gpu && t.matmul_allow_tf32 == Some(true) {
            traps.push(trap(
                "TF32 matmuls are on (torch.backends.cuda.matmul.allow_tf32): float32 results depend on the GPU",
                "set torch.backends.cuda.matmul.allow_tf32 = False (or torch.set_float32_matmul_precision('highest'))",
            ));
        }
        if gpu && t.cudnn_allow_tf32 == Some(true) && t.cudnn_deterministic != Some(true) {
            traps.push(trap(
                "cuDNN may use TF32 and non-deterministic kernels (cudnn.deterministic is off)",
                "set torch.backends.cudnn.deterministic = True and torch.backends.cudnn.allow_tf32 = False",
            ));
        }
        if gpu && t.deterministic_algorithms != Some(true) {
            traps.push(trap(
                "torch deterministic algorithms are off: some CUDA kernels (scatter, index_add, …) vary run to run",
                "call torch.use_deterministic_algorithms(True)",
            ));
        }
        let unseeded_workers = probe.frameworks.dataloaders.iter().filter(|d| d.num_workers > 0 && !d.worker_init_fn);
        if unseeded_workers.count() > 0 {
            traps.push(trap(
                "a DataLoader with worker processes has no worker_init_fn: numpy and random in the workers are unseeded",
                "pass worker_init_fn that seeds numpy and random from torch.initial_seed(), and generator=",
            ));
        }
        let seeded = probe.seeds.iter().any(|s| s.via.starts_with("torch.") && !s.value.is_null());
        if !seeded && t.initial_seed.is_some() {
            traps.push(trap(
                "PyTorch was used but never seeded: its generator started from a random seed",
                "call torch.manual_seed(int(os.environ['REPRO_SEED']))",
            ));
        }
    }
    for s in probe.seeds.iter().filter(|s| s.value.is_null()) {
        traps.push(trap(
            format!("{} was called without a seed", s.via),
            format!("pass the run's seed: {}(int(os.environ['REPRO_SEED']))", s.via),
        ));
    }
    if let Some(tf) = &probe.frameworks.tensorflow {
        let on = tf.get("op_determinism").and_then(|v| v.as_bool()) == Some(true)
            || variables.get("TF_DETERMINISTIC_OPS").is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
        if !on {
            traps.push(trap(
                "TensorFlow op determinism is off",
                "call tf.config.experimental.enable_op_determinism() (or export TF_DETERMINISTIC_OPS=1)",
            ));
        }
    }
    traps
}

//! The instruction-set level a build was compiled for, checked against the
//! CPU it runs on.
//!
//! The shipped build targets x86-64-v3 (AVX2, BMI1/2, FMA, LZCNT, MOVBE:
//! every x86 server since 2013–2015, and RHEL 10's baseline), 4 % less CPU
//! per message than the portable x86-64 build (benchmarks/history.md). Such a binary
//! on an older CPU would die of an illegal instruction somewhere in the
//! pipeline; [`missing_features`] lets `main` refuse to start instead, with
//! the features named. It runs before anything else and only calls std's
//! feature detection (compiled for the portable baseline).

/// Features this build was compiled to use that the CPU lacks.
pub fn missing_features() -> Vec<&'static str> {
    missing(&features())
}

/// `(feature, compiled in, present on this CPU)` for each feature the
/// x86-64 levels add to the baseline (v2, v3, v4) that std can detect
/// (all but LAHF/SAHF, which every x86-64 CPU since 2005 has).
#[cfg(target_arch = "x86_64")]
fn features() -> Vec<(&'static str, bool, bool)> {
    macro_rules! features {
        ($($feature:tt),*) => {
            vec![$((
                $feature,
                cfg!(target_feature = $feature),
                std::arch::is_x86_feature_detected!($feature),
            )),*]
        };
    }
    features!(
        "sse3",
        "ssse3",
        "sse4.1",
        "sse4.2",
        "popcnt",
        "cmpxchg16b",
        "avx",
        "avx2",
        "bmi1",
        "bmi2",
        "fma",
        "lzcnt",
        "movbe",
        "f16c",
        "xsave",
        "avx512f",
        "avx512bw",
        "avx512cd",
        "avx512dq",
        "avx512vl"
    )
}

/// Elsewhere the levels do not apply.
#[cfg(not(target_arch = "x86_64"))]
fn features() -> Vec<(&'static str, bool, bool)> {
    Vec::new()
}

fn missing(features: &[(&'static str, bool, bool)]) -> Vec<&'static str> {
    features
        .iter()
        .filter(|&&(_, compiled_in, present)| compiled_in && !present)
        .map(|&(feature, _, _)| feature)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_build_runs_here() {
        assert_eq!(missing_features(), Vec::<&str>::new());
    }

    #[test]
    fn only_compiled_in_features_the_cpu_lacks_are_named() {
        let features = [
            ("avx2", true, false),
            ("bmi2", true, false),
            ("avx512f", false, false),
            ("sse4.2", true, true),
            ("avx512bw", false, true),
        ];
        assert_eq!(missing(&features), ["avx2", "bmi2"]);
    }
}

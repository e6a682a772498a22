//! Deterministic randomness: one ChaCha8 stream per device, derived from the
//! seed and the device id, plus small sampling helpers.
//!
//! Per-device streams make a device's behaviour independent of how the
//! fleet is batched and of which other devices exist, so adding a scenario
//! or a device does not reshuffle everybody else. The id is hashed with
//! FNV-1a (stable across Rust releases, unlike `DefaultHasher`).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The generator every simulated component uses.
pub type SimRng = ChaCha8Rng;

/// 64-bit FNV-1a of `s`.
pub fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The stream of `name` under `seed`.
pub fn stream(seed: u64, name: &str) -> SimRng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(fnv1a(name));
    r
}

/// Uniform in `lo..hi` (returns `lo` when the range is empty).
pub fn uniform(r: &mut SimRng, lo: f64, hi: f64) -> f64 {
    if hi > lo {
        r.random_range(lo..hi)
    } else {
        lo
    }
}

/// Standard normal sample (Box–Muller; one of the pair is discarded, which
/// keeps the stream position independent of call parity).
pub fn std_normal(r: &mut SimRng) -> f64 {
    // 1 - u is in (0, 1], so the logarithm is finite.
    let u1: f64 = 1.0 - r.random::<f64>();
    let u2: f64 = r.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Normal sample with mean `mu` and standard deviation `sigma`.
pub fn normal(r: &mut SimRng, mu: f64, sigma: f64) -> f64 {
    mu + sigma * std_normal(r)
}

/// Milliseconds uniformly in `lo_s..hi_s` seconds.
pub fn ms_between(r: &mut SimRng, lo_s: f64, hi_s: f64) -> i64 {
    (uniform(r, lo_s, hi_s) * 1000.0).round() as i64
}

/// Exponential waiting time with mean `mean_s` seconds, in ms (capped at 20
/// means so one unlucky draw cannot silence a device for weeks).
pub fn exp_ms(r: &mut SimRng, mean_s: f64) -> i64 {
    let u: f64 = 1.0 - r.random::<f64>();
    ((-u.ln()).min(20.0) * mean_s * 1000.0).round() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_differ_by_name_and_repeat_by_seed() {
        let a: u64 = stream(7, "bin-1").random();
        let b: u64 = stream(7, "bin-2").random();
        let c: u64 = stream(7, "bin-1").random();
        let d: u64 = stream(8, "bin-1").random();
        assert_eq!(a, c);
        assert_ne!(a, b);
        assert_ne!(a, d);
    }

    #[test]
    fn normal_samples_have_the_asked_spread() {
        let mut r = stream(1, "n");
        let xs: Vec<f64> = (0..20_000).map(|_| normal(&mut r, 5.0, 2.0)).collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64;
        assert!((mean - 5.0).abs() < 0.05, "{mean}");
        assert!((var.sqrt() - 2.0).abs() < 0.05, "{var}");
    }
}

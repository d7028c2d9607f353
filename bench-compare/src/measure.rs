//! Round-robin timing of batches, calibration, and the median/ratio statistics.

use std::time::{Duration, Instant};

/// Runs `f` `iters` times and returns the elapsed wall-clock time.
///
/// `f` is generic so that the loop is monomorphised and inlined around it.
#[inline(always)]
pub fn time_batch(iters: u64, mut f: impl FnMut()) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        f();
    }
    start.elapsed()
}

/// Finds how many iterations make a batch last about `target`.
///
/// `batch(n)` runs and times `n` iterations. The count is doubled until a
/// batch takes at least a quarter of `target`, then scaled linearly to it,
/// from the fastest of three batches of that count (so that a batch slowed
/// down by preemption does not shrink the count).
pub fn calibrate(mut batch: impl FnMut(u64) -> Duration, target: Duration) -> u64 {
    let mut iters: u64 = 1;
    loop {
        let elapsed = batch(iters);
        if elapsed >= target / 4 || iters >= 1 << 40 {
            let fastest = (0..2).map(|_| batch(iters)).fold(elapsed, Duration::min);
            let per_iter = fastest.as_secs_f64().max(1e-12) / iters as f64;
            return ((target.as_secs_f64() / per_iter).round() as u64).max(1);
        }
        iters *= 2;
    }
}

/// Nanoseconds per iteration of a batch.
pub fn ns_per_op(elapsed: Duration, iters: u64) -> f64 {
    elapsed.as_secs_f64() * 1e9 / iters as f64
}

/// The order in which `n` subjects run in round `round`: `0..n` rotated left
/// by `round`, so that no subject always runs first or right after another.
pub fn rotation(round: usize, n: usize) -> impl Iterator<Item = usize> {
    (0..n).map(move |i| (round + i) % n)
}

/// Runs `warmup + rounds` rounds; in each, every operation in turn runs one
/// batch of every subject, subjects in [`rotation`] order.
///
/// `batch(op, subject)` returns the batch's ns/op, or `None` if the subject
/// cannot do the operation. Returns the ns/op of the measured rounds, indexed
/// `[op][subject][round]` (empty for unsupported pairs).
pub fn run_rounds(
    ops: usize,
    subjects: usize,
    warmup: usize,
    rounds: usize,
    mut batch: impl FnMut(usize, usize) -> Option<f64>,
) -> Vec<Vec<Vec<f64>>> {
    let mut samples = vec![vec![Vec::with_capacity(rounds); subjects]; ops];
    for round in 0..warmup + rounds {
        for (op, per_subject) in samples.iter_mut().enumerate() {
            for subject in rotation(round, subjects) {
                if let Some(ns) = batch(op, subject) {
                    if round >= warmup {
                        per_subject[subject].push(ns);
                    }
                }
            }
        }
    }
    samples
}

/// The median of `values` (mean of the two middle ones for an even count),
/// or `None` if empty. NaNs sort last.
pub fn median(values: &[f64]) -> Option<f64> {
    quantile(values, 0.5)
}

/// The `q` quantile (0 to 1) of `values`, interpolating linearly between
/// neighbours, or `None` if empty.
pub fn quantile(values: &[f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    let frac = pos - lo as f64;
    Some(sorted[lo] + (sorted[hi] - sorted[lo]) * frac)
}

/// Per-round ratios `values[r] / baseline[r]`, over the rounds both have.
pub fn ratios(values: &[f64], baseline: &[f64]) -> Vec<f64> {
    values
        .iter()
        .zip(baseline)
        .map(|(value, base)| value / base)
        .collect()
}

/// The median and quartiles of per-round ratios.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ratio {
    /// Median over rounds of (this subject / reference in the same round).
    pub median: f64,
    /// First quartile of the per-round ratios.
    pub q1: f64,
    /// Third quartile of the per-round ratios.
    pub q3: f64,
}

impl Ratio {
    /// The ratio of `values` to `baseline`, round by round; `None` if they
    /// share no round.
    pub fn of(values: &[f64], baseline: &[f64]) -> Option<Ratio> {
        let ratios = ratios(values, baseline);
        Some(Ratio {
            median: median(&ratios)?,
            q1: quantile(&ratios, 0.25)?,
            q3: quantile(&ratios, 0.75)?,
        })
    }
}

/// Statistics of one subject's samples for one operation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    /// Median ns/op over rounds.
    pub median: f64,
    /// Fastest round, ns/op.
    pub min: f64,
    /// Slowest round, ns/op.
    pub max: f64,
    /// The per-round ratio to the reference subject, if it has samples.
    pub ratio: Option<Ratio>,
}

/// Summarises `samples` (ns/op per round) against `reference` (the
/// reference subject's ns/op in the same rounds, if it was timed). `None`
/// if there are no samples.
pub fn summarize(samples: &[f64], reference: Option<&[f64]>) -> Option<Summary> {
    Some(Summary {
        median: median(samples)?,
        min: quantile(samples, 0.0)?,
        max: quantile(samples, 1.0)?,
        ratio: reference.and_then(|reference| Ratio::of(samples, reference)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[4.0]), Some(4.0));
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        // An outlier does not move it.
        assert_eq!(median(&[1.0, 2.0, 1000.0]), Some(2.0));
    }

    #[test]
    fn quantiles_interpolate() {
        let v = [10.0, 0.0, 20.0, 30.0, 40.0];
        assert_eq!(quantile(&v, 0.0), Some(0.0));
        assert_eq!(quantile(&v, 1.0), Some(40.0));
        assert_eq!(quantile(&v, 0.25), Some(10.0));
        assert_eq!(quantile(&[0.0, 10.0], 0.25), Some(2.5));
    }

    #[test]
    fn ratio_is_median_of_per_round_ratios() {
        // The machine slows down by 10x halfway; the crate is always 2x the
        // baseline in the same round. The ratio of medians would be skewed by
        // the drift only if rounds were not paired; the paired ratio is exact.
        let baseline = [1.0, 1.0, 10.0, 10.0, 10.0];
        let crate_ns = [2.0, 2.0, 20.0, 20.0, 20.0];
        let summary = summarize(&crate_ns, Some(&baseline)).unwrap();
        let ratio = summary.ratio.unwrap();
        assert_eq!((ratio.median, ratio.q1, ratio.q3), (2.0, 2.0, 2.0));
        assert_eq!(summary.median, 20.0);
        assert_eq!((summary.min, summary.max), (2.0, 20.0));
    }

    #[test]
    fn ratio_ignores_one_noisy_round() {
        let baseline = [1.0, 1.0, 1.0];
        let crate_ns = [1.5, 9.0, 1.5];
        let ratio = summarize(&crate_ns, Some(&baseline)).unwrap().ratio;
        assert_eq!(ratio.unwrap().median, 1.5);
        assert_eq!(ratios(&crate_ns, &baseline), vec![1.5, 9.0, 1.5]);
    }

    #[test]
    fn summarize_without_samples_or_reference() {
        assert_eq!(summarize(&[], Some(&[1.0])), None);
        assert_eq!(summarize(&[1.0], Some(&[])).unwrap().ratio, None);
        assert_eq!(summarize(&[1.0], None).unwrap().ratio, None);
        assert_eq!(summarize(&[1.0], None).unwrap().median, 1.0);
    }

    #[test]
    fn ratio_quartiles() {
        let baseline = [2.0; 5];
        let values = [1.0, 2.0, 3.0, 4.0, 5.0];
        let ratio = Ratio::of(&values, &baseline).unwrap();
        assert_eq!((ratio.q1, ratio.median, ratio.q3), (1.0, 1.5, 2.0));
        assert_eq!(Ratio::of(&[], &[]), None);
    }

    #[test]
    fn rotation_rotates() {
        assert_eq!(rotation(0, 3).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(rotation(1, 3).collect::<Vec<_>>(), [1, 2, 0]);
        assert_eq!(rotation(5, 3).collect::<Vec<_>>(), [2, 0, 1]);
    }

    #[test]
    fn run_rounds_skips_warmup_and_unsupported() {
        let mut calls = Vec::new();
        let samples = run_rounds(2, 3, 1, 2, |op, subject| {
            calls.push((op, subject));
            (subject != 2).then_some((op * 10 + subject) as f64)
        });
        // 3 rounds x 2 ops x 3 subjects, rotating.
        assert_eq!(calls.len(), 18);
        assert_eq!(&calls[..3], &[(0, 0), (0, 1), (0, 2)]);
        assert_eq!(&calls[6..9], &[(0, 1), (0, 2), (0, 0)]);
        assert_eq!(samples[1][1], vec![11.0, 11.0]);
        assert!(samples[0][2].is_empty());
    }

    #[test]
    fn calibrate_scales_to_target() {
        // 1 µs per iteration, 3 ms target: 3000 iterations.
        let iters = calibrate(Duration::from_micros, Duration::from_millis(3));
        assert_eq!(iters, 3000);
        assert_eq!(ns_per_op(Duration::from_millis(3), 3000), 1000.0);
    }

    #[test]
    fn calibrate_ignores_one_preempted_batch() {
        // The first batch is slowed down by 1 ms; then 1 µs per iteration.
        let mut first = true;
        let iters = calibrate(
            |n| {
                let hiccup = if first {
                    Duration::from_millis(1)
                } else {
                    Duration::ZERO
                };
                first = false;
                Duration::from_micros(n) + hiccup
            },
            Duration::from_millis(3),
        );
        assert_eq!(iters, 3000);
    }
}

//! Generators of values for the structured targets, driven by
//! [`arbitrary::Unstructured`]: mostly plausible values, often the exact
//! boundaries of what validation accepts (and one step past them), and
//! sometimes anything at all. A generator never fails: an exhausted input
//! yields the first choice.

use arbitrary::Unstructured;

/// Texts that have broken or could break something downstream: line-protocol
/// specials (the issue-10 backslash), control characters, Unicode line
/// separators, plates in their many written forms, lengths at the 128-byte
/// text limit, hazardous-waste codes.
pub const NASTY_TEXTS: &[&str] = &[
    "",
    "x",
    "TRAIL\\",
    "\\",
    "a\\b",
    "back\\\\slash\\\\",
    "comma,here",
    "eq=ual",
    "sp ace",
    " lead",
    "trail ",
    "\"quoted\"",
    "quote\"",
    "\\\"",
    "a,b=c d\\",
    "#hash",
    "豫AD1234",
    "豫A·D1234",
    "豫ａｄ１２３４",
    "京A 12345",
    "豫A-D_1.2",
    "tab\tx",
    "nl\nx",
    "cr\rx",
    "\u{85}next-line",
    "\u{7f}",
    "\u{0}",
    "\u{2028}line-sep",
    "\u{feff}bom",
    "🚛",
    "900-249-08",
    " 900-249-08 ",
    "900-249-8",
    "900-249-08\n",
    "permit-2026-0001",
    "cs-hanghai-east",
    "rp-jingnan-recycle",
    "RC-20261128-0117",
    "2025",
];

/// One of `items`, chosen by the input.
pub fn pick<'a, T>(u: &mut Unstructured<'_>, items: &'a [T]) -> &'a T {
    let i = u.choose_index(items.len()).unwrap_or(0);
    &items[i]
}

/// A text: a nasty one, a long one at the limits, or an arbitrary string.
pub fn text(u: &mut Unstructured<'_>) -> String {
    match u.int_in_range(0u8..=9).unwrap_or(0) {
        0..=5 => (*pick(u, NASTY_TEXTS)).to_owned(),
        6 => {
            // Around the 128-byte text limit, sometimes ending in a
            // two-byte character or a backslash.
            let n = *pick(u, &[127usize, 128, 129, 64, 65, 1000]);
            let mut s = "a".repeat(n.saturating_sub(2));
            s.push_str(*pick(u, &["é", "\\", "ab", "\""]));
            s
        }
        7 => {
            let a = pick(u, NASTY_TEXTS);
            let b = pick(u, NASTY_TEXTS);
            format!("{a}{b}")
        }
        _ => String::arbitrary_take(u),
    }
}

/// A helper so `text` reads well: an arbitrary `String` (empty when the
/// input bytes are not UTF-8 or exhausted).
trait TakeString {
    fn arbitrary_take(u: &mut Unstructured<'_>) -> String;
}

impl TakeString for String {
    fn arbitrary_take(u: &mut Unstructured<'_>) -> String {
        u.arbitrary::<String>().unwrap_or_default()
    }
}

/// An `f64` for a field whose accepted range is `lo..=hi`.
pub fn f64_in(u: &mut Unstructured<'_>, lo: f64, hi: f64) -> f64 {
    match u.int_in_range(0u8..=19).unwrap_or(0) {
        0..=9 => {
            let t = f64::from(u.arbitrary::<u32>().unwrap_or(0)) / f64::from(u32::MAX);
            lo + (hi - lo) * t
        }
        10 => lo,
        11 => hi,
        12 => next_down(lo),
        13 => next_up(hi),
        14 => *pick(u, &[0.0, -0.0, 1.0, -1.0, 0.5, 100.0, 360.0, -360.0]),
        15 => *pick(
            u,
            &[
                f64::NAN,
                f64::INFINITY,
                f64::NEG_INFINITY,
                f64::MAX,
                -f64::MAX,
                f64::MIN_POSITIVE,
                5e-324,
                -5e-324,
            ],
        ),
        16 => f64::from(u.arbitrary::<i32>().unwrap_or(0)),
        17 => (lo + hi) / 2.0,
        _ => f64::from_bits(u.arbitrary::<u64>().unwrap_or(0)),
    }
}

/// The next representable `f64` above `x` (finite `x`).
pub fn next_up(x: f64) -> f64 {
    if x.is_nan() || x == f64::INFINITY {
        return x;
    }
    if x == 0.0 {
        return 5e-324;
    }
    let b = x.to_bits();
    f64::from_bits(if x > 0.0 { b + 1 } else { b - 1 })
}

/// The next representable `f64` below `x` (finite `x`).
pub fn next_down(x: f64) -> f64 {
    -next_up(-x)
}

/// An integer for a field whose accepted range is `lo..=hi`, as `i128` so
/// one generator serves every width; the caller saturates it into its type.
pub fn int_in(u: &mut Unstructured<'_>, lo: i128, hi: i128) -> i128 {
    match u.int_in_range(0u8..=9).unwrap_or(0) {
        0..=4 => {
            let span = (hi - lo).max(0) as u128;
            let r = u128::from(u.arbitrary::<u64>().unwrap_or(0));
            lo + (r % (span + 1)) as i128
        }
        5 => lo,
        6 => hi,
        7 => lo - 1,
        8 => hi + 1,
        _ => *pick(
            u,
            &[
                0,
                -1,
                1,
                i128::from(i32::MIN),
                i128::from(i32::MAX),
                i128::from(u32::MAX),
                i128::from(i64::MIN),
                i128::from(i64::MAX),
                i128::from(u64::MAX),
            ],
        ),
    }
}

/// [`int_in`] saturated into `T`.
pub fn int<T: TryFrom<i128> + Copy>(
    u: &mut Unstructured<'_>,
    lo: i128,
    hi: i128,
    min: T,
    max: T,
) -> T {
    let v = int_in(u, lo, hi);
    T::try_from(v).unwrap_or(if v < 0 { min } else { max })
}

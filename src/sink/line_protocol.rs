//! A line-protocol builder that cannot emit malformed output.
//!
//! Escaping follows the InfluxDB line-protocol reference in every position:
//! measurement (`,` and space), tag keys, tag values and field keys (`,`,
//! `=` and space), string field values (`"` and `\`). A backslash is itself
//! escaped wherever escaping applies, so a value ending in `\` can never
//! swallow the separator after it. Line feed and carriage return have no
//! escape in any position: a line containing one is refused, as are an
//! empty measurement, a measurement starting with `#` (a comment line), empty
//! keys, non-finite floats and a line without fields. On refusal the buffer
//! is rolled back to where the line began, so one bad value can never leave
//! half a line — or an extra tag, field, point or line — behind.

/// Why a line could not be encoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// A line feed or carriage return in some position.
    #[error("{0} contains a line break, which line protocol cannot carry")]
    LineBreak(&'static str),
    /// Empty measurement, tag key or field key.
    #[error("{0} is empty")]
    Empty(&'static str),
    /// Measurement would start a comment line.
    #[error("measurement starts with '#', which would make the line a comment")]
    Comment,
    /// NaN or infinity in a float field.
    #[error("field {0:?} is not a finite number")]
    NonFinite(String),
    /// Tags after the first field.
    #[error("tag {0:?} added after a field; tags must come first")]
    TagAfterField(String),
    /// No field at all.
    #[error("line has no field")]
    NoField,
}

/// A field value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FieldValue<'a> {
    /// Float, written shortest-round-trip.
    F64(f64),
    /// Integer, written with the `i` suffix.
    I64(i64),
    /// Boolean.
    Bool(bool),
    /// String, quoted and escaped.
    Str(&'a str),
}

/// Which bytes need a backslash in a position. All are ASCII, so escaping
/// byte by byte keeps UTF-8 intact.
#[derive(Clone, Copy)]
enum Class {
    /// Measurement: `,` and space.
    Measurement,
    /// Tag keys, tag values, field keys: `,`, `=` and space.
    Key,
    /// String field values: `"`.
    Str,
}

/// Byte classes: 0 copy, 1 escape with a backslash, 2 line break (refused).
const fn table(specials: &[u8]) -> [u8; 256] {
    let mut t = [0u8; 256];
    t[b'\n' as usize] = 2;
    t[b'\r' as usize] = 2;
    t[b'\\' as usize] = 1;
    let mut i = 0;
    while i < specials.len() {
        t[specials[i] as usize] = 1;
        i += 1;
    }
    t
}

static MEASUREMENT_TABLE: [u8; 256] = table(b", ");
static KEY_TABLE: [u8; 256] = table(b",= ");
static STR_TABLE: [u8; 256] = table(b"\"");

/// True when no byte of `s` needs a backslash (or is a line break) under
/// `table`. A `const fn`, so constant names are checked at compile time.
const fn is_plain(s: &str, table: &[u8; 256]) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if table[b[i] as usize] != 0 {
            return false;
        }
        i += 1;
    }
    true
}

/// A tag or field key known to need no escaping: non-empty, without `,`,
/// `=`, space, backslash or line break. Checked by a `const fn`, so a key
/// built in a `const` item is checked when the crate compiles and is copied
/// into the line with no per-message scan.
///
/// ```
/// use wastewatch::sink::line_protocol::Key;
/// const FILL: Key = Key::new("fill_pct");
/// assert_eq!(FILL.as_str(), "fill_pct");
/// assert!(Key::try_new("fill pct").is_none());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key(&'static str);

impl Key {
    /// `Some` when `name` can be written as a key verbatim.
    pub const fn try_new(name: &'static str) -> Option<Key> {
        if !name.is_empty() && is_plain(name, &KEY_TABLE) {
            Some(Key(name))
        } else {
            None
        }
    }

    /// A key that needs no escaping. Use it in a `const` item: a name that
    /// would need escaping (or is empty) then fails the build instead of
    /// reaching a line.
    pub const fn new(name: &'static str) -> Key {
        // Evaluated at compile time in a `const` item: a failure is a build
        // error, never a runtime panic on external input.
        assert!(
            Key::try_new(name).is_some(),
            "key is empty or needs escaping in line protocol"
        );
        Key(name)
    }

    /// The key text.
    pub const fn as_str(self) -> &'static str {
        self.0
    }
}

/// A measurement name known to need no escaping: non-empty, not starting
/// with `#` (a comment line), without `,`, space, backslash or line break.
/// Like [`Key`], checked by a `const fn` so it costs nothing per message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Measurement(&'static str);

impl Measurement {
    /// `Some` when `name` can be written as a measurement verbatim.
    pub const fn try_new(name: &'static str) -> Option<Measurement> {
        if !name.is_empty() && name.as_bytes()[0] != b'#' && is_plain(name, &MEASUREMENT_TABLE) {
            Some(Measurement(name))
        } else {
            None
        }
    }

    /// A measurement that needs no escaping; use it in a `const` item, so a
    /// bad name fails the build.
    pub const fn new(name: &'static str) -> Measurement {
        // Compile-time only when used in a `const` item (see `Key::new`).
        assert!(
            Measurement::try_new(name).is_some(),
            "measurement is empty, starts with '#' or needs escaping in line protocol"
        );
        Measurement(name)
    }

    /// The measurement text.
    pub const fn as_str(self) -> &'static str {
        self.0
    }
}

impl Class {
    #[inline]
    fn table(self) -> &'static [u8; 256] {
        match self {
            Class::Measurement => &MEASUREMENT_TABLE,
            Class::Key => &KEY_TABLE,
            Class::Str => &STR_TABLE,
        }
    }
}

/// True when no byte of `bytes` is special under `t`. Eight table lookups
/// are OR-ed per step, so the common all-plain text costs one branch per
/// eight bytes instead of one per byte.
#[inline]
fn plain_bytes(bytes: &[u8], t: &[u8; 256]) -> bool {
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let any = t[usize::from(c[0])]
            | t[usize::from(c[1])]
            | t[usize::from(c[2])]
            | t[usize::from(c[3])]
            | t[usize::from(c[4])]
            | t[usize::from(c[5])]
            | t[usize::from(c[6])]
            | t[usize::from(c[7])];
        if any != 0 {
            return false;
        }
    }
    chunks.remainder().iter().all(|&b| t[usize::from(b)] == 0)
}

/// Appends `s` escaped for `class`; refuses line breaks (nothing can escape
/// them). On error the caller rolls the buffer back.
#[inline]
fn escape_into(
    buf: &mut String,
    s: &str,
    class: Class,
    what: &'static str,
) -> Result<(), LineError> {
    let t = class.table();
    let bytes = s.as_bytes();
    // Fast path: nothing to escape (ids, most text).
    if plain_bytes(bytes, t) {
        buf.push_str(s);
        return Ok(());
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        match t[usize::from(b)] {
            0 => {}
            1 => {
                // Cut points sit before an ASCII byte: char boundaries.
                buf.push_str(&s[start..i]);
                buf.push('\\');
                start = i;
            }
            _ => return Err(LineError::LineBreak(what)),
        }
    }
    buf.push_str(&s[start..]);
    Ok(())
}

/// Builds one line into a caller's buffer. Errors are deferred to
/// [`LineBuilder::finish`], which rolls the buffer back on failure.
pub struct LineBuilder<'a> {
    buf: &'a mut String,
    start: usize,
    fields: usize,
    err: Option<LineError>,
}

impl<'a> LineBuilder<'a> {
    /// Starts a line with `measurement`, escaped as needed.
    pub fn new(buf: &'a mut String, measurement: &str) -> Self {
        let start = buf.len();
        let mut b = LineBuilder {
            buf,
            start,
            fields: 0,
            err: None,
        };
        if measurement.is_empty() {
            b.err = Some(LineError::Empty("measurement"));
        } else if measurement.starts_with('#') {
            b.err = Some(LineError::Comment);
        } else if let Err(e) = escape_into(b.buf, measurement, Class::Measurement, "measurement") {
            b.err = Some(e);
        }
        b
    }

    /// Starts a line with a measurement checked at compile time: copied,
    /// not scanned.
    #[inline]
    pub fn with_measurement(buf: &'a mut String, measurement: Measurement) -> Self {
        let start = buf.len();
        buf.push_str(measurement.0);
        LineBuilder {
            buf,
            start,
            fields: 0,
            err: None,
        }
    }

    /// Adds a tag. An empty value omits the tag (InfluxDB has no empty tags).
    pub fn tag(self, key: &str, value: &str) -> Self {
        self.tag_impl::<false>(key, value)
    }

    /// Adds a tag whose key was checked at compile time ([`Key`]).
    #[inline]
    pub fn tag_key(self, key: Key, value: &str) -> Self {
        self.tag_impl::<true>(key.0, value)
    }

    /// Shared by [`Self::tag`] and [`Self::tag_key`]; `PLAIN` says the key
    /// is a [`Key`] (non-empty, nothing to escape).
    #[inline(always)]
    fn tag_impl<const PLAIN: bool>(mut self, key: &str, value: &str) -> Self {
        if self.err.is_some() || value.is_empty() {
            return self;
        }
        if self.fields > 0 {
            self.err = Some(LineError::TagAfterField(key.to_owned()));
            return self;
        }
        if !PLAIN && key.is_empty() {
            self.err = Some(LineError::Empty("tag key"));
            return self;
        }
        self.buf.push(',');
        let r = if PLAIN {
            self.buf.push_str(key);
            Ok(())
        } else {
            escape_into(self.buf, key, Class::Key, "tag key")
        };
        let r = r.and_then(|_| {
            self.buf.push('=');
            escape_into(self.buf, value, Class::Key, "tag value")
        });
        if let Err(e) = r {
            self.err = Some(e);
        }
        self
    }

    /// Adds a field.
    pub fn field(self, key: &str, value: FieldValue<'_>) -> Self {
        self.field_impl::<false>(key, value)
    }

    /// Adds a field whose key was checked at compile time ([`Key`]).
    #[inline]
    pub fn field_key(self, key: Key, value: FieldValue<'_>) -> Self {
        self.field_impl::<true>(key.0, value)
    }

    /// Shared by [`Self::field`] and [`Self::field_key`]; `PLAIN` as in
    /// [`Self::tag_impl`].
    #[inline(always)]
    fn field_impl<const PLAIN: bool>(mut self, key: &str, value: FieldValue<'_>) -> Self {
        if self.err.is_some() {
            return self;
        }
        if !PLAIN && key.is_empty() {
            self.err = Some(LineError::Empty("field key"));
            return self;
        }
        if let FieldValue::F64(v) = value {
            if !v.is_finite() {
                self.err = Some(LineError::NonFinite(key.to_owned()));
                return self;
            }
        }
        self.buf.push(if self.fields == 0 { ' ' } else { ',' });
        self.fields += 1;
        if PLAIN {
            self.buf.push_str(key);
        } else if let Err(e) = escape_into(self.buf, key, Class::Key, "field key") {
            self.err = Some(e);
            return self;
        }
        self.buf.push('=');
        let r = match value {
            FieldValue::F64(v) => write_f64(self.buf, v),
            FieldValue::I64(v) => {
                self.buf.push_str(itoa::Buffer::new().format(v));
                self.buf.push('i');
                Ok(())
            }
            FieldValue::Bool(v) => {
                // Two constant-length copies, which compile to plain stores.
                if v {
                    self.buf.push_str("true");
                } else {
                    self.buf.push_str("false");
                }
                Ok(())
            }
            FieldValue::Str(s) => {
                self.buf.push('"');
                let r = escape_into(self.buf, s, Class::Str, "string field value");
                self.buf.push('"');
                r
            }
        };
        if let Err(e) = r {
            self.err = Some(e);
        }
        self
    }

    /// Adds a float field only when `value` is `Some`.
    pub fn field_opt_f64(self, key: &str, value: Option<f64>) -> Self {
        match value {
            Some(v) => self.field(key, FieldValue::F64(v)),
            None => self,
        }
    }

    /// Adds a float field with a compile-time key only when `value` is `Some`.
    #[inline]
    pub fn field_key_opt_f64(self, key: Key, value: Option<f64>) -> Self {
        match value {
            Some(v) => self.field_key(key, FieldValue::F64(v)),
            None => self,
        }
    }

    /// Ends the line with a timestamp (precision chosen by the writer) and a
    /// line feed. On error the buffer is restored and nothing is emitted.
    pub fn finish(self, timestamp: i64) -> Result<(), LineError> {
        let err = match self.err {
            Some(e) => Some(e),
            None if self.fields == 0 => Some(LineError::NoField),
            None => None,
        };
        if let Some(e) = err {
            self.buf.truncate(self.start);
            return Err(e);
        }
        self.buf.push(' ');
        self.buf.push_str(itoa::Buffer::new().format(timestamp));
        self.buf.push('\n');
        Ok(())
    }
}

fn write_f64(buf: &mut String, v: f64) -> Result<(), LineError> {
    // Shortest exact form. Fast path for values with at most six decimals
    // (most sensor readings): if m = round(v * 1e6) satisfies m / 1e6 == v
    // in f64, the decimal m·10⁻⁶ parses back to exactly v, because parsing
    // and IEEE division both round the same exact quotient to nearest. Other
    // values go through Ryu. `v` is finite here (checked in `field`).
    let x = v * 1e6;
    // Below 9e15 (< 2^53) the rounding is done in integers (no libm call).
    // At or above 2^52 every f64 is an integer already, so `|x| < 9e15` is
    // the same test as `|round(x)| < 9e15`.
    if x.abs() < 9.0e15 {
        let m = round_half_away(x);
        if m as f64 / 1e6 == v {
            write_micro(
                buf,
                m.unsigned_abs(),
                m < 0 || (m == 0 && v.is_sign_negative()),
            );
            return Ok(());
        }
    }
    // Ryu prints the shortest string that parses back to the same f64
    // ("1.0", "1e21", "1.5e-7"; scientific notation is valid line protocol).
    buf.push_str(ryu::Buffer::new().format_finite(v));
    Ok(())
}

/// `x.round() as i64` for |x| < 9e15, in integer arithmetic: the truncation
/// and the fraction `x - t` are exact there.
#[inline]
fn round_half_away(x: f64) -> i64 {
    let t = x as i64;
    let f = x - t as f64;
    if f >= 0.5 {
        t + 1
    } else if f <= -0.5 {
        t - 1
    } else {
        t
    }
}

/// Writes `u`·10⁻⁶ as `[-]int.frac`, the fraction without trailing zeros
/// (at least one digit): 82500000 → `82.5`, 3000000 → `3.0`, 1 → `0.000001`.
#[inline]
fn write_micro(buf: &mut String, u: u64, negative: bool) {
    let (int, frac) = (u / 1_000_000, (u % 1_000_000) as u32);
    if negative {
        buf.push('-');
    }
    buf.push_str(itoa::Buffer::new().format(int));
    if frac == 0 {
        buf.push_str(".0");
        return;
    }
    // Strip the trailing zeros (at most five, as frac ≠ 0) in three steps,
    // then print 10^width + f: a "1" and the fraction digits, zero-padded.
    let (mut f, mut width) = (frac, 6usize);
    if f % 1000 == 0 {
        f /= 1000;
        width -= 3;
    }
    if f % 100 == 0 {
        f /= 100;
        width -= 2;
    }
    if f % 10 == 0 {
        f /= 10;
        width -= 1;
    }
    const POW10: [u32; 7] = [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000];
    let mut fb = itoa::Buffer::new();
    let digits = fb.format(POW10[width] + f);
    buf.push('.');
    buf.push_str(digits.get(1..).unwrap_or("0"));
}

#[cfg(test)]
pub(crate) mod tests;

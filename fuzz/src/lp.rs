//! A reader of one line of InfluxDB line protocol, written from the
//! line-protocol reference rather than from our writer, so that it can
//! catch the writer being wrong: what InfluxDB would store for each tag and
//! field of a line.
//!
//! `measurement[,tag=value]* field=value[,field=value]* timestamp\n`
//!
//! - measurement: `\,` and `\ ` are escapes; any other backslash is literal;
//! - tag keys, tag values, field keys: `\,`, `\=` and `\ ` are escapes;
//! - string field values: `\"` and `\\` are escapes, any other backslash is
//!   literal (so a value ending in an unescaped `\` swallows the quote);
//! - other field values: `123i` integer, `t|true|f|false…` boolean, else a
//!   float.

/// A field value as InfluxDB reads it.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `"..."`, unescaped.
    Str(String),
    /// `123i`.
    Int(i64),
    /// A float.
    Float(f64),
    /// A boolean.
    Bool(bool),
}

/// One parsed point.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    /// Measurement name.
    pub measurement: String,
    /// Tags in line order.
    pub tags: Vec<(String, String)>,
    /// Fields in line order.
    pub fields: Vec<(String, Value)>,
    /// Timestamp.
    pub timestamp: i64,
}

impl Point {
    /// The value of tag `k`.
    pub fn tag(&self, k: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }

    /// The value of field `k`.
    pub fn field(&self, k: &str) -> Option<&Value> {
        self.fields.iter().find(|(key, _)| key == k).map(|(_, v)| v)
    }
}

struct Reader<'a> {
    b: &'a [u8],
    i: usize,
}

impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    /// Reads up to (not including) the first unescaped byte of `stops`;
    /// `escapable` are the bytes a backslash escapes.
    fn token(&mut self, stops: &[u8], escapable: &[u8]) -> Result<String, String> {
        let mut out = Vec::new();
        while let Some(c) = self.peek() {
            if c == b'\\' {
                match self.b.get(self.i + 1) {
                    Some(&n) if escapable.contains(&n) => {
                        out.push(n);
                        self.i += 2;
                        continue;
                    }
                    _ => {
                        out.push(c);
                        self.i += 1;
                        continue;
                    }
                }
            }
            if stops.contains(&c) {
                break;
            }
            out.push(c);
            self.i += 1;
        }
        String::from_utf8(out).map_err(|e| format!("token is not UTF-8: {e}"))
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(format!(
                "expected {:?} at byte {}, found {:?}",
                c as char,
                self.i,
                self.peek().map(char::from)
            ))
        }
    }

    fn string_value(&mut self) -> Result<String, String> {
        self.expect(b'"')?;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => return Err("unterminated string field".into()),
                Some(b'"') => {
                    self.i += 1;
                    break;
                }
                Some(b'\\') => match self.b.get(self.i + 1) {
                    Some(&n @ (b'"' | b'\\')) => {
                        out.push(n);
                        self.i += 2;
                    }
                    _ => {
                        out.push(b'\\');
                        self.i += 1;
                    }
                },
                Some(c) => {
                    out.push(c);
                    self.i += 1;
                }
            }
        }
        String::from_utf8(out).map_err(|e| format!("string field is not UTF-8: {e}"))
    }
}

/// Parses `text`, which must be exactly one line ending in `\n`.
pub fn parse(text: &str) -> Result<Point, String> {
    let body = text
        .strip_suffix('\n')
        .ok_or("the line does not end in a line feed")?;
    if body.contains('\n') || body.contains('\r') {
        return Err("a line break inside the line".into());
    }
    let mut r = Reader {
        b: body.as_bytes(),
        i: 0,
    };
    let measurement = r.token(b", ", b", ")?;
    if measurement.is_empty() || measurement.starts_with('#') {
        return Err(format!("bad measurement {measurement:?}"));
    }
    let mut tags = Vec::new();
    while r.peek() == Some(b',') {
        r.i += 1;
        let k = r.token(b"=", b",= ")?;
        r.expect(b'=')?;
        let v = r.token(b", ", b",= ")?;
        if k.is_empty() || v.is_empty() {
            return Err(format!("empty tag key or value: {k:?}={v:?}"));
        }
        tags.push((k, v));
    }
    r.expect(b' ')?;
    let mut fields = Vec::new();
    loop {
        let k = r.token(b"=", b",= ")?;
        r.expect(b'=')?;
        if k.is_empty() {
            return Err("empty field key".into());
        }
        let v = if r.peek() == Some(b'"') {
            Value::Str(r.string_value()?)
        } else {
            let raw = r.token(b", ", b"")?;
            scalar(&raw)?
        };
        fields.push((k, v));
        match r.peek() {
            Some(b',') => r.i += 1,
            Some(b' ') => break,
            other => {
                return Err(format!(
                    "after a field: expected ',' or ' ', found {:?}",
                    other.map(char::from)
                ))
            }
        }
    }
    r.expect(b' ')?;
    let ts = r.token(b"", b"")?;
    let timestamp = ts
        .parse::<i64>()
        .map_err(|e| format!("timestamp {ts:?}: {e}"))?;
    Ok(Point {
        measurement,
        tags,
        fields,
        timestamp,
    })
}

fn scalar(raw: &str) -> Result<Value, String> {
    if let Some(i) = raw.strip_suffix('i') {
        return i
            .parse::<i64>()
            .map(Value::Int)
            .map_err(|e| format!("integer {raw:?}: {e}"));
    }
    match raw {
        "t" | "T" | "true" | "True" | "TRUE" => return Ok(Value::Bool(true)),
        "f" | "F" | "false" | "False" | "FALSE" => return Ok(Value::Bool(false)),
        _ => {}
    }
    match raw.parse::<f64>() {
        Ok(v) if v.is_finite() && !raw.contains(['n', 'N', 'a', 'A']) => Ok(Value::Float(v)),
        _ => Err(format!("field value {raw:?} is not a number or boolean")),
    }
}

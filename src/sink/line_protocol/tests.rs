//! Tests of the builder against an independent line-protocol parser.

use super::*;
use proptest::prelude::*;

/// A parsed line, as the oracle sees it.
#[derive(Debug, PartialEq)]
pub(crate) struct Parsed {
    pub measurement: String,
    pub tags: Vec<(String, String)>,
    pub fields: Vec<(String, OField)>,
    pub timestamp: i64,
}

/// A parsed field value.
#[derive(Debug, PartialEq)]
pub(crate) enum OField {
    F(f64),
    I(i64),
    B(bool),
    S(String),
}

/// Independent parser written from the InfluxDB line-protocol reference:
/// in unquoted positions a backslash makes the next character literal; the
/// separators are `,` (between measurement/tags and between fields), `=`
/// (key/value) and space (between sections); string values are quoted, with
/// `\"` and `\\` escapes. Returns one `Parsed` per non-empty line.
pub(crate) fn oracle_parse(text: &str) -> Result<Vec<Parsed>, String> {
    let mut out = Vec::new();
    for line in text.split('\n') {
        if line.is_empty() {
            continue;
        }
        out.push(parse_line(line)?);
    }
    Ok(out)
}

fn read_token(chars: &[char], i: &mut usize, stops: &[char]) -> String {
    let mut s = String::new();
    while *i < chars.len() {
        let c = chars[*i];
        if c == '\\' && *i + 1 < chars.len() {
            s.push(chars[*i + 1]);
            *i += 2;
            continue;
        }
        if stops.contains(&c) {
            break;
        }
        s.push(c);
        *i += 1;
    }
    s
}

fn parse_line(line: &str) -> Result<Parsed, String> {
    let chars: Vec<char> = line.chars().collect();
    let mut i = 0;
    let measurement = read_token(&chars, &mut i, &[',', ' ']);
    let mut tags = Vec::new();
    while i < chars.len() && chars[i] == ',' {
        i += 1;
        let k = read_token(&chars, &mut i, &['=', ',', ' ']);
        if chars.get(i) != Some(&'=') {
            return Err(format!("tag without '=' in {line:?}"));
        }
        i += 1;
        let v = read_token(&chars, &mut i, &[',', ' ']);
        tags.push((k, v));
    }
    if chars.get(i) != Some(&' ') {
        return Err(format!("no field section in {line:?}"));
    }
    i += 1;
    let mut fields = Vec::new();
    loop {
        let k = read_token(&chars, &mut i, &['=', ',', ' ']);
        if chars.get(i) != Some(&'=') {
            return Err(format!("field without '=' in {line:?}"));
        }
        i += 1;
        let v = if chars.get(i) == Some(&'"') {
            i += 1;
            let mut s = String::new();
            loop {
                match chars.get(i) {
                    None => return Err(format!("unterminated string in {line:?}")),
                    Some('\\') if matches!(chars.get(i + 1), Some('"') | Some('\\')) => {
                        s.push(chars[i + 1]);
                        i += 2;
                    }
                    Some('"') => {
                        i += 1;
                        break;
                    }
                    Some(&c) => {
                        s.push(c);
                        i += 1;
                    }
                }
            }
            OField::S(s)
        } else {
            let raw = read_token(&chars, &mut i, &[',', ' ']);
            if let Some(n) = raw.strip_suffix('i') {
                OField::I(n.parse().map_err(|e| format!("bad int {raw:?}: {e}"))?)
            } else if raw == "true" {
                OField::B(true)
            } else if raw == "false" {
                OField::B(false)
            } else {
                OField::F(raw.parse().map_err(|e| format!("bad float {raw:?}: {e}"))?)
            }
        };
        fields.push((k, v));
        match chars.get(i) {
            Some(',') => i += 1,
            Some(' ') => {
                i += 1;
                break;
            }
            _ => return Err(format!("no timestamp in {line:?}")),
        }
    }
    let ts: String = chars[i..].iter().collect();
    let timestamp = ts
        .parse()
        .map_err(|e| format!("bad timestamp {ts:?}: {e}"))?;
    Ok(Parsed {
        measurement,
        tags,
        fields,
        timestamp,
    })
}

#[test]
fn a_plain_line_is_written_as_the_reference_shows() {
    let mut buf = String::new();
    LineBuilder::new(&mut buf, "bin_reading")
        .tag("site", "s1")
        .field("fill_pct", FieldValue::F64(42.5))
        .field("seq", FieldValue::I64(7))
        .field("fire", FieldValue::Bool(false))
        .field("note", FieldValue::Str("ok"))
        .finish(1_700_000_000_000)
        .unwrap();
    assert_eq!(
        buf,
        "bin_reading,site=s1 fill_pct=42.5,seq=7i,fire=false,note=\"ok\" 1700000000000\n"
    );
}

#[test]
fn special_characters_are_escaped_in_every_position() {
    let mut buf = String::new();
    LineBuilder::new(&mut buf, "m e,a")
        .tag("k=e y", "v,a= l\\")
        .field("f,=\\ k", FieldValue::Str("say \"hi\" \\"))
        .finish(1)
        .unwrap();
    assert_eq!(
        buf,
        "m\\ e\\,a,k\\=e\\ y=v\\,a\\=\\ l\\\\ f\\,\\=\\\\\\ k=\"say \\\"hi\\\" \\\\\" 1\n"
    );
    let p = oracle_parse(&buf).unwrap();
    assert_eq!(p[0].tags, vec![("k=e y".to_owned(), "v,a= l\\".to_owned())]);
    assert_eq!(
        p[0].fields,
        vec![("f,=\\ k".to_owned(), OField::S("say \"hi\" \\".to_owned()))]
    );
}

#[test]
fn refused_lines_leave_the_buffer_untouched() {
    type Build = Box<dyn Fn(&mut String) -> Result<(), LineError>>;
    let cases: Vec<(Build, LineError)> = vec![
        (
            Box::new(|b| {
                LineBuilder::new(b, "")
                    .field("f", FieldValue::I64(1))
                    .finish(0)
            }),
            LineError::Empty("measurement"),
        ),
        (
            Box::new(|b| {
                LineBuilder::new(b, "#m")
                    .field("f", FieldValue::I64(1))
                    .finish(0)
            }),
            LineError::Comment,
        ),
        (
            Box::new(|b| {
                LineBuilder::new(b, "m\n")
                    .field("f", FieldValue::I64(1))
                    .finish(0)
            }),
            LineError::LineBreak("measurement"),
        ),
        (
            Box::new(|b| {
                LineBuilder::new(b, "m")
                    .tag("t", "a\rb")
                    .field("f", FieldValue::I64(1))
                    .finish(0)
            }),
            LineError::LineBreak("tag value"),
        ),
        (
            Box::new(|b| {
                LineBuilder::new(b, "m")
                    .tag("", "v")
                    .field("f", FieldValue::I64(1))
                    .finish(0)
            }),
            LineError::Empty("tag key"),
        ),
        (
            Box::new(|b| {
                LineBuilder::new(b, "m")
                    .field("f", FieldValue::Str("x\ny"))
                    .finish(0)
            }),
            LineError::LineBreak("string field value"),
        ),
        (
            Box::new(|b| {
                LineBuilder::new(b, "m")
                    .field("f", FieldValue::F64(f64::NAN))
                    .finish(0)
            }),
            LineError::NonFinite("f".into()),
        ),
        (
            Box::new(|b| {
                LineBuilder::new(b, "m")
                    .field("f", FieldValue::F64(f64::INFINITY))
                    .finish(0)
            }),
            LineError::NonFinite("f".into()),
        ),
        (
            Box::new(|b| {
                LineBuilder::new(b, "m")
                    .field("", FieldValue::I64(1))
                    .finish(0)
            }),
            LineError::Empty("field key"),
        ),
        (
            Box::new(|b| {
                LineBuilder::new(b, "m")
                    .field("f", FieldValue::I64(1))
                    .tag("t", "v")
                    .finish(0)
            }),
            LineError::TagAfterField("t".into()),
        ),
        (
            Box::new(|b| LineBuilder::new(b, "m").tag("t", "v").finish(0)),
            LineError::NoField,
        ),
    ];
    for (build, want) in cases {
        let mut buf = String::from("prev 1\n");
        assert_eq!(build(&mut buf), Err(want));
        assert_eq!(buf, "prev 1\n");
    }
}

#[test]
fn an_empty_tag_value_omits_the_tag() {
    let mut buf = String::new();
    LineBuilder::new(&mut buf, "m")
        .tag("t", "")
        .field("f", FieldValue::Bool(true))
        .finish(5)
        .unwrap();
    assert_eq!(buf, "m f=true 5\n");
}

fn any_text() -> impl Strategy<Value = String> {
    // Everything but line breaks, weighted toward the characters that matter.
    prop::collection::vec(
        prop_oneof![
            4 => prop::sample::select(vec![',', '=', ' ', '"', '\\', '#', '\t', 'a', 'Z', '0', '豫', '·', 'é', '\u{0}']),
            1 => any::<char>().prop_filter("no line breaks", |c| *c != '\n' && *c != '\r'),
        ],
        0..24,
    )
    .prop_map(|v| v.into_iter().collect())
}

fn non_empty_text() -> impl Strategy<Value = String> {
    any_text().prop_filter("non-empty", |s| !s.is_empty())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_strings_round_trip_exactly_in_every_position(
        measurement in non_empty_text().prop_filter("no comment", |s| !s.starts_with('#')),
        tag_key in non_empty_text(),
        tag_value in non_empty_text(),
        field_key in non_empty_text(),
        str_value in any_text(),
        f in any::<f64>().prop_filter("finite", |f| f.is_finite()),
        i in any::<i64>(),
        b in any::<bool>(),
        ts in any::<i64>(),
    ) {
        let mut buf = String::new();
        LineBuilder::new(&mut buf, &measurement)
            .tag(&tag_key, &tag_value)
            .field(&field_key, FieldValue::Str(&str_value))
            .field("f", FieldValue::F64(f))
            .field("i", FieldValue::I64(i))
            .field("b", FieldValue::Bool(b))
            .finish(ts)
            .unwrap();
        prop_assert_eq!(buf.matches('\n').count(), 1);
        let parsed = oracle_parse(&buf).map_err(TestCaseError::fail)?;
        prop_assert_eq!(parsed.len(), 1);
        let p = &parsed[0];
        prop_assert_eq!(&p.measurement, &measurement);
        prop_assert_eq!(&p.tags, &vec![(tag_key.clone(), tag_value.clone())]);
        prop_assert_eq!(
            &p.fields,
            &vec![
                (field_key.clone(), OField::S(str_value.clone())),
                ("f".to_owned(), OField::F(f)),
                ("i".to_owned(), OField::I(i)),
                ("b".to_owned(), OField::B(b)),
            ]
        );
        prop_assert_eq!(p.timestamp, ts);
    }

    #[test]
    fn strings_with_line_breaks_are_refused_and_leave_nothing_behind(
        pre in any_text(), post in any_text(), brk in prop::sample::select(vec!["\n", "\r", "\r\n"]), pos in 0usize..4,
    ) {
        let bad = format!("{pre}{brk}{post}");
        let mut buf = String::from("keep 1\n");
        let r = match pos {
            0 => LineBuilder::new(&mut buf, &bad).field("f", FieldValue::I64(1)).finish(0),
            1 => LineBuilder::new(&mut buf, "m").tag("t", &bad).field("f", FieldValue::I64(1)).finish(0),
            2 => LineBuilder::new(&mut buf, "m").field(&bad, FieldValue::I64(1)).finish(0),
            _ => LineBuilder::new(&mut buf, "m").field("f", FieldValue::Str(&bad)).finish(0),
        };
        prop_assert!(r.is_err());
        prop_assert_eq!(buf, "keep 1\n");
    }
}

#[test]
fn floats_print_short_and_exact() {
    let cases = [
        (0.0, "0.0"),
        (-0.0, "-0.0"),
        (1.0, "1.0"),
        (42.5, "42.5"),
        (-3.5, "-3.5"),
        (3.65, "3.65"),
        (0.000001, "0.000001"),
        (-0.05, "-0.05"),
        (34.700013, "34.700013"),
        (30010.0, "30010.0"),
        (1e21, "1e21"),
        (0.1 + 0.2, "0.30000000000000004"),
        (1.5e-7, "1.5e-7"),
    ];
    for (v, want) in cases {
        let mut buf = String::new();
        write_f64(&mut buf, v).unwrap();
        assert_eq!(buf, want, "{v:?}");
        assert_eq!(
            buf.parse::<f64>().unwrap().to_bits(),
            v.to_bits(),
            "{v:?} round-trips"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 20000, ..ProptestConfig::default() })]

    #[test]
    fn every_finite_float_round_trips_bit_exactly(
        v in prop_oneof![
            any::<f64>().prop_filter("finite", |f| f.is_finite()),
            (-1_000_000_000i64..1_000_000_000, 0u32..8).prop_map(|(m, k)| m as f64 / 10f64.powi(k as i32)),
        ]
    ) {
        let mut buf = String::new();
        write_f64(&mut buf, v).unwrap();
        prop_assert_eq!(buf.parse::<f64>().unwrap().to_bits(), v.to_bits(), "{} printed as {}", v, buf);
    }
}

#[test]
fn the_key_checker_accepts_only_names_that_need_no_escaping() {
    let cases: [(&'static str, bool); 12] = [
        ("fill_pct", true),
        ("a.b-c:d", true),
        ("#hash", true),
        ("豫A", true),
        ("\"quoted\"", true),
        ("", false),
        ("a b", false),
        ("a,b", false),
        ("a=b", false),
        ("a\\b", false),
        ("a\nb", false),
        ("a\rb", false),
    ];
    for (name, ok) in cases {
        assert_eq!(Key::try_new(name).is_some(), ok, "{name:?}");
        if ok {
            assert_eq!(Key::new(name).as_str(), name);
        }
    }
}

#[test]
fn the_measurement_checker_refuses_comments_and_names_needing_escapes() {
    let cases: [(&'static str, bool); 9] = [
        ("bin_reading", true),
        ("m=x", true),
        ("m#", true),
        ("", false),
        ("#m", false),
        ("m x", false),
        ("m,x", false),
        ("m\\", false),
        ("m\n", false),
    ];
    for (name, ok) in cases {
        assert_eq!(Measurement::try_new(name).is_some(), ok, "{name:?}");
        if ok {
            assert_eq!(Measurement::new(name).as_str(), name);
        }
    }
}

#[test]
#[should_panic(expected = "needs escaping")]
fn a_key_needing_escapes_is_refused_when_built() {
    // In a `const` item this is a build error; at run time, a panic.
    let _ = Key::new("a b");
}

#[test]
#[should_panic(expected = "starts with '#'")]
fn a_comment_measurement_is_refused_when_built() {
    let _ = Measurement::new("#m");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn checked_keys_write_exactly_what_escaped_keys_write(
        measurement in non_empty_text(),
        key in non_empty_text(),
        tag_value in any_text(),
        str_value in any_text(),
        f in any::<f64>(),
        i in any::<i64>(),
    ) {
        let want_key = Key::try_new(Box::leak(key.clone().into_boxed_str()));
        // The checker agrees with the escaper: plain iff escaping is a no-op.
        let mut escaped = String::new();
        let plain = escape_into(&mut escaped, &key, Class::Key, "k").is_ok() && escaped == key;
        prop_assert_eq!(want_key.is_some(), plain);
        let want_m = Measurement::try_new(Box::leak(measurement.clone().into_boxed_str()));
        let mut escaped = String::new();
        let plain_m = !measurement.starts_with('#')
            && escape_into(&mut escaped, &measurement, Class::Measurement, "m").is_ok()
            && escaped == measurement;
        prop_assert_eq!(want_m.is_some(), plain_m);
        if let (Some(k), Some(m)) = (want_key, want_m) {
            let (mut a, mut b) = (String::from("x 1\n"), String::from("x 1\n"));
            let ra = LineBuilder::new(&mut a, &measurement)
                .tag(&key, &tag_value)
                .field(&key, FieldValue::Str(&str_value))
                .field(&key, FieldValue::F64(f))
                .field(&key, FieldValue::I64(i))
                .field_opt_f64(&key, Some(f))
                .finish(i);
            let rb = LineBuilder::with_measurement(&mut b, m)
                .tag_key(k, &tag_value)
                .field_key(k, FieldValue::Str(&str_value))
                .field_key(k, FieldValue::F64(f))
                .field_key(k, FieldValue::I64(i))
                .field_key_opt_f64(k, Some(f))
                .finish(i);
            prop_assert_eq!(ra, rb);
            prop_assert_eq!(a, b);
        }
    }
}

#[test]
fn micro_units_print_without_trailing_zeros() {
    let cases = [
        (0u64, false, "0.0"),
        (0, true, "-0.0"),
        (1, false, "0.000001"),
        (82_500_000, false, "82.5"),
        (3_000_000, true, "-3.0"),
        (10_000_010, false, "10.00001"),
        (8_999_999_999_999_999, false, "8999999999.999999"),
        (8_999_999_999_000_000, true, "-8999999999.0"),
        (10, false, "0.00001"),
        (200, false, "0.0002"),
        (1_000, false, "0.001"),
        (110_000, false, "0.11"),
        (123_456_789, false, "123.456789"),
    ];
    for (u, neg, want) in cases {
        let mut buf = String::new();
        write_micro(&mut buf, u, neg);
        assert_eq!(buf, want, "{u} {neg}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 20000, ..ProptestConfig::default() })]

    #[test]
    fn integer_rounding_matches_f64_round_below_9e15(
        x in prop_oneof![
            (-9.0e15f64..9.0e15),
            (-1.0e7f64..1.0e7),
            (-1_000_000i64..1_000_000).prop_map(|i| i as f64 + 0.5),
            (-1_000_000i64..1_000_000).prop_map(|i| i as f64 - 0.5),
            Just(0.499_999_999_999_999_94),
            Just(-0.499_999_999_999_999_94),
            Just(4_503_599_627_370_495.5),
            Just(-0.0),
        ]
    ) {
        prop_assume!(x.abs() < 9.0e15);
        prop_assert_eq!(round_half_away(x), x.round() as i64, "{}", x);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 20000, ..ProptestConfig::default() })]

    #[test]
    fn micro_units_print_as_the_plain_decimal(
        u in prop_oneof![0u64..9_000_000_000_000_000, 0u64..10_000_000, (0u64..9_000_000_000).prop_map(|i| i * 1_000_000)],
        neg in any::<bool>(),
    ) {
        let frac = format!("{:06}", u % 1_000_000);
        let frac = frac.trim_end_matches('0');
        let want = format!(
            "{}{}.{}",
            if neg { "-" } else { "" },
            u / 1_000_000,
            if frac.is_empty() { "0" } else { frac }
        );
        let mut buf = String::new();
        write_micro(&mut buf, u, neg);
        prop_assert_eq!(buf, want);
    }
}

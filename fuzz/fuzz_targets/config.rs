//! Configuration loading (`wastewatch::config::load`, what `wastewatch
//! check-config` and `run` call: built-in defaults < TOML file < environment
//! `WASTEWATCH__SECTION__KEY`, validated into `Settings` or every error at
//! once).
//!
//! Two input modes, chosen by the first byte:
//! - raw (even): the rest is the TOML text, then after a NUL byte one
//!   `SECTION__KEY=value` environment variable per line (`WASTEWATCH__` is
//!   prepended); seeds in `fuzz/seeds/config/` and the shipped example
//!   (`fuzz/seed-corpus.sh`), dictionary `fuzz/dicts/config.toml.dict`;
//! - structured (odd): keys of the shipped `config/wastewatch.example.toml`
//!   and of the `[rules]` and `[alerts]` defaults, set by the input to
//!   boundary or ill-typed values (in an otherwise empty file, or now and
//!   then in the whole example, where keys are also removed), unknown keys,
//!   webhooks, rule overrides, environment overrides — written as TOML.
//!   Secret values (passwords, token, webhook URLs and signing secrets) carry
//!   a marker.
//!
//! Properties, for every input:
//! - no panic;
//! - the result is `Ok(settings)` or a non-empty list of non-empty errors;
//! - every error is located: it names a configuration key (or the section
//!   it is in) or the file;
//! - accepted settings satisfy every documented bound, re-checked here with
//!   checked arithmetic (ports, keep-alive, backoff order, the log's
//!   segment/commit sizes against its bound, timeouts, thread count);
//! - no secret value appears in any error or in the settings' `Debug`.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use toml::{Table, Value};
use wastewatch::config::{load, Settings};
use wastewatch_fuzz::gen::{pick, text};
use wastewatch_fuzz::zone::EXAMPLE_TOML;

/// Marks every secret the structured mode writes.
const SECRET: &str = "SECRET-7f3a";

/// Sections of the file: an error naming one of them is located (with
/// every section of the shipped example, so a new section needs no edit).
const SECTIONS: &[&str] = &[
    "mqtt", "decode", "log", "tsdb", "http", "shutdown", "rules", "alerts", "notify", "runtime",
];

/// The file the TOML text is written to, one per process.
fn file() -> &'static PathBuf {
    static F: OnceLock<PathBuf> = OnceLock::new();
    F.get_or_init(|| {
        let dir = if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        dir.join(format!(
            "wastewatch-fuzz-config-{}.toml",
            std::process::id()
        ))
    })
}

/// The base document of the structured mode and its leaf keys.
fn base() -> &'static (Table, Vec<Vec<String>>) {
    static B: OnceLock<(Table, Vec<Vec<String>>)> = OnceLock::new();
    B.get_or_init(|| {
        let mut t: Table = EXAMPLE_TOML
            .parse()
            .unwrap_or_else(|e| panic!("the shipped example config is not TOML: {e}"));
        if let Ok(v) = Value::try_from(wastewatch::rules::RuleConfig::default()) {
            t.insert("rules".into(), v);
        }
        if let Ok(v) = Value::try_from(wastewatch::alert::AlertPolicy::default()) {
            t.insert("alerts".into(), v);
        }
        let mut leaves = Vec::new();
        collect(&t, &mut Vec::new(), &mut leaves);
        (t, leaves)
    })
}

fn collect(t: &Table, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    for (k, v) in t {
        path.push(k.clone());
        match v {
            Value::Table(sub) if !sub.is_empty() => collect(sub, path, out),
            _ => out.push(path.clone()),
        }
        path.pop();
    }
}

/// The table at `path` (created as needed; a non-table in the way is
/// replaced).
fn table_at<'a>(t: &'a mut Table, path: &[String]) -> &'a mut Table {
    let mut cur = t;
    for k in path {
        let v = cur
            .entry(k.clone())
            .or_insert_with(|| Value::Table(Table::new()));
        if !v.is_table() {
            *v = Value::Table(Table::new());
        }
        cur = v.as_table_mut().expect("just made a table");
    }
    cur
}

/// The value at `path` in `t`.
fn get<'a>(t: &'a Table, path: &[String]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    rest.iter().try_fold(t.get(first)?, |v, k| v.get(k))
}

/// A value for a key whose current value is `like`: the same type at its
/// edges most of the time, another type sometimes.
fn value(u: &mut Unstructured<'_>, like: Option<&Value>) -> Value {
    const INTS: &[i64] = &[
        0,
        1,
        -1,
        4,
        5,
        99,
        100,
        1000,
        3600,
        3601,
        60_000,
        60_001,
        65_535,
        65_536,
        (1 << 20) - 1,
        1 << 20,
        64 << 10,
        (64 << 10) - 1,
        1 << 30,
        (1 << 30) + 1,
        2_147_483_648,
        4_294_967_295,
        4_294_967_296,
        i64::MAX,
        i64::MIN,
    ];
    const FLOATS: &[f64] = &[
        0.0,
        -0.0,
        -1.0,
        0.5,
        20.0,
        1e308,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
    ];
    const STRS: &[&str] = &[
        "",
        "x",
        "restamp",
        "reject",
        "influxdb_v1",
        "influxdb_v2",
        "file",
        "none",
        "json",
        "dingtalk",
        "wecom",
        "info",
        "warn",
        "major",
        "critical",
        "http://127.0.0.1:8086",
        "https://influx.example.com:8086/",
        "http://[::1]:9093",
        "ftp://127.0.0.1/",
        "http://",
        "not a url",
        "127.0.0.1:9464",
        "[::1]:0",
        "localhost:80",
        "data",
        "zone",
        "/nonexistent/ca.pem",
        "wastewatch/v1/#",
        "$share/g/wastewatch/v1/#",
        "\u{0}",
        "é",
    ];
    let same_type = u.ratio(3u8, 4).unwrap_or(true);
    let kind = match (same_type, like) {
        (true, Some(Value::Integer(_))) => 0,
        (true, Some(Value::Float(_))) => 1,
        (true, Some(Value::String(_))) => 2,
        (true, Some(Value::Boolean(_))) => 3,
        (true, Some(Value::Array(_))) => 4,
        _ => u.int_in_range(0u8..=6).unwrap_or(0),
    };
    match kind {
        0 => Value::Integer(if u.arbitrary().unwrap_or(false) {
            *pick(u, INTS)
        } else {
            u.arbitrary().unwrap_or(0)
        }),
        1 => Value::Float(if u.arbitrary().unwrap_or(false) {
            *pick(u, FLOATS)
        } else {
            f64::from(u.arbitrary::<i32>().unwrap_or(0)) / 8.0
        }),
        2 => {
            let mut s = if u.ratio(3u8, 4).unwrap_or(true) {
                (*pick(u, STRS)).to_owned()
            } else {
                text(u)
            };
            if s.contains("SECRET") {
                s.clear();
            }
            Value::String(s)
        }
        3 => Value::Boolean(u.arbitrary().unwrap_or(false)),
        4 => {
            let n = u.int_in_range(0u8..=3).unwrap_or(0);
            Value::Array(
                (0..n)
                    .map(|_| value(u, Some(&Value::String(String::new()))))
                    .collect(),
            )
        }
        5 => Value::Table(Table::new()),
        _ => Value::Datetime("2026-01-01T00:00:00Z".parse().expect("a TOML datetime")),
    }
}

fn webhook(u: &mut Unstructured<'_>) -> Value {
    let mut w = Table::new();
    let name = (*pick(u, &["oncall", "alertmanager", "", "oncall", "ops-wecom"])).to_owned();
    w.insert("name".into(), Value::String(name));
    let url = *pick(
        u,
        &[
            "https://oapi.dingtalk.com/robot/send?access_token=",
            "http://127.0.0.1:9/hook?key=",
            "ftp://127.0.0.1/",
            "not a url ",
            "",
        ],
    );
    w.insert("url".into(), Value::String(format!("{url}{SECRET}")));
    for (k, opts) in [
        ("format", &["json", "dingtalk", "wecom", "slack", ""][..]),
        (
            "min_severity",
            &["info", "warn", "major", "critical", "fatal"][..],
        ),
    ] {
        if u.arbitrary().unwrap_or(false) {
            w.insert(k.into(), Value::String((*pick(u, opts)).to_owned()));
        }
    }
    if u.arbitrary().unwrap_or(false) {
        w.insert("sign_secret".into(), Value::String(format!("SEC{SECRET}")));
    }
    if u.ratio(1u8, 8).unwrap_or(false) {
        w.insert("colour".into(), Value::String("red".into()));
    }
    Value::Table(w)
}

/// The structured mode: the edited document and the environment.
fn structured(u: &mut Unstructured<'_>) -> (String, Vec<(String, String)>) {
    let (base, leaves) = base();
    // Mostly a sparse document (only the edited keys: the built-in
    // defaults equal the example's, and a small file loads ten times
    // faster), now and then the whole example.
    let mut doc = if u.ratio(1u8, 16).unwrap_or(false) {
        base.clone()
    } else {
        Table::new()
    };
    for _ in 0..u.int_in_range(0u8..=8).unwrap_or(0) {
        match u.int_in_range(0u8..=9).unwrap_or(0) {
            0..=4 => {
                let path = pick(u, leaves);
                let (last, parent) = path.split_last().expect("a leaf has a name");
                let v = value(u, get(base, path));
                let t = table_at(&mut doc, parent);
                if !is_secret(path) {
                    t.insert(last.clone(), v);
                }
            }
            5 => {
                let path = pick(u, leaves);
                let (last, parent) = path.split_last().expect("a leaf has a name");
                table_at(&mut doc, parent).remove(last);
            }
            6 => {
                let path = pick(u, leaves);
                let parent = &path[..u.choose_index(path.len()).unwrap_or(0)];
                let k = *pick(u, &["hots", "port2", "", "max bytes", "Mqtt", "webhooks"]);
                table_at(&mut doc, parent).insert(k.into(), value(u, None));
            }
            7 => {
                let hooks = table_at(&mut doc, &["notify".into()])
                    .entry("webhooks")
                    .or_insert_with(|| Value::Array(Vec::new()));
                if let Value::Array(a) = hooks {
                    a.push(webhook(u));
                } else {
                    *hooks = Value::Array(vec![webhook(u)]);
                }
            }
            8 => {
                // A rule override: layer, scope id, family, threshold.
                let families: Vec<&Vec<String>> = leaves
                    .iter()
                    .filter(|p| p.len() == 4 && p[0] == "rules" && p[1] == "thresholds")
                    .collect();
                if families.is_empty() {
                    continue;
                }
                let p = *pick(u, &families);
                let layer = *pick(u, &["device_kind", "site", "permit", "device", "planet"]);
                let id = *pick(
                    u,
                    &[
                        "storage",
                        "truck",
                        "lorry",
                        "res-jingbei",
                        "st-lab-univ-01",
                        "",
                    ],
                );
                let t = table_at(
                    &mut doc,
                    &[
                        "rules".into(),
                        "overrides".into(),
                        layer.into(),
                        id.into(),
                        p[2].clone(),
                    ],
                );
                let like = base
                    .get("rules")
                    .and_then(|r| r.get("thresholds"))
                    .and_then(|r| r.get(&p[2]))
                    .and_then(|r| r.get(&p[3]));
                t.insert(p[3].clone(), value(u, like));
            }
            _ => {
                // A whole section replaced by a non-table.
                let s = *pick(u, SECTIONS);
                doc.insert(s.into(), value(u, Some(&Value::Integer(0))));
            }
        }
    }
    let mut env = Vec::new();
    for _ in 0..u.int_in_range(0u8..=3).unwrap_or(0) {
        let path = pick(u, leaves);
        if is_secret(path) {
            continue;
        }
        let v = *pick(
            u,
            &[
                "0",
                "1",
                "-1",
                "18446744073709551615",
                "18446744073709551616",
                "9223372036854775807",
                "9223372036854775808",
                "1e3",
                "nan",
                "inf",
                "",
                "true",
                "yes",
                "a,b",
                "wastewatch/v1/#,",
                "http://x",
                "65536",
            ],
        );
        env.push((path.join("__").to_ascii_uppercase(), v.to_owned()));
    }
    if u.arbitrary().unwrap_or(false) {
        for k in ["MQTT__PASSWORD", "TSDB__PASSWORD", "TSDB__TOKEN"] {
            env.push((k.into(), format!("pw-{SECRET}")));
        }
        if u.arbitrary().unwrap_or(false) {
            env.push(("MQTT__USERNAME".into(), "u".into()));
        }
    }
    let text = toml::to_string(&doc).unwrap_or_default();
    (text, env)
}

/// Keys whose values are secrets: only the marker may be written there.
fn is_secret(path: &[String]) -> bool {
    matches!(
        path.last().map(String::as_str),
        Some("password" | "token" | "sign_secret")
    ) || (path.len() >= 2 && path[path.len() - 2] == "webhooks")
}

/// The raw mode: TOML text, NUL, environment lines.
fn raw(data: &[u8]) -> (String, Vec<(String, String)>) {
    let s = String::from_utf8_lossy(data);
    let (toml, env) = s.split_once('\0').unwrap_or((&s, ""));
    let env = env
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    (toml.to_owned(), env)
}

/// True when `e` names a key (`for key `mqtt.port``, `mqtt.port is 0`,
/// `rules: thresholds.bins…`), a section, or the file.
fn located(e: &str, file: &str) -> bool {
    e.contains(file)
        || e.contains("for key `")
        || SECTIONS
            .iter()
            .copied()
            .chain(base().0.keys().map(String::as_str))
            .any(|s| {
                [".", "[", ":", "`"]
                    .iter()
                    .any(|end| e.contains(&format!("{s}{end}")))
            })
}

/// Re-checks the documented bounds of accepted settings.
fn check_settings(s: &Settings) {
    let m = &s.mqtt;
    assert!(!m.host.is_empty() && m.port != 0);
    assert!((1..=128).contains(&m.client_id.len()));
    assert!(!m.subscribe.is_empty());
    assert!(m
        .subscribe
        .iter()
        .all(|f| !f.is_empty() && !f.contains('\0')));
    assert!(m.session_expiry_s > 0 && m.receive_maximum > 0);
    assert!((5..=3600).contains(&m.keep_alive.as_secs()));
    assert!(!m.reconnect_min.is_zero() && m.reconnect_min <= m.reconnect_max);
    let d = &s.decode;
    assert!(d.max_payload_bytes > 0);
    assert!(d.clock.max_future_ms >= 0 && d.clock.max_past_ms >= 0);
    assert!(d.limits.net_tolerance_kg.is_finite() && d.limits.net_tolerance_kg >= 0.0);
    let l = &s.log;
    assert!(l.max_bytes >= 1 << 20, "log.max_bytes {}", l.max_bytes);
    assert!((64 << 10..=1 << 30).contains(&l.segment_bytes));
    assert!(l.segment_bytes <= l.max_bytes / 4);
    assert!(l.commit_max_bytes >= 64 << 10);
    let reserve = wastewatch::log::LogOptions::with_max_bytes(l.max_bytes).reserve_bytes;
    let room = l.max_bytes.saturating_sub(reserve);
    let largest = l
        .commit_max_bytes
        .checked_add(u64::from(m.max_packet_bytes))
        .and_then(|v| v.checked_add(4096));
    assert!(
        largest.is_some_and(|v| v <= room / 2),
        "log.commit_max_bytes {} + mqtt.max_packet_bytes {} does not fit twice in {room}",
        l.commit_max_bytes,
        m.max_packet_bytes
    );
    assert!((1..=60_000).contains(&l.cursor_sync.as_millis()));
    let t = &s.tsdb;
    assert!(!t.retry_min.is_zero() && t.retry_min <= t.retry_max);
    assert!(!t.request_timeout.is_zero());
    assert!((1..=64).contains(&s.worker_threads));
    assert!(!s.shutdown_deadline.is_zero());
    let a = &s.alerting;
    assert!(a.resend_interval.as_millis() >= 1000 && a.snapshot_interval.as_millis() >= 100);
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let structured_mode = mode & 1 == 1;
    let (text, env) = if structured_mode {
        structured(&mut Unstructured::new(rest))
    } else {
        raw(rest)
    };
    let env: Vec<(String, String)> = env
        .into_iter()
        .map(|(k, v)| (format!("WASTEWATCH__{k}"), v))
        .collect();
    let path = file();
    std::fs::write(path, &text).expect("write the config file");
    let shown = path.display().to_string();
    match load(Some(path), &env) {
        Ok(s) => {
            check_settings(&s);
            if structured_mode {
                let dbg = format!("{s:?}");
                assert!(
                    !dbg.contains(SECRET),
                    "a secret in the settings' Debug: {dbg}"
                );
            }
        }
        Err(errors) => {
            assert!(!errors.0.is_empty(), "Err without errors");
            for e in &errors.0 {
                assert!(!e.trim().is_empty(), "an empty error in {errors:?}");
                assert!(located(e, &shown), "an error that names no key or file: {e:?}\n--- config:\n{text}\n--- env: {env:?}");
                if structured_mode {
                    assert!(!e.contains(SECRET), "a secret in an error: {e:?}");
                }
            }
        }
    }
});

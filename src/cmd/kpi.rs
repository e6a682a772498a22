//! The `wastewatch report` and `wastewatch kpi import` commands: where to
//! read and write (the config's TSDB, or flags), and the I/O around the
//! pure report and import.

use std::path::Path;

use wastewatch::config::{Settings, TsdbTarget};
use wastewatch::kpi::period::{Period, PeriodKind};
use wastewatch::kpi::report::{self, Source1};
use wastewatch::sink::writer::{WriteOutcome, Writer};

/// Where the KPIs live, as given on the command line.
#[derive(Clone, Debug, Default)]
pub struct Target {
    /// InfluxDB base URL; overrides the config's `tsdb.url`.
    pub influx_url: Option<String>,
    /// Database (1.x) or DBRP database name (2.x); overrides the config.
    pub database: Option<String>,
    /// InfluxDB 2.x API token; overrides the config's `tsdb.token`.
    pub token: Option<String>,
}

/// Resolves the InfluxDB to read from.
pub fn source(settings: &Settings, t: &Target) -> anyhow::Result<Source1> {
    let (mut url, mut database, basic, mut token) = match &settings.tsdb.target {
        TsdbTarget::InfluxV1 {
            url,
            database,
            credentials,
            ..
        } => (
            Some(url.clone()),
            database.clone(),
            credentials
                .as_ref()
                .map(|(u, p)| (u.clone(), p.expose().to_owned())),
            None,
        ),
        TsdbTarget::InfluxV2 {
            url, bucket, token, ..
        } => (
            Some(url.clone()),
            bucket.clone(),
            None,
            (!token.expose().is_empty()).then(|| token.expose().to_owned()),
        ),
        _ => (None, "wastewatch".to_owned(), None, None),
    };
    if let Some(u) = &t.influx_url {
        url = Some(url::Url::parse(u).map_err(|e| anyhow::anyhow!("--influx-url {u:?}: {e}"))?);
    }
    if let Some(d) = &t.database {
        database = d.clone();
    }
    if t.token.is_some() {
        token = t.token.clone();
    }
    let Some(url) = url else {
        anyhow::bail!(
            "the config writes to no InfluxDB (tsdb.kind is file or none); pass --influx-url"
        );
    };
    Ok(Source1 {
        url,
        database,
        basic,
        token,
    })
}

/// The current local month, e.g. `2026-10`.
pub fn this_month(now_ms: i64, utc_offset_min: i16) -> String {
    Period::containing(PeriodKind::Month, now_ms, utc_offset_min).label(utc_offset_min)
}

/// `wastewatch report`: the text of the report.
pub async fn report(
    settings: &Settings,
    t: &Target,
    period: Option<&str>,
    format: &str,
) -> anyhow::Result<String> {
    let offset = settings.kpi.utc_offset_min;
    let label = match period {
        Some(p) => p.trim().to_owned(),
        None => this_month(wastewatch::ingest::now_ms(), offset),
    };
    let p = Period::parse(&label, offset)
        .filter(|p| p.kind != PeriodKind::Day)
        .ok_or_else(|| {
            anyhow::anyhow!("--period {label:?}: give a month (2026-10) or a year (2026)")
        })?;
    if !matches!(format, "markdown" | "md" | "csv") {
        anyhow::bail!("--format {format:?}: markdown or csv");
    }
    let src = source(settings, t)?;
    let rows = report::fetch(&src, &p).await?;
    let rep = report::build(&label, rows);
    Ok(if format == "csv" {
        report::csv(&rep)
    } else {
        report::markdown(&rep)
    })
}

/// `wastewatch kpi import FILE`: parses, then writes (unless `dry_run`);
/// returns what was done, in words.
pub async fn import(
    settings: &Settings,
    t: &Target,
    file: &Path,
    dry_run: bool,
) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
    let records = wastewatch::kpi::import::parse(&text, &settings.kpi).map_err(|errs| {
        anyhow::anyhow!(
            "{}: {} error(s), nothing imported:\n  - {}",
            file.display(),
            errs.len(),
            errs.join("\n  - ")
        )
    })?;
    let body = wastewatch::kpi::import::lines(&records).map_err(anyhow::Error::msg)?;
    if dry_run {
        return Ok(format!(
            "{} value(s) valid; not written (--dry-run):\n{body}",
            records.len()
        ));
    }
    let src = source(settings, t)?;
    let mut tsdb = settings.tsdb.clone();
    tsdb.target = match (&settings.tsdb.target, &src.token) {
        (TsdbTarget::InfluxV2 { org, .. }, Some(token)) => TsdbTarget::InfluxV2 {
            url: src.url.clone(),
            org: org.clone(),
            bucket: src.database.clone(),
            token: wastewatch::secret::Secret::new(token.clone()),
        },
        _ => TsdbTarget::InfluxV1 {
            url: src.url.clone(),
            database: src.database.clone(),
            retention_policy: String::new(),
            credentials: src
                .basic
                .as_ref()
                .map(|(u, p)| (u.clone(), wastewatch::secret::Secret::new(p.clone()))),
        },
    };
    let writer = Writer::new(&tsdb).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut delay = std::time::Duration::from_millis(500);
    for attempt in 1..=6 {
        match writer.write(&body).await {
            WriteOutcome::Ok => {
                return Ok(format!(
                    "imported {} value(s) into {} ({})",
                    records.len(),
                    src.url,
                    src.database
                ))
            }
            WriteOutcome::Rejected { reason } => {
                anyhow::bail!("InfluxDB refused the values: {reason}")
            }
            WriteOutcome::TooLarge => {
                anyhow::bail!("InfluxDB refused the file as too large; split it")
            }
            WriteOutcome::Retry { after, reason } if attempt < 6 => {
                eprintln!("write failed ({reason}); retrying");
                tokio::time::sleep(after.unwrap_or(delay)).await;
                delay *= 2;
            }
            WriteOutcome::Retry { reason, .. } => {
                anyhow::bail!("InfluxDB did not take the values: {reason}")
            }
        }
    }
    anyhow::bail!("InfluxDB did not take the values")
}

//! The zero-waste KPIs: a pure engine (`engine`) that computes every KPI of
//! the catalogue (`catalogue`) per day, month and year, per site and for the
//! zone, on event time from the records and the registry; the async stage
//! around it (`shell`), which reads the durable log on its own cursor and
//! appends `kpi` records to it, so KPI points reach the TSDB through the
//! TSDB writer and its one status policy, like alert points; the report
//! (`report`) and the operators' import of the targets no sensor measures
//! (`import`). Definitions, sources and caveats: docs/KPIS.md.

pub mod catalogue;
pub mod config;
pub mod engine;
pub mod import;
pub mod period;
pub mod point;
pub mod report;
pub mod shell;

pub use catalogue::{KpiId, Source, Spec, CATALOGUE};
pub use config::KpiConfig;
pub use engine::{KpiEngine, KpiStats, FORMULA_BACKFILL, FORMULA_V1};
pub use period::{Period, PeriodKind};

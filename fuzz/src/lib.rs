//! Shared by the fuzz targets (`fuzz_targets/*.rs`, described in
//! docs/FUZZING.md): the shipped zone and decoders built from it, a reader of
//! the line protocol the sink writes (an oracle independent of the writer),
//! the checks every accepted record must pass, and generators of awkward
//! values for the structured targets.

pub mod gen;
pub mod lp;
pub mod record;
pub mod zone;

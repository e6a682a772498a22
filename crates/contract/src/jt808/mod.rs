//! The JT/T 808 wire format (2013 and 2019 editions) that construction-waste
//! truck terminals speak to the supervision platform: [`frame`] (delimiters,
//! escaping, check code, the two headers), [`message`] (the bodies the
//! gateway understands and the replies it sends), [`reassembly`]
//! (sub-packages). Pure, both directions: the service's gateway decodes with
//! it and firmware-sim's terminals encode with it. Never panics on any
//! input; every refusal names what was wrong.

pub mod frame;
pub mod message;
pub mod reassembly;

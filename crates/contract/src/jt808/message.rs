//! JT/T 808 message bodies: the terminal messages the gateway understands
//! and the platform replies it sends. Pure; every refusal is a
//! [`BodyError`] naming the field, the bytes and what the standard
//! requires.
//!
//! Numbers are big-endian; STRING fields are GBK, right-padded with 0x00
//! (some terminals pad with spaces: both are trimmed); BCD\[6\] times are
//! `YYMMDDhhmmss` in GMT+8 (§4.5.6).

use std::fmt;

use super::frame::{bcd_digits, hex, Version};

/// Message ids.
pub mod id {
    /// Terminal general response.
    pub const TERMINAL_RESPONSE: u16 = 0x0001;
    /// Terminal heartbeat.
    pub const HEARTBEAT: u16 = 0x0002;
    /// Terminal logout (注销).
    pub const LOGOUT: u16 = 0x0003;
    /// Terminal registration.
    pub const REGISTER: u16 = 0x0100;
    /// Terminal authentication.
    pub const AUTHENTICATE: u16 = 0x0102;
    /// Location information report.
    pub const LOCATION: u16 = 0x0200;
    /// Batch upload of location data.
    pub const BATCH_LOCATION: u16 = 0x0704;
    /// Platform general response.
    pub const PLATFORM_RESPONSE: u16 = 0x8001;
    /// Terminal registration response.
    pub const REGISTER_RESPONSE: u16 = 0x8100;
}

/// Result codes of the platform general response 0x8001 (§8.2).
pub mod result {
    /// Success / confirmation.
    pub const OK: u8 = 0;
    /// Failure.
    pub const FAILURE: u8 = 1;
    /// Message has an error.
    pub const MESSAGE_ERROR: u8 = 2;
    /// Not supported.
    pub const UNSUPPORTED: u8 = 3;
}

/// Result codes of the registration response 0x8100 (§8.5).
pub mod register_result {
    /// Success; the authentication code follows.
    pub const OK: u8 = 0;
    /// The vehicle is already registered.
    pub const VEHICLE_REGISTERED: u8 = 1;
    /// No such vehicle in the database.
    pub const NO_SUCH_VEHICLE: u8 = 2;
    /// The terminal is already registered.
    pub const TERMINAL_REGISTERED: u8 = 3;
    /// No such terminal in the database.
    pub const NO_SUCH_TERMINAL: u8 = 4;
}

/// A body that is not what its message id requires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BodyError(pub String);

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(s: impl Into<String>) -> Result<T, BodyError> {
    Err(BodyError(s.into()))
}

/// A cursor over a body that refuses to read past its end.
struct Reader<'a> {
    b: &'a [u8],
    at: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn new(b: &'a [u8], what: &'static str) -> Self {
        Reader { b, at: 0, what }
    }

    fn take(&mut self, n: usize, field: &str) -> Result<&'a [u8], BodyError> {
        if self.b.len() - self.at < n {
            return err(format!(
                "{} body of {} bytes ends inside {field} (needs {n} bytes at offset {})",
                self.what,
                self.b.len(),
                self.at
            ));
        }
        let s = &self.b[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }

    fn u8(&mut self, field: &str) -> Result<u8, BodyError> {
        Ok(self.take(1, field)?[0])
    }

    fn u16(&mut self, field: &str) -> Result<u16, BodyError> {
        let s = self.take(2, field)?;
        Ok(u16::from_be_bytes([s[0], s[1]]))
    }

    fn u32(&mut self, field: &str) -> Result<u32, BodyError> {
        let s = self.take(4, field)?;
        Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }

    fn rest(&mut self) -> &'a [u8] {
        let s = &self.b[self.at..];
        self.at = self.b.len();
        s
    }

    fn left(&self) -> usize {
        self.b.len() - self.at
    }
}

/// GBK text with its 0x00 / space padding trimmed.
pub fn gbk(bytes: &[u8], field: &str) -> Result<String, BodyError> {
    let end = bytes
        .iter()
        .rposition(|b| *b != 0 && *b != b' ')
        .map_or(0, |i| i + 1);
    let start = bytes[..end]
        .iter()
        .position(|b| *b != 0 && *b != b' ')
        .unwrap_or(end);
    let t = &bytes[start..end];
    match encoding_rs::GBK.decode_without_bom_handling_and_without_replacement(t) {
        Some(s) => Ok(s.into_owned()),
        None => err(format!("{field} is not GBK text: {}", hex(t))),
    }
}

/// Encodes text as GBK (the plate and authentication code of replies).
pub fn to_gbk(s: &str) -> Vec<u8> {
    encoding_rs::GBK.encode(s).0.into_owned()
}

/// 0x0100 terminal registration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    /// Province id (GB/T 2260 first two digits).
    pub province: u16,
    /// City / county id.
    pub city: u16,
    /// Manufacturer id.
    pub manufacturer: String,
    /// Terminal model.
    pub model: String,
    /// Terminal id.
    pub terminal_id: String,
    /// Plate colour (JT/T 697.7; 0 = not registered, VIN instead).
    pub plate_color: u8,
    /// Plate (or the VIN when the colour is 0).
    pub plate: String,
}

impl Registration {
    /// Parses the body of the edition `v`.
    pub fn parse(body: &[u8], v: Version) -> Result<Registration, BodyError> {
        let (man, model, tid) = match v {
            Version::V2013 => (5, 20, 7),
            Version::V2019 { .. } => (11, 30, 30),
        };
        let mut r = Reader::new(body, "registration (0x0100)");
        Ok(Registration {
            province: r.u16("the province id")?,
            city: r.u16("the city id")?,
            manufacturer: gbk(r.take(man, "the manufacturer id")?, "manufacturer id")?,
            model: gbk(r.take(model, "the terminal model")?, "terminal model")?,
            terminal_id: gbk(r.take(tid, "the terminal id")?, "terminal id")?,
            plate_color: r.u8("the plate colour")?,
            plate: gbk(r.rest(), "plate")?,
        })
    }

    /// Encodes the body for the edition `v` (what a terminal sends).
    pub fn encode(&self, v: Version) -> Vec<u8> {
        let (man, model, tid) = match v {
            Version::V2013 => (5, 20, 7),
            Version::V2019 { .. } => (11, 30, 30),
        };
        let mut b = Vec::new();
        b.extend_from_slice(&self.province.to_be_bytes());
        b.extend_from_slice(&self.city.to_be_bytes());
        for (s, n) in [
            (&self.manufacturer, man),
            (&self.model, model),
            (&self.terminal_id, tid),
        ] {
            let mut f = to_gbk(s);
            f.resize(n, 0);
            b.extend_from_slice(&f);
        }
        b.push(self.plate_color);
        b.extend_from_slice(&to_gbk(&self.plate));
        b
    }
}

/// 0x0102 terminal authentication.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authentication {
    /// The code the platform gave in 0x8100.
    pub code: String,
    /// Terminal IMEI (2019 only).
    pub imei: String,
    /// Software version (2019 only).
    pub software: String,
}

impl Authentication {
    /// Parses the body of the edition `v`.
    pub fn parse(body: &[u8], v: Version) -> Result<Authentication, BodyError> {
        match v {
            Version::V2013 => Ok(Authentication {
                code: gbk(body, "authentication code")?,
                imei: String::new(),
                software: String::new(),
            }),
            Version::V2019 { .. } => {
                let mut r = Reader::new(body, "authentication (0x0102)");
                let n = usize::from(r.u8("the authentication code length")?);
                let code = gbk(r.take(n, "the authentication code")?, "authentication code")?;
                let imei = gbk(r.take(15, "the IMEI")?, "IMEI")?;
                let software = gbk(r.take(20, "the software version")?, "software version")?;
                Ok(Authentication {
                    code,
                    imei,
                    software,
                })
            }
        }
    }

    /// Encodes the body for the edition `v`.
    pub fn encode(&self, v: Version) -> Vec<u8> {
        match v {
            Version::V2013 => to_gbk(&self.code),
            Version::V2019 { .. } => {
                let code = to_gbk(&self.code);
                let mut b = vec![code.len().min(255) as u8];
                b.extend_from_slice(&code[..code.len().min(255)]);
                for (s, n) in [(&self.imei, 15), (&self.software, 20)] {
                    let mut f = to_gbk(s);
                    f.resize(n, 0);
                    b.extend_from_slice(&f);
                }
                b
            }
        }
    }
}

/// A BCD\[6\] time `YYMMDDhhmmss`, GMT+8, as Unix ms. Years are 2000–2099.
pub fn bcd_time_to_unix_ms(b: &[u8]) -> Result<i64, BodyError> {
    let Some(d) = bcd_digits(b).filter(|_| b.len() == 6) else {
        return err(format!(
            "time {} is not BCD[6] YYMMDDhhmmss (a nibble above 9)",
            hex(b)
        ));
    };
    let n = |i: usize| i64::from((d.as_bytes()[i] - b'0') * 10 + (d.as_bytes()[i + 1] - b'0'));
    let (y, mo, da, h, mi, s) = (2000 + n(0), n(2), n(4), n(6), n(8), n(10));
    let days_in_month = match mo {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if y % 4 == 0 => 29,
        2 => 28,
        _ => 0,
    };
    if days_in_month == 0 || da < 1 || da > days_in_month || h > 23 || mi > 59 || s > 59 {
        return err(format!(
            "time {d} (YYMMDDhhmmss, GMT+8) is not a calendar time: {y:04}-{mo:02}-{da:02} {h:02}:{mi:02}:{s:02}"
        ));
    }
    let days = days_from_civil(y, mo, da);
    Ok(((days * 86_400 + h * 3600 + mi * 60 + s) - 8 * 3600) * 1000)
}

/// Unix ms as a BCD\[6\] time in GMT+8.
pub fn unix_ms_to_bcd_time(ms: i64) -> [u8; 6] {
    let secs = ms.div_euclid(1000) + 8 * 3600;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let parts = [
        y.rem_euclid(100),
        m,
        d,
        rem / 3600,
        (rem / 60) % 60,
        rem % 60,
    ];
    let mut out = [0u8; 6];
    for (o, p) in out.iter_mut().zip(parts) {
        *o = (((p / 10) as u8) << 4) | (p % 10) as u8;
    }
    out
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Status bits of a location report (§8.18, table 24).
pub mod status {
    /// ACC (ignition) on.
    pub const ACC_ON: u32 = 1 << 0;
    /// Positioned (the receiver has a fix).
    pub const POSITIONED: u32 = 1 << 1;
    /// Southern latitude.
    pub const SOUTH: u32 = 1 << 2;
    /// Western longitude.
    pub const WEST: u32 = 1 << 3;
    /// Load state, bits 8–9: 00 empty, 01 half loaded, 10 reserved, 11 full.
    pub const LOAD_MASK: u32 = 0b11 << 8;
}

/// Custom additional item (0xE1, in the range the standard leaves to the
/// user) carrying the construction-waste body sensors: bit 0 cover
/// (tarpaulin) closed, bit 1 tipper body lifted. See docs/PROTOCOLS.md.
pub const ITEM_BODY_SENSORS: u8 = 0xE1;

/// One location report (the 0x0200 body, also each item of 0x0704).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Location {
    /// Alarm flags (§8.18 table 25).
    pub alarm: u32,
    /// Status bits ([`status`]).
    pub status: u32,
    /// Latitude, millionths of a degree (sign in the status bits).
    pub lat_e6: u32,
    /// Longitude, millionths of a degree (sign in the status bits).
    pub lon_e6: u32,
    /// Altitude, m.
    pub altitude_m: u16,
    /// Speed, 1/10 km/h.
    pub speed_dkmh: u16,
    /// Direction, degrees 0–359 clockwise from north.
    pub direction: u16,
    /// The BCD time, GMT+8.
    pub time_bcd: [u8; 6],
    /// Unix ms of `time_bcd`.
    pub time_unix_ms: i64,
    /// Item 0x01: mileage, 1/10 km.
    pub mileage_dkm: Option<u32>,
    /// Item 0x02: fuel, 1/10 L.
    pub fuel_dl: Option<u16>,
    /// Item 0x03: tachograph speed, 1/10 km/h.
    pub tacho_speed_dkmh: Option<u16>,
    /// Item 0x30: wireless signal strength.
    pub signal: Option<u8>,
    /// Item 0x31: GNSS satellites in use.
    pub satellites: Option<u8>,
    /// Item 0xE1: body sensors ([`ITEM_BODY_SENSORS`]).
    pub body_sensors: Option<u8>,
    /// Ids of the other additional items present (kept in the raw frame).
    pub other_items: Vec<u8>,
}

impl Location {
    /// Latitude, degrees, signed.
    pub fn latitude_deg(&self) -> f64 {
        let v = f64::from(self.lat_e6) / 1e6;
        if self.status & status::SOUTH != 0 {
            -v
        } else {
            v
        }
    }

    /// Longitude, degrees, signed.
    pub fn longitude_deg(&self) -> f64 {
        let v = f64::from(self.lon_e6) / 1e6;
        if self.status & status::WEST != 0 {
            -v
        } else {
            v
        }
    }

    /// Parses a location report body.
    pub fn parse(body: &[u8]) -> Result<Location, BodyError> {
        let mut r = Reader::new(body, "location report (0x0200)");
        let mut l = Location {
            alarm: r.u32("the alarm flags")?,
            status: r.u32("the status bits")?,
            lat_e6: r.u32("the latitude")?,
            lon_e6: r.u32("the longitude")?,
            altitude_m: r.u16("the altitude")?,
            speed_dkmh: r.u16("the speed")?,
            direction: r.u16("the direction")?,
            ..Location::default()
        };
        let t = r.take(6, "the time")?;
        l.time_bcd.copy_from_slice(t);
        l.time_unix_ms = bcd_time_to_unix_ms(t)?;
        while r.left() > 0 {
            let at = r.at;
            let item = r.u8("an additional item id")?;
            let len = usize::from(r.u8("an additional item length")?);
            let v = r.take(len, "an additional item")?;
            let fixed = |want: usize, name: &str| -> Result<(), BodyError> {
                if len == want {
                    Ok(())
                } else {
                    err(format!(
                        "additional item 0x{item:02X} ({name}) at offset {at} has {len} bytes; the standard gives it {want}"
                    ))
                }
            };
            match item {
                0x01 => {
                    fixed(4, "mileage")?;
                    l.mileage_dkm = Some(u32::from_be_bytes([v[0], v[1], v[2], v[3]]));
                }
                0x02 => {
                    fixed(2, "fuel")?;
                    l.fuel_dl = Some(u16::from_be_bytes([v[0], v[1]]));
                }
                0x03 => {
                    fixed(2, "tachograph speed")?;
                    l.tacho_speed_dkmh = Some(u16::from_be_bytes([v[0], v[1]]));
                }
                0x30 => {
                    fixed(1, "signal strength")?;
                    l.signal = Some(v[0]);
                }
                0x31 => {
                    fixed(1, "GNSS satellites")?;
                    l.satellites = Some(v[0]);
                }
                ITEM_BODY_SENSORS => {
                    fixed(1, "body sensors")?;
                    l.body_sensors = Some(v[0]);
                }
                other => l.other_items.push(other),
            }
        }
        Ok(l)
    }

    /// Encodes the body (basic information and the items this type knows).
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(40);
        for v in [self.alarm, self.status, self.lat_e6, self.lon_e6] {
            b.extend_from_slice(&v.to_be_bytes());
        }
        for v in [self.altitude_m, self.speed_dkmh, self.direction] {
            b.extend_from_slice(&v.to_be_bytes());
        }
        b.extend_from_slice(&self.time_bcd);
        if let Some(m) = self.mileage_dkm {
            b.extend_from_slice(&[0x01, 4]);
            b.extend_from_slice(&m.to_be_bytes());
        }
        if let Some(f) = self.fuel_dl {
            b.extend_from_slice(&[0x02, 2]);
            b.extend_from_slice(&f.to_be_bytes());
        }
        if let Some(s) = self.tacho_speed_dkmh {
            b.extend_from_slice(&[0x03, 2]);
            b.extend_from_slice(&s.to_be_bytes());
        }
        if let Some(s) = self.signal {
            b.extend_from_slice(&[0x30, 1, s]);
        }
        if let Some(s) = self.satellites {
            b.extend_from_slice(&[0x31, 1, s]);
        }
        if let Some(s) = self.body_sensors {
            b.extend_from_slice(&[ITEM_BODY_SENSORS, 1, s]);
        }
        b
    }
}

/// 0x0704 batch upload: the type and each item's location body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch<'a> {
    /// 0 normal batch, 1 blind-area (store-and-forward) backfill.
    pub kind: u8,
    /// Each item's location report body.
    pub items: Vec<&'a [u8]>,
}

impl<'a> Batch<'a> {
    /// Splits the body into its items (each parsed by [`Location::parse`]).
    pub fn parse(body: &'a [u8]) -> Result<Batch<'a>, BodyError> {
        let mut r = Reader::new(body, "batch upload (0x0704)");
        let count = r.u16("the item count")?;
        let kind = r.u8("the batch type")?;
        let mut items = Vec::with_capacity(usize::from(count).min(1024));
        for i in 0..count {
            let len = usize::from(r.u16("an item length")?);
            let field = format!("item {} of {count}", i + 1);
            items.push(r.take(len, &field)?);
        }
        if r.left() > 0 {
            return err(format!(
                "batch upload (0x0704) declares {count} item(s) but {} byte(s) follow the last",
                r.left()
            ));
        }
        Ok(Batch { kind, items })
    }

    /// Encodes a batch of location bodies.
    pub fn encode(kind: u8, items: &[Vec<u8>]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&(items.len() as u16).to_be_bytes());
        b.push(kind);
        for it in items {
            b.extend_from_slice(&(it.len() as u16).to_be_bytes());
            b.extend_from_slice(it);
        }
        b
    }
}

/// 0x0001 terminal general response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TerminalResponse {
    /// Serial of the platform message answered.
    pub serial: u16,
    /// Its id.
    pub msg_id: u16,
    /// Result.
    pub result: u8,
}

impl TerminalResponse {
    /// Parses the body.
    pub fn parse(body: &[u8]) -> Result<TerminalResponse, BodyError> {
        let mut r = Reader::new(body, "terminal general response (0x0001)");
        Ok(TerminalResponse {
            serial: r.u16("the reply serial")?,
            msg_id: r.u16("the reply id")?,
            result: r.u8("the result")?,
        })
    }
}

/// Body of the platform general response 0x8001.
pub fn platform_response(serial: u16, msg_id: u16, result: u8) -> Vec<u8> {
    let mut b = Vec::with_capacity(5);
    b.extend_from_slice(&serial.to_be_bytes());
    b.extend_from_slice(&msg_id.to_be_bytes());
    b.push(result);
    b
}

/// Parses a platform general response body: (serial, id, result).
pub fn parse_platform_response(body: &[u8]) -> Result<(u16, u16, u8), BodyError> {
    let mut r = Reader::new(body, "platform general response (0x8001)");
    Ok((
        r.u16("the reply serial")?,
        r.u16("the reply id")?,
        r.u8("the result")?,
    ))
}

/// Body of the registration response 0x8100; the code only on success.
pub fn register_response(serial: u16, result: u8, code: &str) -> Vec<u8> {
    let mut b = Vec::with_capacity(3 + code.len());
    b.extend_from_slice(&serial.to_be_bytes());
    b.push(result);
    if result == register_result::OK {
        b.extend_from_slice(&to_gbk(code));
    }
    b
}

/// Parses a registration response body: (serial, result, code).
pub fn parse_register_response(body: &[u8]) -> Result<(u16, u8, String), BodyError> {
    let mut r = Reader::new(body, "registration response (0x8100)");
    let serial = r.u16("the reply serial")?;
    let result = r.u8("the result")?;
    let code = gbk(r.rest(), "authentication code")?;
    Ok((serial, result, code))
}

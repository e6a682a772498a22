//! Trucks as JT/T 808 terminals: a terminal client over TCP (register,
//! authenticate, report, wait for the platform's 0x8001) and a runner that
//! plays the fleet's trucks that have a `terminal_phone` in the registry as
//! terminals, with the faults of the field: frames with a bad check code
//! (sent before the intact retransmission), reports sent as a sub-packaged
//! batch upload (0x0704), and dropped connections (reconnect,
//! authenticate again, retransmit what was not answered).
//!
//! A fix counts as acknowledged only when the platform's 0x8001 for it
//! arrived; the summary lists those by device and fix time (the `seq` the
//! service gives a JT/T 808 fix: Unix seconds).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use prost::Message as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wastewatch_contract::jt808::frame::{self, Frame, Header, Package, Piece, Splitter, Version};
use wastewatch_contract::jt808::message::{
    self, id, unix_ms_to_bcd_time, Authentication, Batch, Location, Registration,
};
use wastewatch_contract::pb::{self, envelope::Body};
use wastewatch_contract::registry::Registry;

/// Errors of a terminal.
#[derive(Debug, thiserror::Error)]
pub enum TerminalError {
    /// Socket error.
    #[error("jt808 connection: {0}")]
    Io(#[from] std::io::Error),
    /// The platform said no, or something unexpected.
    #[error("jt808 platform: {0}")]
    Refused(String),
    /// No answer in time.
    #[error("jt808: no answer within {0:?}")]
    Timeout(Duration),
}

/// One terminal's connection to the platform.
pub struct Terminal {
    stream: TcpStream,
    /// Phone number as the header carries it.
    pub phone: String,
    /// Edition spoken.
    pub version: Version,
    serial: u16,
    splitter: Splitter,
    frames: Vec<Frame>,
}

/// The phone field of `version` for a registry phone number.
pub fn header_phone(phone: &str, version: Version) -> String {
    match version {
        Version::V2013 => format!("{phone:0>12}"),
        Version::V2019 { .. } => format!("{phone:0>20}"),
    }
}

impl Terminal {
    /// Connects to `addr`.
    pub async fn connect(
        addr: &str,
        phone: &str,
        version: Version,
    ) -> Result<Terminal, TerminalError> {
        let stream = TcpStream::connect(addr).await?;
        let _ = stream.set_nodelay(true);
        Ok(Terminal {
            stream,
            phone: header_phone(phone, version),
            version,
            serial: 0,
            splitter: Splitter::new(1 << 16),
            frames: Vec::new(),
        })
    }

    fn header(&mut self, msg_id: u16, package: Option<Package>) -> Header {
        self.serial = self.serial.wrapping_add(1);
        Header {
            msg_id,
            version: self.version,
            encryption: 0,
            phone: self.phone.clone(),
            serial: self.serial,
            package,
        }
    }

    /// Encodes a message (next serial); returns the frame and its serial.
    pub fn frame(&mut self, msg_id: u16, body: &[u8]) -> (Vec<u8>, u16) {
        let h = self.header(msg_id, None);
        let serial = h.serial;
        // Bodies built here are below 1023 bytes and the phone has the
        // edition's width.
        (frame::encode(&h, body).unwrap_or_default(), serial)
    }

    /// Encodes a message cut into packages of at most `size` body bytes;
    /// returns the frames and their serials.
    pub fn packaged(&mut self, msg_id: u16, body: &[u8], size: usize) -> Vec<(Vec<u8>, u16)> {
        let parts: Vec<&[u8]> = body.chunks(size.clamp(1, frame::MAX_BODY)).collect();
        let total = parts.len() as u16;
        parts
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let h = self.header(
                    msg_id,
                    Some(Package {
                        total,
                        index: i as u16 + 1,
                    }),
                );
                let serial = h.serial;
                (frame::encode(&h, p).unwrap_or_default(), serial)
            })
            .collect()
    }

    /// Writes bytes as they are.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<(), TerminalError> {
        self.stream.write_all(bytes).await?;
        Ok(())
    }

    /// The next frame from the platform, within `timeout`.
    pub async fn next_frame(&mut self, timeout: Duration) -> Result<Frame, TerminalError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut buf = [0u8; 2048];
        loop {
            if !self.frames.is_empty() {
                return Ok(self.frames.remove(0));
            }
            let n = tokio::time::timeout_at(deadline, self.stream.read(&mut buf))
                .await
                .map_err(|_| TerminalError::Timeout(timeout))??;
            if n == 0 {
                return Err(TerminalError::Refused(
                    "platform closed the connection".into(),
                ));
            }
            let mut pieces = Vec::new();
            self.splitter.push(&buf[..n], &mut pieces);
            for p in pieces {
                if let Piece::Frame(raw) = p {
                    match frame::parse(&raw) {
                        Ok(f) => self.frames.push(f),
                        Err(e) => {
                            return Err(TerminalError::Refused(format!(
                                "bad frame from the platform: {e}"
                            )))
                        }
                    }
                }
            }
        }
    }

    /// Waits for the 0x8001 answering `serial`; returns its result code.
    pub async fn general_response(
        &mut self,
        serial: u16,
        timeout: Duration,
    ) -> Result<u8, TerminalError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let f = self.next_frame(left).await?;
            if f.header.msg_id != id::PLATFORM_RESPONSE {
                continue;
            }
            let (s, _, result) = message::parse_platform_response(&f.body)
                .map_err(|e| TerminalError::Refused(e.to_string()))?;
            if s == serial {
                return Ok(result);
            }
        }
    }

    /// Registers; returns the authentication code.
    pub async fn register(&mut self, plate: &str) -> Result<String, TerminalError> {
        let reg = Registration {
            province: 41,
            city: 100,
            manufacturer: "WWSIM".into(),
            model: "firmware-sim".into(),
            terminal_id: "SIM0001".into(),
            plate_color: 2,
            plate: plate.into(),
        };
        let (f, serial) = self.frame(id::REGISTER, &reg.encode(self.version));
        self.send_raw(&f).await?;
        loop {
            let f = self.next_frame(Duration::from_secs(10)).await?;
            if f.header.msg_id != id::REGISTER_RESPONSE {
                continue;
            }
            let (s, result, code) = message::parse_register_response(&f.body)
                .map_err(|e| TerminalError::Refused(e.to_string()))?;
            if s != serial {
                continue;
            }
            if result != message::register_result::OK {
                return Err(TerminalError::Refused(format!(
                    "registration refused with result {result}"
                )));
            }
            return Ok(code);
        }
    }

    /// Authenticates with `code`.
    pub async fn authenticate(&mut self, code: &str) -> Result<(), TerminalError> {
        let a = Authentication {
            code: code.into(),
            imei: "860000000000001".into(),
            software: "firmware-sim".into(),
        };
        let (f, serial) = self.frame(id::AUTHENTICATE, &a.encode(self.version));
        self.send_raw(&f).await?;
        match self
            .general_response(serial, Duration::from_secs(10))
            .await?
        {
            0 => Ok(()),
            r => Err(TerminalError::Refused(format!(
                "authentication refused with result {r}"
            ))),
        }
    }

    /// Sends one location report and waits for its 0x8001.
    pub async fn report(&mut self, l: &Location, timeout: Duration) -> Result<u8, TerminalError> {
        let (f, serial) = self.frame(id::LOCATION, &l.encode());
        self.send_raw(&f).await?;
        self.general_response(serial, timeout).await
    }
}

/// The location report of a truck fix recorded at `recorded_at_ms`.
pub fn location_of(f: &pb::TruckFix, recorded_at_ms: i64) -> Location {
    use message::status;
    let mut st = 0;
    if f.ignition_on {
        st |= status::ACC_ON;
    }
    if f.gnss_fix {
        st |= status::POSITIONED;
    }
    if f.latitude_deg < 0.0 {
        st |= status::SOUTH;
    }
    if f.longitude_deg < 0.0 {
        st |= status::WEST;
    }
    if f.loaded {
        st |= status::LOAD_MASK;
    }
    let time_bcd = unix_ms_to_bcd_time(recorded_at_ms);
    Location {
        alarm: f.terminal_alarm_bits,
        status: st,
        lat_e6: (f.latitude_deg.abs() * 1e6).round() as u32,
        lon_e6: (f.longitude_deg.abs() * 1e6).round() as u32,
        altitude_m: f.altitude_m.map_or(0, |a| a.clamp(0.0, 65_535.0) as u16),
        speed_dkmh: (f.speed_kmh * 10.0).round().clamp(0.0, 65_535.0) as u16,
        direction: (f.heading_deg.round() as i64).rem_euclid(360) as u16,
        time_bcd,
        time_unix_ms: recorded_at_ms.div_euclid(1000) * 1000,
        mileage_dkm: f.odometer_km.map(|k| (k * 10.0).round() as u32),
        satellites: Some(f.satellites.min(255) as u8),
        body_sensors: Some(u8::from(f.cover_closed) | (u8::from(f.body_lifted) << 1)),
        ..Location::default()
    }
}

/// Faults the terminals inject.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Jt808Faults {
    /// Every Nth report is first sent with a corrupted check code (the
    /// platform quarantines it and does not answer; the intact copy follows).
    pub bad_check_every: Option<u64>,
    /// Every Nth report goes as a 0x0704 batch upload cut into sub-packages.
    pub subpackage_every: Option<u64>,
    /// Every Nth report the terminal drops its connection first and
    /// reconnects (authenticating again).
    pub reconnect_every: Option<u64>,
}

/// What the terminals achieved.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Jt808Summary {
    /// Reports sent (retransmissions not counted).
    pub sent: u64,
    /// Reports answered 0x8001 success.
    pub acked: u64,
    /// Corrupted frames sent.
    pub bad_frames: u64,
    /// Reconnects.
    pub reconnects: u64,
    /// Attempts that failed (connection lost, refused or unanswered) and
    /// were retried.
    pub retries: u64,
    /// Per device: the fix times (Unix s) answered.
    pub acked_by_device: BTreeMap<String, BTreeSet<u64>>,
}

/// One truck playing a terminal.
pub struct TruckTerminal {
    /// Registry device id.
    pub device_id: String,
    /// Registry phone number.
    pub phone: String,
    /// Plate.
    pub plate: String,
    /// Edition.
    pub version: Version,
    conn: Option<Terminal>,
    code: Option<String>,
    n: u64,
}

impl TruckTerminal {
    /// The trucks of `registry` with a terminal phone number, sorted; every
    /// second one speaks the 2019 edition.
    pub fn from_registry(registry: &Registry) -> Vec<TruckTerminal> {
        let mut v: Vec<TruckTerminal> = registry
            .devices
            .values()
            .filter_map(|d| {
                let t = d.truck.as_ref()?;
                Some(TruckTerminal {
                    device_id: d.id.clone(),
                    phone: t.terminal_phone.clone()?,
                    plate: t.plate.clone(),
                    version: Version::V2013,
                    conn: None,
                    code: None,
                    n: 0,
                })
            })
            .collect();
        v.sort_by(|a, b| a.device_id.cmp(&b.device_id));
        for (i, t) in v.iter_mut().enumerate() {
            if i % 2 == 1 {
                t.version = Version::V2019 { protocol: 1 };
            }
        }
        v
    }

    async fn ensure(&mut self, addr: &str) -> Result<&mut Terminal, TerminalError> {
        if self.conn.is_none() {
            let mut t = Terminal::connect(addr, &self.phone, self.version).await?;
            let code = match &self.code {
                Some(c) => c.clone(),
                None => t.register(&self.plate).await?,
            };
            t.authenticate(&code).await?;
            self.code = Some(code);
            self.conn = Some(t);
        }
        self.conn
            .as_mut()
            .ok_or_else(|| TerminalError::Refused("no connection".into()))
    }

    /// Reports `l` until the platform answers success (reconnecting on
    /// errors, at most `attempts` tries), injecting `faults`.
    pub async fn deliver(
        &mut self,
        addr: &str,
        l: &Location,
        faults: &Jt808Faults,
        summary: &mut Jt808Summary,
        attempts: u32,
    ) -> bool {
        self.n += 1;
        let n = self.n;
        let every = |e: Option<u64>| e.is_some_and(|e| e > 0 && n.is_multiple_of(e));
        summary.sent += 1;
        if every(faults.reconnect_every) && self.conn.take().is_some() {
            summary.reconnects += 1;
        }
        for attempt in 0..attempts {
            if attempt > 0 {
                summary.retries += 1;
            }
            let t = match self.ensure(addr).await {
                Ok(t) => t,
                Err(_) => {
                    self.conn = None;
                    tokio::time::sleep(Duration::from_millis(
                        (200 * u64::from(attempt + 1)).min(1000),
                    ))
                    .await;
                    continue;
                }
            };
            let r = async {
                if every(faults.bad_check_every) && attempt == 0 {
                    let (mut f, _) = t.frame(id::LOCATION, &l.encode());
                    let k = f.len() - 2;
                    f[k] = f[k].wrapping_add(1).max(1);
                    if f[k] == frame::FLAG || f[k] == frame::ESCAPE {
                        f[k] = 0x01;
                    }
                    t.send_raw(&f).await?;
                    summary.bad_frames += 1;
                }
                if every(faults.subpackage_every) {
                    let body = Batch::encode(0, &[l.encode()]);
                    let frames = t.packaged(id::BATCH_LOCATION, &body, 16);
                    let serials: Vec<u16> = frames.iter().map(|f| f.1).collect();
                    for (f, _) in &frames {
                        t.send_raw(f).await?;
                    }
                    let mut ok = true;
                    for s in serials {
                        ok &= t.general_response(s, Duration::from_secs(10)).await? == 0;
                    }
                    Ok::<bool, TerminalError>(ok)
                } else {
                    Ok(t.report(l, Duration::from_secs(10)).await? == 0)
                }
            }
            .await;
            match r {
                Ok(true) => {
                    summary.acked += 1;
                    summary
                        .acked_by_device
                        .entry(self.device_id.clone())
                        .or_default()
                        .insert((l.time_unix_ms / 1000) as u64);
                    return true;
                }
                Ok(false) | Err(_) => {
                    self.conn = None;
                    tokio::time::sleep(Duration::from_millis(
                        (200 * u64::from(attempt + 1)).min(1000),
                    ))
                    .await;
                }
            }
        }
        false
    }
}

/// The truck fix in a fleet message, with its device time, if it is one
/// (and a valid one: messages meant to be quarantined are skipped).
pub fn truck_fix_of(payload: &[u8], json: bool) -> Option<(String, pb::TruckFix, i64)> {
    let env = if json {
        wastewatch_contract::json::decode_json(payload).ok()?
    } else {
        pb::Envelope::decode(payload).ok()?
    };
    match env.body {
        Some(Body::TruckFix(f)) => Some((env.device_id, f, env.recorded_at_unix_ms)),
        _ => None,
    }
}

//! The connection and the ack path against a scripted MQTT peer on
//! loopback (the integration tests in `tests/` use the real Mosquitto).

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rumqttc::v5::mqttbytes::v5::{
    ConnAck, ConnectReturnCode, Disconnect, DisconnectReasonCode, Packet, PingResp, Publish,
    SubAck, SubscribeReasonCode,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::connection::{self, Connector, ToConnection};
use super::*;

fn settings(port: u16, keep_alive: Duration) -> MqttSettings {
    MqttSettings {
        host: "127.0.0.1".into(),
        port,
        client_id: "ingest-test".into(),
        subscribe: vec!["wastewatch/v1/#".into()],
        credentials: None,
        tls: None,
        client_auth: None,
        keep_alive,
        session_expiry_s: 60,
        receive_maximum: 100,
        max_packet_bytes: 1 << 16,
        reconnect_min: Duration::from_millis(20),
        reconnect_max: Duration::from_millis(50),
        read_linger: Duration::from_millis(1),
        sparkplug: None,
    }
}

/// One broker-side connection.
struct Peer {
    s: TcpStream,
    buf: BytesMut,
}

impl Peer {
    async fn accept(l: &TcpListener) -> Peer {
        let (s, _) = tokio::time::timeout(Duration::from_secs(5), l.accept())
            .await
            .expect("client connects")
            .unwrap();
        let mut p = Peer {
            s,
            buf: BytesMut::new(),
        };
        assert!(matches!(p.read().await, Packet::Connect(..)));
        p.send(Packet::ConnAck(ConnAck {
            session_present: true,
            code: ConnectReturnCode::Success,
            properties: None,
        }))
        .await;
        match p.read().await {
            Packet::Subscribe(s) => {
                p.send(Packet::SubAck(SubAck {
                    pkid: s.pkid,
                    return_codes: vec![SubscribeReasonCode::Success(QoS::AtLeastOnce)],
                    properties: None,
                }))
                .await
            }
            other => panic!("expected SUBSCRIBE, got {other:?}"),
        }
        p
    }

    async fn read(&mut self) -> Packet {
        loop {
            // rumqttc's codec cannot read a DISCONNECT of remaining length 0
            // (valid in MQTT 5, §3.14.2.1), which is what we send.
            if self.buf.starts_with(&[0xE0, 0x00]) {
                let _ = self.buf.split_to(2);
                return Packet::Disconnect(Disconnect::new(
                    DisconnectReasonCode::NormalDisconnection,
                ));
            }
            match Packet::read(&mut self.buf, None) {
                Ok(p) => return p,
                Err(rumqttc::v5::mqttbytes::Error::InsufficientBytes(_)) => {}
                Err(e) => panic!("{e:?}"),
            }
            let n = tokio::time::timeout(Duration::from_secs(5), self.s.read_buf(&mut self.buf))
                .await
                .expect("client sends")
                .unwrap();
            assert!(n > 0, "client closed");
        }
    }

    async fn send(&mut self, p: Packet) {
        let mut out = BytesMut::new();
        p.write(&mut out, None).unwrap();
        self.s.write_all(&out).await.unwrap();
    }

    async fn publish(&mut self, pkid: u16, qos: QoS) {
        let mut p = Publish::new(
            "wastewatch/v1/s/bin/d/telemetry",
            qos,
            Bytes::from_static(b"x"),
            None,
        );
        p.pkid = pkid;
        self.send(Packet::Publish(p)).await;
    }
}

struct Client {
    rx: mpsc::UnboundedReceiver<Vec<Inbound>>,
    control: mpsc::UnboundedSender<ToConnection>,
    session: Arc<Session>,
    metrics: Arc<Metrics>,
    task: tokio::task::JoinHandle<()>,
    _stop: CancellationToken,
}

fn client(port: u16, keep_alive: Duration) -> Client {
    let (tx, rx) = mpsc::unbounded_channel();
    let (control, control_rx) = mpsc::unbounded_channel();
    let session = Arc::new(Session::default());
    let metrics = Arc::new(Metrics::default());
    let stop = CancellationToken::new();
    let stop_tx = stop.clone();
    let task = tokio::spawn(connection::run(
        Connector::new(&settings(port, keep_alive)).unwrap(),
        tx,
        control_rx,
        session.clone(),
        metrics.clone(),
        stop,
    ));
    Client {
        rx,
        control,
        session,
        metrics,
        task,
        _stop: stop_tx,
    }
}

async fn next_messages(c: &mut Client, n: usize) -> Vec<Inbound> {
    let mut got = Vec::new();
    while got.len() < n {
        let batch = tokio::time::timeout(Duration::from_secs(5), c.rx.recv())
            .await
            .expect("messages arrive")
            .unwrap();
        got.extend(batch);
    }
    got
}

#[tokio::test]
async fn acks_are_written_in_receipt_order_and_qos0_is_not_acked() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut c = client(l.local_addr().unwrap().port(), Duration::from_secs(30));
    let mut peer = Peer::accept(&l).await;
    for (id, q) in [
        (5, QoS::AtLeastOnce),
        (0, QoS::AtMostOnce),
        (3, QoS::AtLeastOnce),
        (9, QoS::AtLeastOnce),
    ] {
        peer.publish(id, q).await;
    }
    let got = next_messages(&mut c, 4).await;
    send_acks(&c.control, &got);
    assert_eq!(acks_read(&mut peer, 3).await, vec![5, 3, 9]);
    c.control.send(ToConnection::Disconnect).unwrap();
    assert!(matches!(peer.read().await, Packet::Disconnect(_)));
    tokio::time::timeout(Duration::from_secs(5), c.task)
        .await
        .expect("the connection task ends after DISCONNECT")
        .unwrap();
    assert_eq!(c.metrics.acks.load(Relaxed), 3);
}

/// The read linger (1 ms in these settings) raises the socket's receive
/// low-water mark to 32 KiB while messages flow. A message that trickles in
/// after a burst, soon or late, must still be read: the linger timer lowers
/// the mark again. With a mark that stayed raised these small publishes
/// would never wake the reader and `next_messages` would time out.
#[tokio::test]
async fn with_the_read_linger_a_trickle_after_a_burst_is_still_read() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut c = client(l.local_addr().unwrap().port(), Duration::from_secs(30));
    let mut peer = Peer::accept(&l).await;
    // Fewer than the Receive Maximum (100), so reading never pauses.
    for id in 1..=90 {
        peer.publish(id, QoS::AtLeastOnce).await;
    }
    let got = next_messages(&mut c, 90).await;
    let want: Vec<u16> = (1..=90).collect();
    assert_eq!(got.iter().map(|m| m.publish.pkid).collect::<Vec<_>>(), want);
    send_acks(&c.control, &got);
    assert_eq!(acks_read(&mut peer, 90).await, want);
    for (i, gap_ms) in [0u64, 1, 2, 5, 20, 100, 0, 0].into_iter().enumerate() {
        tokio::time::sleep(Duration::from_millis(gap_ms)).await;
        let id = 1000 + u16::try_from(i).unwrap();
        peer.publish(id, QoS::AtLeastOnce).await;
        let got = next_messages(&mut c, 1).await;
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].publish.pkid, id);
        send_acks(&c.control, &got);
        assert_eq!(acks_read(&mut peer, 1).await, vec![id]);
    }
}

async fn acks_read(peer: &mut Peer, n: usize) -> Vec<u16> {
    let mut acked = Vec::new();
    while acked.len() < n {
        match peer.read().await {
            Packet::PubAck(a) => acked.push(a.pkid),
            other => panic!("expected PUBACK, got {other:?}"),
        }
    }
    acked
}

#[tokio::test]
async fn no_ack_of_a_dead_connection_reaches_the_next_one() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut c = client(l.local_addr().unwrap().port(), Duration::from_secs(30));
    let mut first = Peer::accept(&l).await;
    first.publish(1, QoS::AtLeastOnce).await;
    let old = next_messages(&mut c, 1).await;
    // The connection dies before the message is committed.
    drop(first);
    let mut second = Peer::accept(&l).await;
    assert!(c.session.epoch.load(SeqCst) > old[0].epoch);
    // Redelivery of the same packet id on the new connection.
    second.publish(1, QoS::AtLeastOnce).await;
    let new = next_messages(&mut c, 1).await;
    // The committer acks both, the old one first: only the new one may be
    // written, once.
    send_acks(&c.control, &old);
    send_acks(&c.control, &new);
    c.control.send(ToConnection::Disconnect).unwrap();
    let mut acks = Vec::new();
    loop {
        match second.read().await {
            Packet::PubAck(a) => acks.push(a.pkid),
            Packet::Disconnect(_) => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(acks, vec![1], "exactly one ack, for the live connection");
    assert_eq!(c.metrics.acks_stale_dropped.load(Relaxed), 1);
}

/// A broker that ignores our Receive Maximum (Mosquitto 2.0 was measured
/// 60,000 ahead of it under load) cannot make us hold more than that in
/// memory: past it, the socket is not read until acks make room.
#[tokio::test]
async fn no_more_than_the_receive_maximum_is_held_unacknowledged() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut c = client(l.local_addr().unwrap().port(), Duration::from_secs(30));
    let mut peer = Peer::accept(&l).await;
    // settings(): receive_maximum = 100.
    for id in 1..=100 {
        peer.publish(id, QoS::AtLeastOnce).await;
    }
    let first = next_messages(&mut c, 100).await;
    assert_eq!(c.metrics.ingest_held.load(Relaxed), 100);
    // 150 more, past the limit: none is read while the 100 are unacked.
    for id in 101..=250 {
        peer.publish(id, QoS::AtLeastOnce).await;
    }
    let early = tokio::time::timeout(Duration::from_millis(500), c.rx.recv()).await;
    assert!(early.is_err(), "read past the receive maximum: {early:?}");
    assert_eq!(c.metrics.ingest_held.load(Relaxed), 100);
    // The committer's part: room first, then the acks, which wake the
    // connection; then the rest arrives.
    c.metrics.ingest_held.fetch_sub(100, Relaxed);
    send_acks(&c.control, &first);
    // Acked as they come (one read may take more than the limit's worth).
    let mut rest = Vec::new();
    while rest.len() < 150 {
        let batch = tokio::time::timeout(Duration::from_secs(5), c.rx.recv())
            .await
            .expect("the rest arrives once acks make room")
            .unwrap();
        c.metrics.ingest_held.fetch_sub(batch.len() as u64, Relaxed);
        send_acks(&c.control, &batch);
        rest.extend(batch);
    }
    let ids: Vec<u16> = rest.iter().map(|m| m.publish.pkid).collect();
    assert_eq!(ids, (101..=250).collect::<Vec<u16>>());
    let mut acked = 0;
    while acked < 250 {
        match peer.read().await {
            Packet::PubAck(_) => acked += 1,
            other => panic!("expected PUBACK, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_broker_that_stops_answering_pings_is_left_and_reconnected() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let c = client(l.local_addr().unwrap().port(), Duration::from_secs(1));
    let mut first = Peer::accept(&l).await;
    // Answer the first PINGREQ, ignore the next.
    assert!(matches!(first.read().await, Packet::PingReq(_)));
    first.send(Packet::PingResp(PingResp)).await;
    assert!(matches!(first.read().await, Packet::PingReq(_)));
    let _second = Peer::accept(&l).await;
    assert_eq!(c.metrics.mqtt_connection_errors.load(Relaxed), 1);
    assert_eq!(c.session.epoch.load(SeqCst), 2);
    drop(first);
}

#[test]
fn acks_are_grouped_by_connection_in_receipt_order() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let m = |pkid: u16, epoch: u64, qos: QoS| {
        let mut p = Publish::new("t", qos, Bytes::new(), None);
        p.pkid = pkid;
        Inbound {
            publish: p,
            epoch,
            received_at_ms: 0,
        }
    };
    send_acks(
        &tx,
        &[
            m(1, 1, QoS::AtLeastOnce),
            m(2, 1, QoS::AtLeastOnce),
            m(0, 2, QoS::AtMostOnce),
            m(7, 2, QoS::AtLeastOnce),
        ],
    );
    let mut got = Vec::new();
    while let Ok(ToConnection::Acks { epoch, pkids }) = rx.try_recv() {
        got.push((epoch, pkids));
    }
    assert_eq!(got, vec![(1, vec![1, 2]), (2, vec![7])]);
}

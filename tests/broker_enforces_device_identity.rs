//! The real Mosquitto, running the shipped config (deploy/mosquitto/
//! wastewatch.conf and wastewatch.acl; only ports and file locations are the
//! test's), decides who may say what: a device publishes only under its own
//! id, a wrong password or no login at all is refused, and no client can take
//! the ingest's client id — and with it the persistent session holding the
//! backlog — nor wipe that session without logging in (client ids must carry
//! the `ww:` prefix, which no user name, hence no session id, has). Every
//! identity comes from `wastewatch devices credentials`.

use std::time::Duration;

use prost::Message;
use rumqttc::v5::mqttbytes::v5::{Packet, PubAckReason};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, ConnectionError, Event, EventLoop, MqttOptions};
use wastewatch::pb::DeviceKind;
use wastewatch_test_kit::*;

/// Connects as `user` (client id `client_id`); the CONNACK or the refusal.
async fn connect(
    client_id: &str,
    login: Option<(&str, &str)>,
    clean_start: bool,
) -> Result<(AsyncClient, EventLoop), ConnectionError> {
    let (host, port) = mqtt_addr();
    let mut o = MqttOptions::new(client_id, host, port);
    if let Some((u, p)) = login {
        o.set_credentials(u, p);
    }
    o.set_clean_start(clean_start);
    let (client, mut el) = AsyncClient::new(o, 10);
    loop {
        match tokio::time::timeout(Duration::from_secs(10), el.poll())
            .await
            .expect("no answer from the broker in 10 s")
        {
            Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok((client, el)),
            Ok(_) => {}
            Err(e) => return Err(e),
        }
    }
}

/// Publishes one QoS 1 message and returns the broker's PUBACK reason.
async fn publish(
    client: &AsyncClient,
    el: &mut EventLoop,
    topic: String,
    payload: Vec<u8>,
) -> PubAckReason {
    client
        .publish(topic, QoS::AtLeastOnce, false, payload)
        .await
        .unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), el.poll())
            .await
            .expect("no PUBACK in 10 s")
        {
            Ok(Event::Incoming(Packet::PubAck(ack))) => return ack.reason,
            Ok(_) => {}
            Err(e) => panic!("connection failed while waiting for the PUBACK: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_can_publish_only_under_its_own_id() {
    let setup = V1Setup::new("impersonate", &[]);
    let zone = &setup.zone;
    let svc = setup.start();
    let bin_pw = zone.device_password(&zone.bin);

    let (client, mut el) = connect(&client_id(&zone.bin), Some((&zone.bin, &bin_pw)), true)
        .await
        .expect("the bin logs in with its own password");
    let own = zone.envelope(DeviceKind::Bin, 1, now_ms() - 1000);
    assert_eq!(
        publish(&client, &mut el, zone.topic(&own), own.encode_to_vec()).await,
        PubAckReason::Success
    );
    // The bin speaking for the storage point: its topic and its payload.
    let forged = zone.envelope(DeviceKind::Storage, 1, now_ms() - 1000);
    assert_eq!(
        publish(
            &client,
            &mut el,
            zone.topic(&forged),
            forged.encode_to_vec()
        )
        .await,
        PubAckReason::NotAuthorized,
        "the broker accepted the bin publishing as {}",
        zone.storage
    );
    // Nor can it write outside the topic grammar, or read anything.
    assert_eq!(
        publish(
            &client,
            &mut el,
            format!(
                "wastewatch/v1/{}/bin/{}/telemetry/extra",
                zone.site, zone.bin
            ),
            own.encode_to_vec()
        )
        .await,
        PubAckReason::NotAuthorized
    );
    let _ = client.disconnect().await;

    assert!(
        eventually(Duration::from_secs(20), || stored_seqs(
            &setup.db,
            "bin_reading"
        )
        .len()
            == 1),
        "the bin's own reading was not stored; log:\n{}",
        setup.log()
    );
    // The forged message never reached the ingest (not even its quarantine).
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(svc.metric("ingest_received_total"), 1);
    assert!(stored_seqs(&setup.db, "storage_reading").is_empty());
    svc.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_an_unknown_user_and_no_login_are_refused() {
    let tag = unique("refused");
    let zone = Zone::new(&tag);
    zone.ingest_identity(&format!("ww-{tag}"));
    let pw = zone.device_password(&zone.bin);
    let wrong = format!("{pw}x");
    for (what, login) in [
        (
            "a wrong password",
            Some((zone.bin.as_str(), wrong.as_str())),
        ),
        ("an unknown user", Some(("nobody-registered", pw.as_str()))),
        ("no login", None),
    ] {
        match connect(&client_id(&tag), login, true).await {
            Err(ConnectionError::ConnectionRefused(code)) => {
                eprintln!("{what}: refused with {code:?}")
            }
            Err(e) => panic!("{what}: expected a CONNACK refusal, got {e}"),
            Ok(_) => panic!("{what}: the broker let the client in"),
        }
    }
    // The right password, but a client id without the prefix.
    assert!(matches!(
        connect(&zone.bin, Some((&zone.bin, &pw)), true).await,
        Err(ConnectionError::ConnectionRefused(_))
    ));
    assert!(connect(&client_id(&zone.bin), Some((&zone.bin, &pw)), true)
        .await
        .is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_client_can_take_the_ingest_client_id_or_wipe_its_session() {
    let setup = V1Setup::new("takeover", &[]);
    let zone = &setup.zone;
    let ingest_id = format!("ww-{}", setup.tag);
    // The service creates its persistent session, then stops.
    setup.start().stop();

    // Messages queued for the stopped service.
    // (Distinct device times: points are keyed by their time.)
    let t0 = now_ms() - 10_000;
    let msgs: Vec<Msg> = (1..=3)
        .map(|seq| {
            Msg::pb(
                zone,
                &zone.envelope(DeviceKind::Bin, seq, t0 + seq as i64 * 1000),
            )
        })
        .collect();
    assert_eq!(
        publish_all(format!("pub-{}", setup.tag), msgs, None).await,
        3
    );

    // A device logs in under the ingest's client id with a clean start:
    // were sessions keyed by the client id it chose, this would discard the
    // ingest's session and the three queued messages.
    let pw = zone.device_password(&zone.bin);
    let (client, _el) = connect(&client_id(&ingest_id), Some((&zone.bin, &pw)), true)
        .await
        .expect("the bin may log in (as itself)");
    let _ = client.disconnect().await;
    // A refused CONNECT naming the session (with or without the prefix)
    // must not touch it (Mosquitto before 2.0.13 dropped it: see the
    // broker config's clientid_prefixes).
    for (cid, login) in [
        (client_id(&ingest_id), None),
        (ingest_id.clone(), None),
        (ingest_id.clone(), Some((zone.bin.as_str(), pw.as_str()))),
    ] {
        assert!(
            matches!(
                connect(&cid, login, true).await,
                Err(ConnectionError::ConnectionRefused(_))
            ),
            "{cid} {:?} got in",
            login.map(|l| l.0)
        );
    }
    // Without the ingest's password nobody gets in under its name.
    assert!(matches!(
        connect(
            &client_id(&ingest_id),
            Some((&ingest_id, "guessed-password")),
            true
        )
        .await,
        Err(ConnectionError::ConnectionRefused(_))
    ));
    assert!(matches!(
        connect(&ingest_id, None, true).await,
        Err(ConnectionError::ConnectionRefused(_))
    ));

    let svc = setup.start();
    assert!(
        eventually(Duration::from_secs(20), || stored_seqs(
            &setup.db,
            "bin_reading"
        )
        .len()
            == 3),
        "the backlog queued in the ingest's session was lost; log:\n{}",
        setup.log()
    );
    svc.stop();
}

/// Lines of a Mosquitto config or ACL without comments and blank lines.
fn directives(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_test_broker_runs_the_shipped_config_with_only_ports_and_paths_replaced() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = std::path::PathBuf::from(env("WW_SERVICES_DIR")).join("mosquitto");
    let shipped = directives(
        &std::fs::read_to_string(repo.join("deploy/mosquitto/wastewatch.conf")).unwrap(),
    );
    let test = directives(&std::fs::read_to_string(dir.join("mosquitto.conf")).unwrap());
    // Settings whose value is a port or a location on this machine.
    let replaced = [
        "listener",
        "password_file",
        "acl_file",
        "cafile",
        "certfile",
        "keyfile",
        "persistence_location",
        "log_dest",
        "user",
    ];
    let key = |l: &str| l.split_whitespace().next().unwrap_or("").to_owned();
    for line in &shipped {
        let k = key(line);
        // Each shipped directive is there, verbatim unless its value is a
        // port or a path.
        let found = if replaced.contains(&k.as_str()) {
            test.iter().any(|t| key(t) == k)
        } else {
            test.contains(line)
        };
        assert!(found, "shipped {line:?} is not in the test broker's config");
    }
    for must in [
        "allow_anonymous false",
        "use_username_as_clientid true",
        "require_certificate true",
        "use_identity_as_username true",
        "clientid_prefixes ww:",
    ] {
        assert!(
            shipped.iter().any(|l| l == must),
            "the shipped config lost {must:?}"
        );
    }
    // Every listener of the test broker is on loopback.
    for l in test.iter().filter(|l| key(l) == "listener") {
        assert!(l.ends_with(" 127.0.0.1"), "{l}");
    }
    // The live ACL is the shipped one, followed by test identities only.
    let shipped_acl =
        directives(&std::fs::read_to_string(repo.join("deploy/mosquitto/wastewatch.acl")).unwrap());
    let test_acl = directives(&std::fs::read_to_string(dir.join("auth/acl")).unwrap());
    assert_eq!(test_acl[..shipped_acl.len()], shipped_acl[..]);
    for l in &test_acl[shipped_acl.len()..] {
        assert!(
            l.starts_with("user ") || l.starts_with("topic "),
            "the test ACL adds more than test identities: {l:?}"
        );
    }
}

//! Alert lifecycle cases on simulated time: one behaviour per test.

use super::*;
use crate::alert::HistoryEntry;

const T0: i64 = 1_772_456_400_000;
const MIN: i64 = 60_000;

fn key(entity: &str) -> AlertKey {
    AlertKey::new(RuleId::StorageTemperature, entity)
}

fn raise(entity: &str, severity: Severity, at_ms: i64) -> Transition {
    Transition::Raise {
        key: key(entity),
        severity,
        value: 42.0,
        threshold: 40.0,
        message: "store at 42 °C".into(),
        at_ms,
    }
}

fn clear(entity: &str, at_ms: i64) -> Transition {
    Transition::Clear {
        key: key(entity),
        at_ms,
    }
}

/// The default policy with a 5-minute `for` on the rule these tests raise.
fn pending_5_min() -> AlertPolicy {
    let mut policy = AlertPolicy::default();
    policy
        .pending_for_ms
        .insert(RuleId::StorageTemperature, 5 * MIN);
    policy
}

fn reasons(events: &[AlertEvent]) -> Vec<(Option<AlertState>, AlertState, EventReason)> {
    events
        .iter()
        .map(|e| (e.from_state, e.to_state, e.reason))
        .collect()
}

#[test]
fn a_raise_without_a_for_duration_fires_at_once() {
    let mut s = AlertStore::new(AlertPolicy::default());
    let ev = s.apply(raise("st-1", Severity::Warn, T0));
    assert_eq!(
        reasons(&ev),
        [(None, AlertState::Firing, EventReason::Fired)]
    );
    assert!(ev[0].notify());
    let a = &ev[0].alert;
    assert_eq!((a.id, a.fired_at_ms, a.started_at_ms), (1, Some(T0), T0));
    assert_eq!(s.active_count(), 1);
}

#[test]
fn a_raise_stays_pending_for_its_for_duration_then_fires_on_tick() {
    let policy = pending_5_min();
    let mut s = AlertStore::new(policy);
    let ev = s.apply(raise("st-1", Severity::Warn, T0));
    assert_eq!(
        reasons(&ev),
        [(None, AlertState::Pending, EventReason::Opened)]
    );
    assert!(!ev[0].notify());
    assert!(s.tick(T0 + 5 * MIN - 1).is_empty());
    let ev = s.tick(T0 + 5 * MIN);
    assert_eq!(
        reasons(&ev),
        [(
            Some(AlertState::Pending),
            AlertState::Firing,
            EventReason::Fired
        )]
    );
}

#[test]
fn a_pending_alert_fires_on_a_raise_after_its_for_duration() {
    let mut s = AlertStore::new(AlertPolicy {
        default_pending_for_ms: MIN,
        ..AlertPolicy::default()
    });
    s.apply(raise("st-1", Severity::Warn, T0));
    assert!(s
        .apply(raise("st-1", Severity::Warn, T0 + 30_000))
        .is_empty());
    let ev = s.apply(raise("st-1", Severity::Warn, T0 + MIN));
    assert_eq!(ev[0].reason, EventReason::Fired);
}

#[test]
fn a_pending_alert_cleared_before_its_for_duration_expires_without_notifying() {
    let mut s = AlertStore::new(AlertPolicy {
        default_pending_for_ms: MIN,
        ..AlertPolicy::default()
    });
    s.apply(raise("st-1", Severity::Warn, T0));
    let ev = s.apply(clear("st-1", T0 + 10_000));
    assert_eq!(
        reasons(&ev),
        [(
            Some(AlertState::Pending),
            AlertState::Resolved,
            EventReason::Expired
        )]
    );
    assert!(!ev[0].notify());
    assert!(s.tick(T0 + 10 * MIN).is_empty());
}

#[test]
fn a_repeated_raise_at_the_same_severity_emits_nothing_but_updates_the_value() {
    let mut s = AlertStore::new(AlertPolicy::default());
    s.apply(raise("st-1", Severity::Warn, T0));
    let ev = s.apply(Transition::Raise {
        key: key("st-1"),
        severity: Severity::Warn,
        value: 44.0,
        threshold: 40.0,
        message: "store at 44 °C".into(),
        at_ms: T0 + MIN,
    });
    assert!(ev.is_empty());
    assert_eq!(s.get(1).map(|a| a.value), Some(44.0));
}

#[test]
fn escalation_is_notified_and_deescalation_only_recorded() {
    let mut s = AlertStore::new(AlertPolicy::default());
    s.apply(raise("st-1", Severity::Warn, T0));
    let up = s.apply(raise("st-1", Severity::Critical, T0 + MIN));
    assert_eq!(
        reasons(&up),
        [(
            Some(AlertState::Firing),
            AlertState::Firing,
            EventReason::Escalated
        )]
    );
    assert!(up[0].notify());
    let down = s.apply(raise("st-1", Severity::Warn, T0 + 2 * MIN));
    assert_eq!(down[0].reason, EventReason::Deescalated);
    assert!(!down[0].notify());
    let a = s.get(1).unwrap();
    assert_eq!(
        (a.severity, a.peak_severity),
        (Severity::Warn, Severity::Critical)
    );
}

#[test]
fn clear_resolves_once_and_a_second_clear_emits_nothing() {
    let mut s = AlertStore::new(AlertPolicy::default());
    s.apply(raise("st-1", Severity::Warn, T0));
    let ev = s.apply(clear("st-1", T0 + MIN));
    assert_eq!(
        reasons(&ev),
        [(
            Some(AlertState::Firing),
            AlertState::Resolved,
            EventReason::Resolved
        )]
    );
    assert_eq!(ev[0].alert.resolved_at_ms, Some(T0 + MIN));
    assert!(s.apply(clear("st-1", T0 + 2 * MIN)).is_empty());
    assert!(s.apply(clear("never-raised", T0)).is_empty());
}

#[test]
fn transitions_older_than_the_last_one_applied_are_ignored() {
    // A replay after a restart re-applies a raise that was followed by a
    // clear: it must not re-open the alert.
    let mut s = AlertStore::new(AlertPolicy::default());
    s.apply(raise("st-1", Severity::Warn, T0));
    s.apply(clear("st-1", T0 + MIN));
    assert!(s.apply(raise("st-1", Severity::Warn, T0)).is_empty());
    assert_eq!(s.active_count(), 0);
}

#[test]
fn ack_stops_repeats_and_an_escalation_fires_again() {
    let mut s = AlertStore::new(AlertPolicy::default());
    s.apply(raise("st-1", Severity::Warn, T0));
    let ev = s.ack(1, T0 + MIN, "duty-officer").unwrap().unwrap();
    assert_eq!(ev.to_state, AlertState::Acknowledged);
    assert_eq!(ev.alert.acknowledged_by.as_deref(), Some("duty-officer"));
    assert_eq!(s.ack(1, T0 + 2 * MIN, "again"), Ok(None));
    assert!(s.due_repeats(T0 + 24 * 60 * MIN).is_empty());
    let ev = s.apply(raise("st-1", Severity::Critical, T0 + 3 * MIN));
    assert_eq!(
        reasons(&ev),
        [(
            Some(AlertState::Acknowledged),
            AlertState::Firing,
            EventReason::Escalated
        )]
    );
    let ev = s.apply(clear("st-1", T0 + 4 * MIN));
    assert_eq!(ev[0].reason, EventReason::Resolved);
}

#[test]
fn acknowledgements_keep_who_and_why_in_the_history_across_episodes() {
    let mut s = AlertStore::new(AlertPolicy::default());
    s.apply(raise("st-1", Severity::Warn, T0));
    s.ack_with_reason(1, T0 + MIN, "alice", Some("truck on its way"))
        .unwrap()
        .unwrap();
    // Repeating an acknowledgement changes nothing, the history included.
    assert_eq!(
        s.ack_with_reason(1, T0 + 2 * MIN, "bob", Some("x")),
        Ok(None)
    );
    s.apply(clear("st-1", T0 + 3 * MIN));
    s.apply(raise("st-1", Severity::Warn, T0 + 4 * MIN));
    s.ack(1, T0 + 5 * MIN, "bob").unwrap().unwrap();
    let a = s.get(1).unwrap();
    assert_eq!(
        a.history,
        [
            HistoryEntry {
                at_ms: T0 + MIN,
                event: EventReason::Acknowledged,
                by: "alice".into(),
                reason: Some("truck on its way".into()),
            },
            HistoryEntry {
                at_ms: T0 + 5 * MIN,
                event: EventReason::Acknowledged,
                by: "bob".into(),
                reason: None,
            },
        ]
    );
    let json = serde_json::to_value(a).unwrap();
    assert_eq!(json["history"][0]["by"], "alice");
    assert_eq!(json["history"][0]["event"], "acknowledged");
}

#[test]
fn ack_refuses_unknown_pending_and_resolved_alerts() {
    let mut policy = AlertPolicy::default();
    policy.pending_for_ms.insert(RuleId::Leak, MIN);
    let mut s = AlertStore::new(policy);
    assert_eq!(s.ack(99, T0, "x"), Err(AckError::NotFound { id: 99 }));
    s.apply(Transition::Raise {
        key: AlertKey::new(RuleId::Leak, "st-1"),
        severity: Severity::Critical,
        value: 1.0,
        threshold: 1.0,
        message: "wet".into(),
        at_ms: T0,
    });
    assert_eq!(s.ack(1, T0, "x"), Err(AckError::NotFiring { id: 1 }));
    s.apply(raise("st-2", Severity::Warn, T0));
    s.apply(clear("st-2", T0 + 1));
    assert_eq!(s.ack(2, T0 + 2, "x"), Err(AckError::Resolved { id: 2 }));
}

#[test]
fn repeats_come_every_repeat_interval_while_firing_and_unacked() {
    let mut s = AlertStore::new(AlertPolicy::default());
    let four_h = 4 * 60 * MIN;
    s.apply(raise("st-1", Severity::Warn, T0));
    assert!(s.due_repeats(T0 + four_h - 1).is_empty());
    let due = s.due_repeats(T0 + four_h);
    assert_eq!(due.iter().map(|a| a.id).collect::<Vec<_>>(), [1]);
    assert!(s.due_repeats(T0 + four_h + 1).is_empty());
    assert_eq!(s.due_repeats(T0 + 2 * four_h).len(), 1);
    s.apply(clear("st-1", T0 + 2 * four_h + 1));
    assert!(s.due_repeats(T0 + 10 * four_h).is_empty());
}

#[test]
fn an_alert_raised_from_old_readings_repeats_one_interval_after_it_was_notified() {
    let mut s = AlertStore::new(AlertPolicy::default());
    let four_h = 4 * 60 * MIN;
    // A backlog: the reading is two days old when the alert is notified.
    let now = T0 + 48 * 60 * MIN;
    let events = s.apply(raise("st-1", Severity::Warn, T0));
    assert!(events.iter().any(|e| e.notify()));
    s.mark_notified(&events, now);
    assert!(s.due_repeats(now + 1_000).is_empty());
    assert!(s.due_repeats(now + four_h - 1).is_empty());
    assert_eq!(s.due_repeats(now + four_h).len(), 1);
    // Without the mark, the old device time makes it look overdue at once.
    let mut unmarked = AlertStore::new(AlertPolicy::default());
    unmarked.apply(raise("st-1", Severity::Warn, T0));
    assert_eq!(unmarked.due_repeats(now + 1_000).len(), 1);
}

#[test]
fn a_pending_alert_from_old_readings_waits_its_for_duration_on_the_service_clock() {
    let policy = pending_5_min();
    // A backlog: the readings are two days old when they are applied.
    let now = T0 + 48 * 60 * MIN;
    let mut s = AlertStore::new(policy.clone());
    s.apply(raise("st-1", Severity::Warn, T0));
    s.mark_clock(now);
    assert!(s.tick(now + 1_000).is_empty(), "not before its for");
    // The rest of the backlog clears it, in device time, within the for:
    // it expires without ever firing.
    let ev = s.apply(clear("st-1", T0 + 2 * MIN));
    assert_eq!(
        reasons(&ev),
        [(
            Some(AlertState::Pending),
            AlertState::Resolved,
            EventReason::Expired
        )]
    );
    // Another one that stays: fires one `for` after it was seen.
    s.apply(raise("st-2", Severity::Warn, T0));
    s.mark_clock(now);
    assert!(s.tick(now + 5 * MIN - 1).is_empty());
    let ev = s.tick(now + 5 * MIN);
    assert_eq!(reasons(&ev)[0].2, EventReason::Fired);
    // A later raise in device time past the for still fires at once.
    let mut d = AlertStore::new(policy.clone());
    d.apply(raise("st-3", Severity::Warn, T0));
    d.mark_clock(now);
    let ev = d.apply(raise("st-3", Severity::Warn, T0 + 5 * MIN));
    assert_eq!(reasons(&ev)[0].2, EventReason::Fired);
    // Without the mark (the old behaviour), the old device time makes the
    // alert fire at the next tick.
    let mut unmarked = AlertStore::new(policy);
    unmarked.apply(raise("st-1", Severity::Warn, T0));
    assert_eq!(unmarked.tick(now + 1_000).len(), 1);
}

#[test]
fn marks_survive_a_snapshot_and_a_new_episode_gets_a_new_mark() {
    let policy = pending_5_min();
    let now = T0 + 48 * 60 * MIN;
    let mut s = AlertStore::new(policy);
    s.apply(raise("st-1", Severity::Warn, T0));
    s.mark_clock(now);
    let mut r = AlertStore::restore(&s.snapshot().unwrap()).unwrap();
    assert_eq!(r, s);
    assert!(r.tick(now + 1_000).is_empty());
    // Expired and re-opened later: measured from when the new episode was
    // seen, not the old mark.
    r.apply(clear("st-1", T0 + MIN));
    r.apply(raise("st-1", Severity::Warn, T0 + 2 * MIN));
    r.mark_clock(now + 3 * MIN);
    assert!(r.tick(now + 5 * MIN).is_empty());
    assert_eq!(r.tick(now + 8 * MIN).len(), 1);
}

#[test]
fn an_alert_refiring_more_than_three_times_in_30_minutes_is_held_until_quiet_for_10_minutes() {
    let mut s = AlertStore::new(AlertPolicy::default());
    let mut notified = 0;
    let mut t = T0;
    // Fire, then four resolve/re-fire cycles two minutes apart.
    for cycle in 0..5 {
        let ev = s.apply(raise("st-1", Severity::Warn, t));
        notified += ev.iter().filter(|e| e.notify()).count();
        let held = s.get(1).unwrap().flapping;
        assert_eq!(held, cycle == 4, "cycle {cycle}");
        t += MIN;
        let ev = s.apply(clear("st-1", t));
        notified += ev.iter().filter(|e| e.notify()).count();
        t += MIN;
    }
    // 5 fires + 4 resolutions notified; the 5th clear is held.
    assert_eq!(notified, 9);
    let a = s.get(1).unwrap();
    assert_eq!(
        (a.state, a.flapping, a.flap_count),
        (AlertState::Firing, true, 4)
    );
    // More cycles while held: counted, not notified.
    let ev = s.apply_all([raise("st-1", Severity::Warn, t), clear("st-1", t + MIN)]);
    assert!(ev.is_empty());
    assert_eq!(s.get(1).unwrap().flap_count, 5);
    let quiet_from = t + MIN;
    assert!(s.tick(quiet_from + 10 * MIN - 1).is_empty());
    let ev = s.tick(quiet_from + 10 * MIN);
    assert_eq!(
        reasons(&ev),
        [(
            Some(AlertState::Firing),
            AlertState::Resolved,
            EventReason::Resolved
        )]
    );
    assert_eq!(ev[0].alert.resolved_at_ms, Some(quiet_from));
    assert!(!ev[0].alert.flapping);
}

#[test]
fn a_held_alert_from_old_readings_stays_held_for_its_quiet_time_on_the_service_clock() {
    let mut s = AlertStore::new(AlertPolicy::default());
    let now = T0 + 48 * 60 * MIN;
    let mut t = T0;
    for _ in 0..5 {
        s.apply(raise("st-1", Severity::Warn, t));
        t += MIN;
        s.apply(clear("st-1", t));
        t += MIN;
    }
    s.mark_clock(now);
    assert!(s.get(1).unwrap().flapping);
    assert!(s.tick(now + 1_000).is_empty(), "still held");
    assert!(s.tick(now + 10 * MIN - 1).is_empty());
    let ev = s.tick(now + 10 * MIN);
    assert_eq!(reasons(&ev)[0].2, EventReason::Resolved);
    assert_eq!(
        ev[0].alert.resolved_at_ms,
        Some(t - MIN),
        "resolved at the device time it went quiet"
    );
}

#[test]
fn three_refires_in_the_window_are_not_yet_flapping() {
    let mut s = AlertStore::new(AlertPolicy::default());
    for i in 0..4 {
        s.apply(raise("st-1", Severity::Warn, T0 + 2 * i * MIN));
        s.apply(clear("st-1", T0 + (2 * i + 1) * MIN));
    }
    let a = s.get(1).unwrap();
    assert_eq!(
        (a.state, a.flapping, a.flap_count),
        (AlertState::Resolved, false, 3)
    );
}

#[test]
fn refires_spread_over_more_than_the_window_are_not_flapping() {
    let mut s = AlertStore::new(AlertPolicy::default());
    for i in 0..10 {
        s.apply(raise("st-1", Severity::Warn, T0 + 12 * i * MIN));
        let ev = s.apply(clear("st-1", T0 + (12 * i + 1) * MIN));
        assert_eq!(ev.len(), 1, "cycle {i}");
    }
    assert!(!s.get(1).unwrap().flapping);
}

#[test]
fn resolved_alerts_are_dropped_after_retention_and_a_new_raise_gets_a_new_id() {
    let mut s = AlertStore::new(AlertPolicy::default());
    s.apply(raise("st-1", Severity::Warn, T0));
    s.apply(clear("st-1", T0 + MIN));
    // Re-fire within retention: same record.
    let ev = s.apply(raise("st-1", Severity::Warn, T0 + 2 * MIN));
    assert_eq!(ev[0].alert.id, 1);
    assert_eq!(
        reasons(&ev),
        [(
            Some(AlertState::Resolved),
            AlertState::Firing,
            EventReason::Fired
        )]
    );
    s.apply(clear("st-1", T0 + 3 * MIN));
    s.tick(T0 + 3 * MIN);
    let day = 24 * 60 * MIN;
    s.tick(T0 + 3 * MIN + day - 1);
    assert_eq!(s.len(), 1);
    s.tick(T0 + 3 * MIN + day);
    assert!(s.is_empty());
    let ev = s.apply(raise("st-1", Severity::Warn, T0 + 2 * day));
    assert_eq!(ev[0].alert.id, 2);
}

#[test]
fn alerts_of_a_replayed_backlog_are_retained_from_when_they_were_seen_resolved() {
    // A week-old episode replayed now: it resolved (in event time) long
    // before retention, but the operator has not seen it yet.
    let mut s = AlertStore::new(AlertPolicy::default());
    let day = 24 * 60 * MIN;
    let now = T0 + 7 * day;
    s.apply(raise("st-1", Severity::Warn, T0));
    s.apply(clear("st-1", T0 + MIN));
    s.tick(now);
    assert_eq!(s.len(), 1);
    s.tick(now + day - 1);
    assert_eq!(s.len(), 1);
    s.tick(now + day);
    assert!(s.is_empty());
}

#[test]
fn the_number_of_retained_resolved_alerts_is_capped() {
    let policy = AlertPolicy {
        max_retained_resolved: 2,
        ..AlertPolicy::default()
    };
    let mut s = AlertStore::new(policy);
    for i in 0..5 {
        let e = format!("st-{i}");
        s.apply(raise(&e, Severity::Warn, T0 + i));
        s.apply(clear(&e, T0 + 10 + i));
    }
    s.tick(T0 + 100);
    let kept: Vec<String> = s
        .list(&AlertFilter::default())
        .into_iter()
        .map(|a| a.key.entity)
        .collect();
    assert_eq!(kept.len(), 2);
    assert!(kept.contains(&"st-3".to_owned()) && kept.contains(&"st-4".to_owned()));
}

#[test]
fn a_snapshot_restores_the_whole_store_and_keeps_counting_ids() {
    let mut s = AlertStore::new(AlertPolicy::default());
    s.apply(raise("st-1", Severity::Warn, T0));
    s.apply(raise("st-2", Severity::Critical, T0));
    s.apply(clear("st-2", T0 + MIN));
    s.ack(1, T0 + MIN, "me").unwrap();
    let mut r = AlertStore::restore(&s.snapshot().unwrap()).unwrap();
    assert_eq!(r, s);
    // The restored index answers by key, and replayed transitions are no-ops.
    assert!(r.apply(raise("st-1", Severity::Warn, T0)).is_empty());
    assert!(r.apply(clear("st-2", T0 + MIN)).is_empty());
    let ev = r.apply(raise("st-3", Severity::Warn, T0 + 2 * MIN));
    assert_eq!(ev[0].alert.id, 3);
}

#[test]
fn non_finite_values_are_stored_as_finite_numbers_so_snapshots_stay_valid() {
    let mut s = AlertStore::new(AlertPolicy::default());
    s.apply(Transition::Raise {
        key: key("st-1"),
        severity: Severity::Warn,
        value: f64::NAN,
        threshold: f64::INFINITY,
        message: String::new(),
        at_ms: T0,
    });
    let r = AlertStore::restore(&s.snapshot().unwrap()).unwrap();
    let a = r.get(1).unwrap();
    assert_eq!((a.value, a.threshold), (0.0, f64::MAX));
}

#[test]
fn list_filters_by_state_rule_entity_and_severity_and_sorts_most_severe_first() {
    let mut s = AlertStore::new(AlertPolicy::default());
    s.apply(raise("st-1", Severity::Warn, T0));
    s.apply(raise("st-2", Severity::Critical, T0 + 1));
    s.apply(Transition::Raise {
        key: AlertKey::new(RuleId::RouteDeviation, "truck-d1234/permit-2026-0001"),
        severity: Severity::Warn,
        value: 300.0,
        threshold: 50.0,
        message: String::new(),
        at_ms: T0 + 2,
    });
    s.apply(clear("st-1", T0 + 3));
    let ids = |f: AlertFilter| s.list(&f).iter().map(|a| a.id).collect::<Vec<_>>();
    assert_eq!(ids(AlertFilter::default()), [2, 3, 1]);
    let active = AlertFilter {
        active: Some(true),
        ..AlertFilter::default()
    };
    assert_eq!(ids(active), [2, 3]);
    let truck = AlertFilter {
        entity_prefix: Some("truck-d1234".into()),
        ..AlertFilter::default()
    };
    assert_eq!(ids(truck), [3]);
    let rule = AlertFilter {
        rule: Some(RuleId::StorageTemperature),
        min_severity: Some(Severity::Major),
        ..AlertFilter::default()
    };
    assert_eq!(ids(rule), [2]);
    let limited = AlertFilter {
        limit: Some(1),
        ..AlertFilter::default()
    };
    assert_eq!(ids(limited), [2]);
    let resolved = AlertFilter {
        state: Some(AlertState::Resolved),
        ..AlertFilter::default()
    };
    assert_eq!(ids(resolved), [1]);
}

//! What every registration adapter must do, run against each of them (SQLite in
//! `sqlite.rs`, PostgreSQL in `postgres.rs`'s tests).

#![allow(clippy::unwrap_used)] // a panic is how a conformance check fails

use std::sync::Arc;

use super::{AlarmRegistration, Expected, FeedStore, WebhookRegistration};
use crate::schedule::{AlarmKind, AlarmSpec, DeleteAfterFire};
use crate::signature::Verifier;

pub(crate) fn registration(trigger: &str, next_fire: Option<u64>) -> AlarmRegistration {
    let (namespace, name) = trigger.split_once('/').unwrap();
    AlarmRegistration {
        trigger: trigger.into(),
        namespace: namespace.into(),
        name: name.into(),
        owner_uuid: "u".into(),
        spec: AlarmSpec {
            kind: AlarmKind::Alarm,
            cron: Some("* * * * * *".into()),
            timezone: None,
            minutes: None,
            date: None,
            start_date: None,
            stop_date: None,
            delete_after_fire: DeleteAfterFire::No,
            payload: serde_json::json!({"a": [1, "b"]})
                .as_object()
                .unwrap()
                .clone(),
        },
        next_fire,
        active: true,
        reason: None,
        changed: 1,
        last_fire: None,
    }
}

/// Every check, on an empty store.
pub(crate) async fn run(store: &FeedStore) {
    alarms_round_trip_and_only_active_due_ones_are_listed(store).await;
    put_replaces_an_alarm(store).await;
    updates_apply_only_in_the_expected_state(store).await;
    one_of_many_concurrent_claims_wins(store).await;
    one_webhook_per_trigger_found_by_token_or_trigger(store).await;
}

async fn alarms_round_trip_and_only_active_due_ones_are_listed(store: &FeedStore) {
    store
        .put_alarm(&registration("guest/a", Some(100)))
        .await
        .unwrap();
    store
        .put_alarm(&registration("guest/b", Some(50)))
        .await
        .unwrap();
    store
        .put_alarm(&registration("guest/later", Some(500)))
        .await
        .unwrap();
    let mut paused = registration("guest/paused", Some(10));
    paused.active = false;
    paused.reason = Some("paused".into());
    paused.last_fire = Some(3);
    store.put_alarm(&paused).await.unwrap();
    let mut finished = registration("guest/finished", None);
    finished.active = false;
    store.put_alarm(&finished).await.unwrap();

    assert_eq!(store.get_alarm("guest/paused").await.unwrap(), Some(paused));
    assert_eq!(
        store.get_alarm("guest/finished").await.unwrap(),
        Some(finished)
    );
    assert_eq!(store.get_alarm("guest/none").await.unwrap(), None);
    let due: Vec<_> = store
        .due_alarms(100)
        .await
        .unwrap()
        .into_iter()
        .map(|alarm| alarm.trigger)
        .collect();
    assert_eq!(due, ["guest/b", "guest/a"]);
    assert_eq!(store.earliest_fire().await.unwrap(), Some(50));
    assert!(store.delete_alarm("guest/b").await.unwrap());
    assert!(!store.delete_alarm("guest/b").await.unwrap());
    assert_eq!(store.earliest_fire().await.unwrap(), Some(100));
    for trigger in ["guest/a", "guest/later", "guest/paused", "guest/finished"] {
        assert!(store.delete_alarm(trigger).await.unwrap());
    }
    assert_eq!(store.earliest_fire().await.unwrap(), None);
    assert!(store.due_alarms(u64::MAX).await.unwrap().is_empty());
}

async fn put_replaces_an_alarm(store: &FeedStore) {
    store
        .put_alarm(&registration("guest/r", Some(10)))
        .await
        .unwrap();
    let mut replacement = registration("guest/r", Some(20));
    replacement.owner_uuid = "v".into();
    replacement.spec.cron = Some("0 * * * * *".into());
    store.put_alarm(&replacement).await.unwrap();
    assert_eq!(store.get_alarm("guest/r").await.unwrap(), Some(replacement));
    assert!(store.delete_alarm("guest/r").await.unwrap());
}

async fn updates_apply_only_in_the_expected_state(store: &FeedStore) {
    let stored = registration("guest/u", Some(1_000));
    store.put_alarm(&stored).await.unwrap();
    let mut fired = stored.clone();
    fired.next_fire = Some(2_000);
    fired.last_fire = Some(1_000);
    // A stale expectation (another scheduler already moved it on) changes nothing.
    let stale = Expected {
        next_fire: Some(999),
        active: true,
    };
    assert!(!store.update_alarm_if(&fired, stale).await.unwrap());
    assert_eq!(
        store.get_alarm("guest/u").await.unwrap(),
        Some(stored.clone())
    );
    assert!(
        store
            .update_alarm_if(&fired, Expected::of(&stored))
            .await
            .unwrap()
    );
    assert_eq!(
        store.get_alarm("guest/u").await.unwrap(),
        Some(fired.clone())
    );
    // The same claim again: the alarm has moved on.
    assert!(
        !store
            .update_alarm_if(&fired, Expected::of(&stored))
            .await
            .unwrap()
    );

    // Paused meanwhile: a claim expecting it active misses.
    let mut paused = fired.clone();
    paused.active = false;
    paused.reason = Some("paused".into());
    store.put_alarm(&paused).await.unwrap();
    assert!(
        !store
            .update_alarm_if(&fired, Expected::of(&fired))
            .await
            .unwrap()
    );

    // A finished schedule (no next fire) is matched as such.
    let mut finished = paused.clone();
    finished.next_fire = None;
    finished.reason = Some("schedule finished".into());
    assert!(
        store
            .update_alarm_if(&finished, Expected::of(&paused))
            .await
            .unwrap()
    );
    let mut refused = finished.clone();
    refused.reason = Some("fire refused".into());
    assert!(
        store
            .update_alarm_if(&refused, Expected::of(&finished))
            .await
            .unwrap()
    );
    assert_eq!(
        store.get_alarm("guest/u").await.unwrap(),
        Some(refused.clone())
    );

    // Deleted meanwhile: nothing comes back.
    assert!(store.delete_alarm("guest/u").await.unwrap());
    assert!(
        !store
            .update_alarm_if(&refused, Expected::of(&refused))
            .await
            .unwrap()
    );
    assert_eq!(store.get_alarm("guest/u").await.unwrap(), None);
}

async fn one_of_many_concurrent_claims_wins(store: &FeedStore) {
    let stored = registration("guest/race", Some(5_000));
    store.put_alarm(&stored).await.unwrap();
    let store = Arc::new(store.clone());
    let claims: Vec<_> = (0..8u64)
        .map(|n| {
            let store = Arc::clone(&store);
            let stored = stored.clone();
            tokio::spawn(async move {
                let mut claimed = stored.clone();
                claimed.next_fire = Some(6_000 + n);
                claimed.last_fire = Some(5_000);
                store
                    .update_alarm_if(&claimed, Expected::of(&stored))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut won = 0;
    for claim in claims {
        if claim.await.unwrap() {
            won += 1;
        }
    }
    assert_eq!(won, 1, "exactly one claim of one occurrence wins");
    assert!(store.delete_alarm("guest/race").await.unwrap());
}

async fn one_webhook_per_trigger_found_by_token_or_trigger(store: &FeedStore) {
    let first = WebhookRegistration {
        token: "a".repeat(64),
        namespace: "guest".into(),
        name: "t".into(),
        owner_uuid: "u".into(),
        verifier: Verifier::GitHub { secret: "s".into() },
    };
    store.put_webhook(&first).await.unwrap();
    assert_eq!(
        store.webhook_by_token(&first.token).await.unwrap(),
        Some(first.clone())
    );
    let second = WebhookRegistration {
        token: "b".repeat(64),
        verifier: Verifier::None,
        ..first.clone()
    };
    store.put_webhook(&second).await.unwrap();
    let other = WebhookRegistration {
        token: "c".repeat(64),
        name: "other".into(),
        verifier: Verifier::Slack { secret: "x".into() },
        ..first.clone()
    };
    store.put_webhook(&other).await.unwrap();
    assert_eq!(store.webhook_by_token(&first.token).await.unwrap(), None);
    assert_eq!(
        store.webhook_by_token(&second.token).await.unwrap(),
        Some(second.clone())
    );
    assert_eq!(store.webhook_for("guest", "t").await.unwrap(), Some(second));
    assert_eq!(
        store.webhook_for("guest", "other").await.unwrap(),
        Some(other)
    );
    assert!(store.delete_webhook("guest", "t").await.unwrap());
    assert!(!store.delete_webhook("guest", "t").await.unwrap());
    assert_eq!(store.webhook_for("guest", "t").await.unwrap(), None);
    assert!(store.delete_webhook("guest", "other").await.unwrap());
}

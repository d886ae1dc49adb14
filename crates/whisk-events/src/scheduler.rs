//! The alarm scheduler: fires due alarms through the platform's own fire path.
//!
//! Policy, so that a restart neither doubles nor silently drops a fire:
//! * the next fire time is stored *before* each fire, so a crash during a fire loses at most
//!   that one fire and never repeats it;
//! * an alarm whose stored next fire passed while the platform was down fires **once** when the
//!   scheduler next runs (however many fires were missed), then keeps its own schedule from
//!   then on (the next fire is computed from the present, not from the missed time);
//! * that store is a compare-and-set on the next fire the scheduler read ([`FeedBackend::update_alarm_if`]),
//!   which claims the occurrence: two schedulers racing (a cluster's old leader that has not
//!   noticed it lost its lock, and the new one) cannot both fire it.
//!
//! [`FeedBackend::update_alarm_if`]: crate::store::FeedBackend::update_alarm_if

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value};
use tokio::sync::Notify;
use whisk_controller::Clock;

use crate::schedule::{AlarmKind, DeleteAfterFire};
use crate::store::{AlarmRegistration, Expected, FeedStore, FeedStoreResult};

/// The longest the scheduler sleeps without looking at the store again (it is also woken
/// whenever a registration changes through this process).
pub const MAX_IDLE: Duration = Duration::from_secs(30);

/// How often a cluster's scheduler looks at the store: a registration made through another
/// controller cannot wake it, so it looks every second instead (one indexed query).
pub const CLUSTER_POLL: Duration = Duration::from_secs(1);

/// How long the scheduler waits after its store failed before it tries again.
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// What firing a trigger came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FireOutcome {
    /// The trigger was fired (whether or not a rule was active).
    Fired,
    /// Refused for good (trigger gone, owner's key changed, rights): the alarm is disabled.
    Refused { status: u16, message: String },
    /// Refused for now (throttled, conflict, server trouble): the schedule goes on.
    Failed { message: String },
}

impl FireOutcome {
    /// Maps an HTTP status as the alarms provider does: 4xx other than 408, 409 and 429 is
    /// for good, anything else passes.
    pub fn from_status(status: u16, message: String) -> Self {
        if (400..500).contains(&status) && !matches!(status, 408 | 409 | 429) {
            FireOutcome::Refused { status, message }
        } else {
            FireOutcome::Failed { message }
        }
    }
}

/// How the scheduler reaches triggers; the platform's implementation is
/// [`crate::ControllerTriggers`].
#[async_trait]
pub trait Triggers: Send + Sync + fmt::Debug {
    /// Fires `namespace/name` as the namespace's owner, if its key uuid is still `owner_uuid`.
    async fn fire(
        &self,
        namespace: &str,
        name: &str,
        owner_uuid: &str,
        payload: Map<String, Value>,
    ) -> FireOutcome;

    /// Deletes the trigger (and, with `rules`, the rules attached to it).
    async fn delete(&self, namespace: &str, name: &str, rules: bool) -> Result<(), String>;
}

/// Fires alarms when they are due.
#[derive(Debug, Clone)]
pub struct Scheduler {
    store: FeedStore,
    triggers: Arc<dyn Triggers>,
    clock: Arc<dyn Clock>,
    wake: Arc<Notify>,
    /// The longest sleep between looks at the store.
    max_idle: Duration,
}

impl Scheduler {
    pub fn new(store: FeedStore, triggers: Arc<dyn Triggers>, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            triggers,
            clock,
            wake: Arc::new(Notify::new()),
            max_idle: MAX_IDLE,
        }
    }

    /// The same scheduler, looking at the store at least every `max_idle`.
    pub fn with_max_idle(mut self, max_idle: Duration) -> Self {
        self.max_idle = max_idle;
        self
    }

    /// Wakes the loop to look at the registrations again (after one was created or changed).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Fires every alarm due now; returns how many fired.
    pub async fn run_due(&self) -> FeedStoreResult<usize> {
        let now = self.clock.now_millis();
        let mut fired = 0;
        for mut alarm in self.store.due_alarms(now).await? {
            let claimed = Expected::of(&alarm);
            let scheduled = alarm.next_fire;
            let next = match alarm.spec.next_after(now) {
                Ok(next) => next,
                Err(error) => {
                    tracing::warn!(trigger = %alarm.trigger, %error, "alarm schedule unreadable; disabled");
                    None
                }
            };
            alarm.next_fire = next;
            alarm.last_fire = Some(now);
            if next.is_none() {
                deactivate(&mut alarm, now, "schedule finished");
            }
            // Stored before the fire, and only if no one moved it on since it was read: a crash
            // from here on never fires this occurrence again, and neither does another scheduler.
            if !self.store.update_alarm_if(&alarm, claimed).await? {
                tracing::debug!(trigger = %alarm.trigger, ?scheduled, "occurrence claimed elsewhere or changed");
                continue;
            }
            let outcome = self
                .triggers
                .fire(
                    &alarm.namespace,
                    &alarm.name,
                    &alarm.owner_uuid,
                    alarm.spec.payload.clone(),
                )
                .await;
            match outcome {
                FireOutcome::Fired => {
                    fired += 1;
                    tracing::info!(trigger = %alarm.trigger, scheduled = scheduled.unwrap_or(0), next_fire = ?next, "alarm fired");
                    self.after_last_fire(&alarm).await;
                }
                FireOutcome::Refused { status, message } => {
                    tracing::warn!(trigger = %alarm.trigger, status, %message, "alarm fire refused; alarm disabled");
                    let fired = Expected::of(&alarm);
                    deactivate(
                        &mut alarm,
                        now,
                        &format!("fire refused ({status}): {message}"),
                    );
                    // Unless the owner re-registered it meanwhile.
                    self.store.update_alarm_if(&alarm, fired).await?;
                }
                FireOutcome::Failed { message } => {
                    tracing::warn!(trigger = %alarm.trigger, %message, "alarm fire failed; schedule goes on");
                }
            }
        }
        Ok(fired)
    }

    /// `once` alarms with `deleteAfterFire` remove their trigger (and rules) after the fire.
    async fn after_last_fire(&self, alarm: &AlarmRegistration) {
        if alarm.spec.kind != AlarmKind::Once {
            return;
        }
        let rules = match alarm.spec.delete_after_fire {
            DeleteAfterFire::No => return,
            DeleteAfterFire::Trigger => false,
            DeleteAfterFire::Rules => true,
        };
        match self
            .triggers
            .delete(&alarm.namespace, &alarm.name, rules)
            .await
        {
            Ok(()) => {
                if let Err(error) = self.store.delete_alarm(&alarm.trigger).await {
                    tracing::warn!(trigger = %alarm.trigger, %error, "alarm not removed");
                }
            }
            Err(error) => {
                tracing::warn!(trigger = %alarm.trigger, %error, "deleteAfterFire failed");
            }
        }
    }

    /// Runs until `shutdown` resolves: fires what is due, then sleeps until the earliest next
    /// fire (at most [`MAX_IDLE`], or what [`Scheduler::with_max_idle`] set) or until woken.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            // After a store failure the due alarms are still due: wait a little before the
            // next attempt instead of spinning.
            let floor = match self.run_due().await {
                Ok(_) => Duration::ZERO,
                Err(error) => {
                    tracing::error!(%error, "alarm scheduler cannot update its registrations");
                    RETRY_AFTER_FAILURE
                }
            };
            let wait = match self.store.earliest_fire().await {
                Ok(Some(next)) => {
                    Duration::from_millis(next.saturating_sub(self.clock.now_millis()))
                        .min(self.max_idle)
                }
                Ok(None) => self.max_idle,
                Err(error) => {
                    tracing::error!(%error, "alarm scheduler cannot read its registrations");
                    self.max_idle
                }
            };
            let wait = wait.max(floor);
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(wait) => {}
                () = self.wake.notified() => {}
            }
        }
    }
}

fn deactivate(alarm: &mut AlarmRegistration, now: u64, reason: &str) {
    alarm.active = false;
    alarm.changed = now;
    alarm.reason = Some(reason.to_owned());
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;
    use crate::schedule::AlarmSpec;
    use crate::store::SqliteFeeds;

    #[derive(Debug, Default)]
    struct FakeClock(AtomicU64);

    impl Clock for FakeClock {
        fn now_millis(&self) -> u64 {
            self.0.load(Ordering::SeqCst)
        }
    }

    #[derive(Debug)]
    struct FakeTriggers {
        fired: Mutex<Vec<(String, Map<String, Value>)>>,
        deleted: Mutex<Vec<(String, bool)>>,
        outcome: Mutex<FireOutcome>,
    }

    impl FakeTriggers {
        fn new() -> Arc<Self> {
            Arc::new(Self {
                fired: Mutex::default(),
                deleted: Mutex::default(),
                outcome: Mutex::new(FireOutcome::Fired),
            })
        }
        fn fires(&self) -> usize {
            self.fired.lock().unwrap().len()
        }
    }

    #[async_trait]
    impl Triggers for FakeTriggers {
        async fn fire(
            &self,
            namespace: &str,
            name: &str,
            _owner: &str,
            payload: Map<String, Value>,
        ) -> FireOutcome {
            self.fired
                .lock()
                .unwrap()
                .push((format!("{namespace}/{name}"), payload));
            self.outcome.lock().unwrap().clone()
        }
        async fn delete(&self, namespace: &str, name: &str, rules: bool) -> Result<(), String> {
            self.deleted
                .lock()
                .unwrap()
                .push((format!("{namespace}/{name}"), rules));
            Ok(())
        }
    }

    const T0: u64 = 1_767_225_600_000;

    fn setup() -> (FeedStore, Arc<FakeTriggers>, Arc<FakeClock>, Scheduler) {
        let store = FeedStore::in_memory().unwrap();
        let triggers = FakeTriggers::new();
        let clock = Arc::new(FakeClock(AtomicU64::new(T0)));
        let scheduler = Scheduler::new(store.clone(), triggers.clone(), clock.clone());
        (store, triggers, clock, scheduler)
    }

    fn every_second(trigger: &str) -> AlarmRegistration {
        let params = serde_json::json!({"cron": "* * * * * *", "trigger_payload": {"n": 1}});
        let spec =
            AlarmSpec::from_params(AlarmKind::Alarm, params.as_object().unwrap(), T0).unwrap();
        let (namespace, name) = trigger.split_once('/').unwrap();
        AlarmRegistration {
            trigger: trigger.into(),
            namespace: namespace.into(),
            name: name.into(),
            owner_uuid: "u".into(),
            next_fire: spec.next_after(T0).unwrap(),
            spec,
            active: true,
            reason: None,
            changed: T0,
            last_fire: None,
        }
    }

    #[tokio::test]
    async fn fires_when_due_with_the_payload_and_stores_the_next_time() {
        let (store, triggers, clock, scheduler) = setup();
        store.put_alarm(&every_second("guest/t")).await.unwrap();
        assert_eq!(scheduler.run_due().await.unwrap(), 0);
        clock.0.store(T0 + 1_000, Ordering::SeqCst);
        assert_eq!(scheduler.run_due().await.unwrap(), 1);
        assert_eq!(
            triggers.fired.lock().unwrap()[0],
            (
                "guest/t".into(),
                serde_json::json!({"n": 1}).as_object().unwrap().clone()
            )
        );
        let stored = store.get_alarm("guest/t").await.unwrap().unwrap();
        assert_eq!(stored.next_fire, Some(T0 + 2_000));
        assert_eq!(stored.last_fire, Some(T0 + 1_000));
        // Same instant again: nothing more is due.
        assert_eq!(scheduler.run_due().await.unwrap(), 0);
    }

    #[tokio::test]
    async fn fires_missed_while_down_come_to_one_fire_then_the_schedule_resumes() {
        let (store, triggers, clock, scheduler) = setup();
        store.put_alarm(&every_second("guest/t")).await.unwrap();
        // An hour of downtime: 3600 fires missed.
        clock.0.store(T0 + 3_600_000 + 400, Ordering::SeqCst);
        assert_eq!(scheduler.run_due().await.unwrap(), 1);
        assert_eq!(scheduler.run_due().await.unwrap(), 0);
        assert_eq!(triggers.fires(), 1);
        assert_eq!(
            store.get_alarm("guest/t").await.unwrap().unwrap().next_fire,
            Some(T0 + 3_601_000)
        );
    }

    #[tokio::test]
    async fn the_next_time_is_stored_before_the_fire_so_a_restart_does_not_repeat_it() {
        let (store, triggers, clock, scheduler) = setup();
        store.put_alarm(&every_second("guest/t")).await.unwrap();
        clock.0.store(T0 + 1_000, Ordering::SeqCst);
        scheduler.run_due().await.unwrap();
        // A new scheduler (the platform restarted) at the same instant fires nothing.
        let restarted = Scheduler::new(store.clone(), triggers.clone(), clock.clone());
        assert_eq!(restarted.run_due().await.unwrap(), 0);
        assert_eq!(triggers.fires(), 1);
    }

    #[tokio::test]
    async fn a_refused_fire_disables_the_alarm_and_a_throttled_one_does_not() {
        let (store, triggers, clock, scheduler) = setup();
        store.put_alarm(&every_second("guest/t")).await.unwrap();
        clock.0.store(T0 + 1_000, Ordering::SeqCst);
        *triggers.outcome.lock().unwrap() = FireOutcome::from_status(429, "too many".into());
        scheduler.run_due().await.unwrap();
        assert!(store.get_alarm("guest/t").await.unwrap().unwrap().active);

        clock.0.store(T0 + 2_000, Ordering::SeqCst);
        *triggers.outcome.lock().unwrap() = FireOutcome::from_status(404, "gone".into());
        scheduler.run_due().await.unwrap();
        let stored = store.get_alarm("guest/t").await.unwrap().unwrap();
        assert!(!stored.active);
        assert_eq!(stored.reason.as_deref(), Some("fire refused (404): gone"));
        clock.0.store(T0 + 10_000, Ordering::SeqCst);
        assert_eq!(scheduler.run_due().await.unwrap(), 0);
        assert_eq!(triggers.fires(), 2);
    }

    #[tokio::test]
    async fn once_ends_after_its_fire_and_deletes_what_delete_after_fire_says() {
        let (store, triggers, clock, scheduler) = setup();
        let params = serde_json::json!({"date": T0 + 5_000, "deleteAfterFire": "rules"});
        let spec =
            AlarmSpec::from_params(AlarmKind::Once, params.as_object().unwrap(), T0).unwrap();
        let mut alarm = every_second("guest/once");
        alarm.next_fire = spec.next_after(T0).unwrap();
        alarm.spec = spec;
        store.put_alarm(&alarm).await.unwrap();
        clock.0.store(T0 + 5_000, Ordering::SeqCst);
        assert_eq!(scheduler.run_due().await.unwrap(), 1);
        assert_eq!(
            *triggers.deleted.lock().unwrap(),
            [("guest/once".to_owned(), true)]
        );
        assert_eq!(store.get_alarm("guest/once").await.unwrap(), None);
    }

    #[tokio::test]
    async fn an_alarm_deleted_while_due_is_not_fired() {
        let (store, triggers, clock, scheduler) = setup();
        store.put_alarm(&every_second("guest/t")).await.unwrap();
        clock.0.store(T0 + 1_000, Ordering::SeqCst);
        store.delete_alarm("guest/t").await.unwrap();
        assert_eq!(scheduler.run_due().await.unwrap(), 0);
        assert_eq!(triggers.fires(), 0);
    }

    #[tokio::test]
    async fn an_unreadable_registration_is_an_error_and_fires_nothing() {
        let sqlite = SqliteFeeds::in_memory().unwrap();
        let store = FeedStore::from_backend(Arc::new(sqlite.clone()));
        let triggers = FakeTriggers::new();
        let clock = Arc::new(FakeClock(AtomicU64::new(T0)));
        let scheduler = Scheduler::new(store.clone(), triggers.clone(), clock.clone());
        store.put_alarm(&every_second("guest/t")).await.unwrap();
        sqlite.corrupt_for_tests();
        clock.0.store(T0 + 1_000, Ordering::SeqCst);
        assert!(scheduler.run_due().await.is_err());
        assert_eq!(triggers.fires(), 0);
    }

    #[tokio::test]
    async fn two_schedulers_on_one_store_fire_each_occurrence_once() {
        let (store, triggers, clock, first) = setup();
        let second = Scheduler::new(store.clone(), triggers.clone(), clock.clone());
        store.put_alarm(&every_second("guest/t")).await.unwrap();
        for step in 1..=5u64 {
            clock.0.store(T0 + step * 1_000, Ordering::SeqCst);
            let (a, b) = tokio::join!(first.run_due(), second.run_due());
            assert_eq!(a.unwrap() + b.unwrap(), 1, "step {step}");
        }
        assert_eq!(triggers.fires(), 5);
    }

    #[tokio::test]
    async fn a_refusal_does_not_overwrite_a_registration_made_meanwhile() {
        #[derive(Debug)]
        struct Reregistering {
            store: FeedStore,
        }
        #[async_trait]
        impl Triggers for Reregistering {
            async fn fire(&self, _: &str, _: &str, _: &str, _: Map<String, Value>) -> FireOutcome {
                // The owner updates the feed while the fire is on its way.
                let mut fresh = every_second("guest/t");
                fresh.next_fire = Some(T0 + 60_000);
                self.store.put_alarm(&fresh).await.unwrap();
                FireOutcome::from_status(404, "gone".into())
            }
            async fn delete(&self, _: &str, _: &str, _: bool) -> Result<(), String> {
                Ok(())
            }
        }
        let store = FeedStore::in_memory().unwrap();
        let clock = Arc::new(FakeClock(AtomicU64::new(T0 + 1_000)));
        let triggers = Arc::new(Reregistering {
            store: store.clone(),
        });
        let scheduler = Scheduler::new(store.clone(), triggers, clock);
        store.put_alarm(&every_second("guest/t")).await.unwrap();
        scheduler.run_due().await.unwrap();
        let stored = store.get_alarm("guest/t").await.unwrap().unwrap();
        assert!(stored.active, "{stored:?}");
        assert_eq!(stored.next_fire, Some(T0 + 60_000));
    }

    #[test]
    fn statuses_map_as_the_alarms_provider_does() {
        for status in [400, 401, 403, 404, 413] {
            assert!(matches!(
                FireOutcome::from_status(status, String::new()),
                FireOutcome::Refused { .. }
            ));
        }
        for status in [408, 409, 429, 500, 503] {
            assert!(matches!(
                FireOutcome::from_status(status, String::new()),
                FireOutcome::Failed { .. }
            ));
        }
    }
}

//! Notifications: failure emails over SMTP, at most one per webhook per interval
//! (the rest are counted into the next one), with the throttle persisted in the
//! store so a restart does not reset it. Sending happens off the caller's path.

pub mod email;

use std::sync::Arc;
use std::time::Duration;

use email::{Decision, Mailer, Notification};
pub use email::{NotificationKind, redact_url};

use crate::model::{Delivery, UnixMs, Webhook};
use crate::store::Db;

/// Sends failure notifications. Cheap to clone.
#[derive(Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
}

struct Inner {
    store: Db,
    mailer: Option<Mailer>,
    interval_ms: i64,
}

impl Notifier {
    /// A notifier; without a mailer (no `[smtp]` in config) emails are skipped.
    pub fn new(store: Db, mailer: Option<Mailer>, interval: Duration) -> Notifier {
        Notifier {
            inner: Arc::new(Inner {
                store,
                mailer,
                interval_ms: interval.as_millis().min(i64::MAX as u128) as i64,
            }),
        }
    }

    /// Emails the webhook's `notification_email` about `kind`, unless one was sent
    /// for this webhook within the interval (then it is counted for the next one).
    pub async fn notify(
        &self,
        webhook: &Webhook,
        kind: NotificationKind,
        reason: &str,
        delivery: Option<&Delivery>,
        now: UnixMs,
    ) {
        let (Some(mailer), Some(to)) = (&self.inner.mailer, &webhook.notification_email) else {
            return;
        };
        let interval = self.inner.interval_ms;
        let decided = self
            .inner
            .store
            .update_notify_state(webhook.id.clone(), move |state| {
                let decision = email::decide(state, now, interval);
                (email::after(state, decision, now), decision)
            })
            .await;
        let decision = match decided {
            Ok(decision) => decision,
            Err(e) => {
                // The throttle could not be saved (the store cannot write): decide on
                // what is stored, as an email about a failing webhook still matters.
                tracing::error!(error = %e, "cannot save the notification throttle");
                let state = self
                    .inner
                    .store
                    .notify_state(webhook.id.clone())
                    .await
                    .unwrap_or_default()
                    .unwrap_or_default();
                email::decide(&state, now, interval)
            }
        };
        let Decision::Send { suppressed } = decision else {
            return;
        };
        let msg = Notification {
            to: to.clone(),
            kind,
            tenant: webhook.tenant.clone(),
            webhook_id: webhook.id.clone(),
            webhook_url: webhook.url.clone(),
            reason: reason.to_owned(),
            suppressed,
            at: now,
            delivery_id: delivery.map(|d| d.id.clone()),
            event_id: delivery.map(|d| d.event_id.clone()),
        };
        let mailer = mailer.clone();
        // SMTP can take seconds; never hold the delivery path for it.
        tokio::spawn(async move {
            if let Err(e) = mailer.send(&msg).await {
                tracing::warn!(error = %e, webhook = %msg.webhook_id, "cannot send notification email");
            }
        });
    }
}

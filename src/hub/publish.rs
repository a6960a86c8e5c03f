//! What a state change announces, and the one way it is published: after the change succeeded,
//! under the same lock.

use std::future::Future;

use super::{Audience, ClientId, Hub};

/// One message a change announces: who it is for, and its HTML, rendered once. Another
/// rendering of the same change (JSON for API streams) belongs here too, so that both travel,
/// are stored and are published together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub audience: Audience,
    pub html: String,
}

/// Everything one change announces, in the order it is to be published.
#[derive(Debug, Default, PartialEq, Eq)]
#[must_use]
pub struct Publish {
    messages: Vec<Outgoing>,
}

impl Publish {
    /// A change that shows on no page.
    pub fn nothing() -> Publish {
        Publish::default()
    }

    /// A message for every tab.
    pub fn everyone(html: String) -> Publish {
        Publish::default().and(Audience::Everyone, html)
    }

    /// A message for one tab only.
    pub fn client(client: ClientId, html: String) -> Publish {
        Publish::default().and(Audience::Client(client), html)
    }

    /// One more message, published after the others; no HTML is no message (a change that
    /// shows nothing new, such as an import batch between two progress updates).
    pub fn and(mut self, audience: Audience, html: String) -> Publish {
        if !html.is_empty() {
            self.messages.push(Outgoing { audience, html });
        }
        self
    }
}

impl Hub {
    /// Makes a state change and publishes what it announces: `work` starts under the change
    /// lock, and its messages are published under the same lock once it has succeeded; a change
    /// that fails publishes nothing. Features go through `crate::change`, which runs their
    /// store writes as `work`.
    pub(crate) async fn commit<T, E, W, F>(&self, work: W) -> Result<T, E>
    where
        W: FnOnce() -> F,
        F: Future<Output = Result<(T, Publish), E>>,
    {
        let change = self.change().await;
        let (value, publish) = work().await?;
        for message in publish.messages {
            change.publish(message.audience, &message.html);
        }
        Ok(value)
    }
}

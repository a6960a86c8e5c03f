//! What a state change announces, and the one way it is published: after the change succeeded,
//! under the same lock.

use std::future::Future;

use super::json::JsonEvent;
use super::{Audience, ClientId, Hub};

/// One message a change announces: who it is for, its HTML (rendered once) and, on a message
/// for everyone, its JSON event (serialized once). Both renderings travel, are stored and are
/// published together, as one log entry with one sequence number, so that page streams and
/// JSON streams never disagree about what happened or in what order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub audience: Audience,
    /// The page's partials; empty when the change shows on no page (then `json` is set).
    pub html: String,
    /// The change as JSON streams send it. JSON streams read only what is for everyone, so a
    /// message for one tab never has one.
    pub json: Option<JsonEvent>,
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

    /// How many messages the change announces.
    pub fn count(&self) -> usize {
        self.messages.len()
    }

    /// The messages, in order: what a shared log stores.
    pub fn into_messages(self) -> Vec<Outgoing> {
        self.messages
    }

    /// One more message, published after the others; no HTML is no message (a change that
    /// shows nothing new, such as an import batch between two progress updates).
    pub fn and(mut self, audience: Audience, html: String) -> Publish {
        if !html.is_empty() {
            self.messages.push(Outgoing {
                audience,
                html,
                json: None,
            });
        }
        self
    }

    /// The change's JSON event, in the same message as its HTML for everyone (the last one, if
    /// it has none yet), or in a message of its own when the change shows on no page.
    pub fn with_json(mut self, event: JsonEvent) -> Publish {
        let last = self
            .messages
            .iter_mut()
            .rfind(|m| m.audience == Audience::Everyone)
            .filter(|m| m.json.is_none());
        match last {
            Some(message) => message.json = Some(event),
            None => self.messages.push(Outgoing {
                audience: Audience::Everyone,
                html: String::new(),
                json: Some(event),
            }),
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
            change.append(message);
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    fn event(n: u32) -> JsonEvent {
        JsonEvent::new("t", "t.changed", &n)
    }

    #[test]
    fn json_joins_the_last_message_for_everyone() {
        let me = ClientId(Uuid::new_v4());
        let publish = Publish::everyone("<p>a</p>".into())
            .and(Audience::Client(me), "<p>mine</p>".into())
            .with_json(event(1));
        assert_eq!(publish.messages[0].json, Some(event(1)));
        assert_eq!(publish.messages[1].json, None);
        assert_eq!(publish.messages.len(), 2);
    }

    #[test]
    fn json_without_a_page_message_gets_its_own() {
        let publish = Publish::nothing().with_json(event(1)).with_json(event(2));
        let shown: Vec<_> = publish
            .messages
            .iter()
            .map(|m| (m.audience, m.html.as_str(), m.json.clone()))
            .collect();
        assert_eq!(
            shown,
            [
                (Audience::Everyone, "", Some(event(1))),
                (Audience::Everyone, "", Some(event(2))),
            ]
        );
    }
}

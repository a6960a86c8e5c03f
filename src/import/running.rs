//! Which tabs have an import running, and how to stop one: one import per tab at a time.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::hub::ClientId;

#[derive(Clone, Default)]
pub struct Running {
    inner: Arc<Mutex<HashMap<ClientId, Arc<AtomicBool>>>>,
}

/// Held by a running import; dropping it (however the import ends) frees the tab.
pub struct Ticket {
    running: Running,
    client: ClientId,
    cancel: Arc<AtomicBool>,
}

impl Running {
    /// A ticket for `client`'s import, or `None` if one is already running.
    pub fn start(&self, client: ClientId) -> Option<Ticket> {
        let mut map = self.inner.lock().expect("running lock");
        if map.contains_key(&client) {
            return None;
        }
        let cancel = Arc::new(AtomicBool::new(false));
        map.insert(client, cancel.clone());
        Some(Ticket {
            running: self.clone(),
            client,
            cancel,
        })
    }

    /// Asks `client`'s running import to stop; `false` if none runs.
    pub fn cancel(&self, client: ClientId) -> bool {
        match self.inner.lock().expect("running lock").get(&client) {
            Some(flag) => {
                flag.store(true, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    pub fn is_running(&self, client: ClientId) -> bool {
        self.inner
            .lock()
            .expect("running lock")
            .contains_key(&client)
    }
}

impl Ticket {
    pub fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.running
            .inner
            .lock()
            .expect("running lock")
            .remove(&self.client);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn one_import_per_tab_until_the_ticket_drops() {
        let running = Running::default();
        let tab = ClientId(Uuid::new_v4());
        let ticket = running.start(tab).unwrap();
        assert!(running.start(tab).is_none());
        assert!(running.start(ClientId(Uuid::new_v4())).is_some());
        assert!(!ticket.cancelled());
        assert!(running.cancel(tab));
        assert!(ticket.cancelled());
        drop(ticket);
        assert!(!running.is_running(tab));
        assert!(!running.cancel(tab));
        assert!(running.start(tab).is_some());
    }
}

//! The tab ids a page issues, signed for the page's session, so that loading a page and
//! connecting its stream write nothing to the store.
//!
//! A tab id stays a UUID (version 8, the one for custom layouts): 64 random bits and, in the
//! rest, an HMAC-SHA256 of the session and those bits under a key kept in the store (so ids
//! survive restarts). Whoever presents it with that session's cookie owns it; nobody else can
//! make one. Ids an API caller picks (any other version) are bound in the store on first use,
//! as before (`session.rs`).

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use uuid::{Builder, Uuid};

use crate::hub::ClientId;

/// The length of a fresh signing key.
pub const KEY_BYTES: usize = 32;

#[derive(Clone)]
pub struct TabIds {
    mac: Hmac<Sha256>,
}

impl TabIds {
    pub fn new(key: &[u8]) -> TabIds {
        TabIds {
            mac: Hmac::new_from_slice(key).expect("HMAC takes a key of any length"),
        }
    }

    /// A fresh key, for a store that has none yet.
    pub fn fresh_key() -> [u8; KEY_BYTES] {
        let mut key = [0; KEY_BYTES];
        getrandom::fill(&mut key).expect("the system's random source");
        key
    }

    /// A new tab id for `session`.
    pub fn issue(&self, session: Uuid) -> ClientId {
        let mut nonce = [0; 8];
        getrandom::fill(&mut nonce).expect("the system's random source");
        self.signed(session, nonce)
    }

    /// Whether `client` is one of Herald's signed tab ids (for some session): those are never
    /// claimed through the store.
    pub fn is_signed(client: ClientId) -> bool {
        client.0.get_version_num() == 8
    }

    /// Whether `client` was issued for `session`.
    pub fn signed_for(&self, client: ClientId, session: Uuid) -> bool {
        let nonce = client.0.as_bytes()[..8].try_into().expect("8 bytes");
        let expected = self.signed(session, nonce);
        // Constant time, so timing tells nothing about how much of a forged id was right.
        let differ = expected
            .0
            .as_bytes()
            .iter()
            .zip(client.0.as_bytes())
            .fold(0, |acc, (a, b)| acc | (a ^ b));
        Self::is_signed(client) && differ == 0
    }

    /// The id for `session` and `nonce`: the nonce, then the tag, less the 6 bits the UUID's
    /// version and variant take.
    fn signed(&self, session: Uuid, mut nonce: [u8; 8]) -> ClientId {
        // The version's nibble is part of what is signed, so an id read back verifies.
        nonce[6] = (nonce[6] & 0x0f) | 0x80;
        let mut mac = self.mac.clone();
        mac.update(session.as_bytes());
        mac.update(&nonce);
        let tag = mac.finalize().into_bytes();
        let mut bytes = [0; 16];
        bytes[..8].copy_from_slice(&nonce);
        bytes[8..].copy_from_slice(&tag[..8]);
        ClientId(Builder::from_custom_bytes(bytes).into_uuid())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issued_id_is_a_uuid_that_only_its_session_owns() {
        let tabs = TabIds::new(&TabIds::fresh_key());
        let (alice, mallory) = (Uuid::new_v4(), Uuid::new_v4());
        let tab = tabs.issue(alice);
        assert!(TabIds::is_signed(tab));
        assert_eq!(tab.to_string().parse::<ClientId>(), Ok(tab));
        assert!(tabs.signed_for(tab, alice));
        assert!(!tabs.signed_for(tab, mallory));
        assert_ne!(tabs.issue(alice), tab, "every page gets a new tab");
    }

    #[test]
    fn the_same_key_verifies_after_a_restart_and_another_does_not() {
        let key = TabIds::fresh_key();
        let session = Uuid::new_v4();
        let tab = TabIds::new(&key).issue(session);
        assert!(TabIds::new(&key).signed_for(tab, session));
        assert!(!TabIds::new(&TabIds::fresh_key()).signed_for(tab, session));
    }

    #[test]
    fn a_changed_bit_or_another_version_is_refused() {
        let tabs = TabIds::new(&TabIds::fresh_key());
        let session = Uuid::new_v4();
        let tab = tabs.issue(session);
        for bit in (0..128).filter(|b| !(48..52).contains(b) && !(64..66).contains(b)) {
            let flipped = ClientId(Uuid::from_u128(tab.0.as_u128() ^ (1u128 << (127 - bit))));
            assert!(!tabs.signed_for(flipped, session), "bit {bit}");
        }
        assert!(!TabIds::is_signed(ClientId(Uuid::new_v4())));
        assert!(!tabs.signed_for(ClientId(Uuid::new_v4()), session));
    }
}

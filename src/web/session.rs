//! Sessions (a cookie) and the tabs (client ids) that belong to them.
//!
//! A session is a random id in a cookie, stored nowhere. The tab ids pages issue are signed for
//! their session (`tab_ids.rs`), so a page load or a stream writes nothing. An id an API caller
//! picks is bound to the session that first uses it, in the store; a binding unused for
//! [`FORGET_CLIENTS_AFTER`](crate::FORGET_CLIENTS_AFTER) is forgotten. Either way ownership
//! survives a restart: after a deploy every open tab reconnects instead of getting 404.

use axum::extract::FromRequestParts;
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use uuid::Uuid;

use super::client::Client;
use super::error::ApiError;
use super::id;
use super::negotiate::Wants;
use super::tab_ids::TabIds;
use crate::AppState;
use crate::clock;
use crate::hub::ClientId;
use crate::store::{StoreResult, call};

pub const COOKIE_NAME: &str = "herald_session";

pub trait SessionStore {
    /// Binds `client` to `session` unless it is bound already; returns the owning session.
    fn claim_client(&self, client: ClientId, session: Uuid, now_secs: i64) -> StoreResult<Uuid>;
    /// The key tab ids are signed with: the stored one, or `fresh` stored now if there is none.
    fn tab_key(&self, fresh: &[u8]) -> StoreResult<Vec<u8>>;
    /// Forgets bindings not used since `cutoff` (Unix seconds); returns how many.
    fn forget_clients_before(&self, cutoff_secs: i64) -> StoreResult<usize>;
}

/// The request's session, or a new one that the response must set as a cookie.
pub struct Session {
    pub id: Uuid,
    pub is_new: bool,
    /// The browser reached Herald over HTTPS, so the cookie may only travel over HTTPS.
    pub secure: bool,
}

impl Session {
    /// The session of a request from `client` with these headers.
    pub fn of(headers: &HeaderMap, client: Client) -> Session {
        let (id, is_new) = match cookie_session(headers) {
            Some(id) => (id, false),
            None => (Uuid::new_v4(), true),
        };
        Session {
            id,
            is_new,
            secure: client.https,
        }
    }

    /// The `Set-Cookie` header to send, if the session is new.
    pub fn set_cookie(&self) -> Option<(axum::http::HeaderName, HeaderValue)> {
        self.is_new.then(|| {
            let value = format!(
                "{COOKIE_NAME}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age=31536000{}",
                self.id.as_hyphenated(),
                if self.secure { "; Secure" } else { "" },
            );
            (
                SET_COOKIE,
                HeaderValue::from_str(&value).expect("cookie is ASCII"),
            )
        })
    }

    /// Makes sure `client` belongs to this session: a tab id signed for it, or an id the store
    /// binds to it, claimed now if nobody holds it yet.
    pub async fn own(&self, state: &AppState, client: &str) -> Result<ClientId, ApiError> {
        let client: ClientId = client
            .parse()
            .map_err(|_| id::malformed("client", client, "UUIDs"))?;
        if TabIds::is_signed(client) {
            return match state.tabs.signed_for(client, self.id) {
                true => Ok(client),
                false => Err(id::missing("client", client)),
            };
        }
        let session = self.id;
        let owner = call(&state.store, move |s| {
            s.claim_client(client, session, clock::now_ms() / 1000)
        })
        .await?;
        if owner == session {
            Ok(client)
        } else {
            Err(id::missing("client", client))
        }
    }
}

/// The tab a route's `{client}` names, owned by the request's session (claimed by it if nobody
/// holds it yet); someone else's tab, or an id that cannot be one, is a 404.
pub struct Tab {
    pub client: ClientId,
    pub session: Session,
}

impl Tab {
    /// `response`, with the session's cookie if the session is new.
    pub fn answer(&self, mut response: Response) -> Response {
        if let Some((name, value)) = self.session.set_cookie() {
            response.headers_mut().insert(name, value);
        }
        response
    }
}

impl FromRequestParts<AppState> for Tab {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let text = id::segment(parts, state).await?;
        let session = Session::of(&parts.headers, Client::of_parts(parts));
        match session.own(state, &text).await {
            Ok(client) => Ok(Tab { client, session }),
            Err(e) => Err(Wants::of(&parts.headers).error(e)),
        }
    }
}

fn cookie_session(headers: &HeaderMap) -> Option<Uuid> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .and_then(|(_, value)| Uuid::parse_str(value).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_session_among_other_cookies() {
        let id = Uuid::new_v4();
        let mut headers = HeaderMap::new();
        headers.insert(
            COOKIE,
            format!("a=1; {COOKIE_NAME}={id}; b=2").parse().unwrap(),
        );
        let session = Session::of(&headers, Client::default());
        assert_eq!(session.id, id);
        assert!(session.set_cookie().is_none());
    }

    #[test]
    fn a_missing_or_forged_cookie_starts_a_new_session() {
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, format!("{COOKIE_NAME}=not-a-uuid").parse().unwrap());
        let session = Session::of(&headers, Client::default());
        assert!(session.is_new);
        let (_, cookie) = session.set_cookie().unwrap();
        let cookie = cookie.to_str().unwrap();
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"));
        assert!(!cookie.contains("Secure"), "{cookie}");
    }

    #[test]
    fn a_browser_on_https_gets_a_secure_cookie() {
        let https = Client {
            addr: None,
            https: true,
        };
        let (_, cookie) = Session::of(&HeaderMap::new(), https).set_cookie().unwrap();
        assert!(cookie.to_str().unwrap().ends_with("; Secure"), "{cookie:?}");
    }
}

//! Bearer-token authentication (RFC 6750 2.1) for the Verifier service, both sides.
//!
//! Owns the server interceptor `BearerAuth`, which refuses a call without the configured token
//! with UNAUTHENTICATED, and the client interceptor `AttachToken`, which adds the header. The
//! comparison takes the same time wherever the first wrong byte is, so the token cannot be
//! guessed byte by byte from response times. A call let through carries its `Caller` (the
//! token's, or the anonymous one) for the rate limit (`limits`). It does not read the token from the environment
//! (the CLI reads `ROLLCALL_TOKEN`) and does not guard health or reflection (see `server`).

use std::sync::Arc;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::{Request, Status};

use crate::error::Error;
use crate::limits::Caller;

/// The metadata key (HTTP/2 header names are lowercase, RFC 9113 8.2.1).
const AUTHORIZATION: &str = "authorization";
/// The scheme; compared case-insensitively (RFC 9110 11.1).
const SCHEME: &str = "bearer";

/// Server side: with a token configured, every call must carry `authorization: Bearer <token>`.
/// Without one, every call passes.
#[derive(Clone)]
pub struct BearerAuth {
    expected: Option<Arc<[u8]>>,
}

impl BearerAuth {
    /// Guards calls with `token`; `None` lets every call through.
    pub fn new(token: Option<String>) -> BearerAuth {
        BearerAuth {
            expected: token.map(|t| Arc::from(t.into_bytes())),
        }
    }

    /// Whether a token is required.
    pub fn is_enabled(&self) -> bool {
        self.expected.is_some()
    }

    /// The caller a call with `header` is counted against, or `None` when it is refused.
    /// The caller an `authorization` header value (`Bearer <token>`) names, or `None` when the
    /// token is required and missing or wrong. Also used by the HTTP API.
    pub fn check(&self, header: Option<&[u8]>) -> Option<Caller> {
        let Some(expected) = &self.expected else {
            return Some(Caller::ANONYMOUS);
        };
        let presented = strip_scheme(header?)?;
        constant_time_eq(presented, expected).then(|| Caller::for_token(expected))
    }
}

impl BearerAuth {
    /// Like `check`, for a bare secret without the `Bearer` scheme (the HTTP API's
    /// `x-reacher-secret` header).
    pub fn check_secret(&self, secret: Option<&[u8]>) -> Option<Caller> {
        let Some(expected) = &self.expected else {
            return Some(Caller::ANONYMOUS);
        };
        let presented = secret?.trim_ascii();
        constant_time_eq(presented, expected).then(|| Caller::for_token(expected))
    }
}

impl std::fmt::Debug for BearerAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the token.
        f.debug_struct("BearerAuth")
            .field("enabled", &self.is_enabled())
            .finish()
    }
}

impl Interceptor for BearerAuth {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let header = request
            .metadata()
            .get(AUTHORIZATION)
            .map(|v| v.as_encoded_bytes());
        match self.check(header) {
            Some(caller) => {
                request.extensions_mut().insert(caller);
                Ok(request)
            }
            None => Err(Status::unauthenticated(
                "missing or wrong bearer token (send `authorization: Bearer <token>`)",
            )),
        }
    }
}

/// `Bearer <token>` -> `<token>`: the scheme is case-insensitive, then one or more spaces.
fn strip_scheme(header: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = header.split_at_checked(SCHEME.len())?;
    if !scheme.eq_ignore_ascii_case(SCHEME.as_bytes()) || rest.first() != Some(&b' ') {
        return None;
    }
    let token = rest.trim_ascii_start();
    (!token.is_empty()).then_some(token)
}

/// Compares every byte up to the longer length whatever the contents, so the time taken says
/// nothing about where the first difference is (only about the lengths).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= std::hint::black_box(x ^ y);
    }
    diff == 0
}

/// Client side: adds `authorization: Bearer <token>` to every call when a token is set.
#[derive(Clone)]
pub struct AttachToken {
    header: Option<MetadataValue<Ascii>>,
}

impl AttachToken {
    /// Prepares the header; fails when the token is empty or not visible ASCII (RFC 6750 2.1
    /// b64token), which no server could have been configured to expect.
    pub fn new(token: Option<String>) -> Result<AttachToken, Error> {
        let header = match token {
            None => None,
            Some(t) if t.is_empty() || !t.bytes().all(|b| b.is_ascii_graphic()) => {
                return Err(Error::InvalidToken);
            }
            Some(t) => {
                let mut value: MetadataValue<Ascii> = format!("Bearer {t}")
                    .parse()
                    .map_err(|_| Error::InvalidToken)?;
                value.set_sensitive(true);
                Some(value)
            }
        };
        Ok(AttachToken { header })
    }
}

impl std::fmt::Debug for AttachToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttachToken")
            .field("enabled", &self.header.is_some())
            .finish()
    }
}

impl Interceptor for AttachToken {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.header {
            request.metadata_mut().insert(AUTHORIZATION, value.clone());
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(auth: &mut BearerAuth, header: Option<&str>) -> Result<(), tonic::Code> {
        let mut request = Request::new(());
        if let Some(h) = header {
            request
                .metadata_mut()
                .insert(AUTHORIZATION, h.parse().unwrap());
        }
        let passed = auth.call(request).map_err(|s| s.code())?;
        // Every call let through says whom it counts against.
        assert!(passed.extensions().get::<Caller>().is_some());
        Ok(())
    }

    #[test]
    fn token_is_required_when_configured() {
        let mut auth = BearerAuth::new(Some("s3cret-token".into()));
        let denied = Err(tonic::Code::Unauthenticated);
        assert_eq!(call(&mut auth, Some("Bearer s3cret-token")), Ok(()));
        assert_eq!(call(&mut auth, Some("bearer s3cret-token")), Ok(()));
        assert_eq!(call(&mut auth, Some("BEARER   s3cret-token")), Ok(()));
        assert_eq!(call(&mut auth, None), denied);
        assert_eq!(call(&mut auth, Some("Bearer s3cret-toke")), denied);
        assert_eq!(call(&mut auth, Some("Bearer s3cret-token2")), denied);
        assert_eq!(call(&mut auth, Some("Bearer S3cret-token")), denied);
        assert_eq!(call(&mut auth, Some("Basic s3cret-token")), denied);
        assert_eq!(call(&mut auth, Some("Bearers3cret-token")), denied);
        assert_eq!(call(&mut auth, Some("s3cret-token")), denied);
        assert_eq!(call(&mut auth, Some("Bearer ")), denied);
    }

    #[test]
    fn no_token_configured_lets_everything_through() {
        let mut auth = BearerAuth::new(None);
        assert_eq!(call(&mut auth, None), Ok(()));
        assert_eq!(call(&mut auth, Some("Bearer anything")), Ok(()));
    }

    #[test]
    fn constant_time_eq_is_plain_equality() {
        assert!(constant_time_eq(b"", b""));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"ab\0", b"ab"));
        assert!(!constant_time_eq(b"", b"a"));
    }

    #[test]
    fn attach_token_sets_the_header_and_refuses_bad_tokens() {
        let mut attach = AttachToken::new(Some("t0k".into())).unwrap();
        let request = attach.call(Request::new(())).unwrap();
        assert_eq!(
            request
                .metadata()
                .get(AUTHORIZATION)
                .unwrap()
                .to_str()
                .unwrap(),
            "Bearer t0k"
        );
        let mut none = AttachToken::new(None).unwrap();
        assert!(none.call(Request::new(())).unwrap().metadata().is_empty());
        assert!(matches!(
            AttachToken::new(Some("a b".into())),
            Err(Error::InvalidToken)
        ));
        assert!(matches!(
            AttachToken::new(Some("line\nbreak".into())),
            Err(Error::InvalidToken)
        ));
        assert!(matches!(
            AttachToken::new(Some(String::new())),
            Err(Error::InvalidToken)
        ));
        // Debug never shows the token.
        assert!(!format!("{attach:?}").contains("t0k"));
        assert!(!format!("{:?}", BearerAuth::new(Some("t0k".into()))).contains("t0k"));
    }
}

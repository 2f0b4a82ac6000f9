//! BigCommerce emulator (CONTRACT.md §8): the REST API the gateway calls (`api`) and one
//! storefront per channel that accepts `customer_login` JWTs (`storefront`).
//!
//! State lives in memory behind one `std::sync::Mutex`, never held across an `.await`.
//! The emulator shares only `bigcommerce::wire` with the gateway: token verification here
//! is written from CONTRACT.md §5.2, not from the gateway's minting code, so a bug in one
//! cannot hide in the other.

mod api;
mod channels;
mod faults;
mod hooks;
mod items;
mod query;
mod rate_limit;
mod state;
mod storefront;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use time::OffsetDateTime;

use bigcommerce_wire::{CustomerFull, CustomerGroupFull, CustomerPost, ErrorResponse};

pub use faults::{ApiCall, Fault, FaultConfig, FaultRule, When};
pub use hooks::{BIGCOMMERCE_RETRY_DELAYS, WebhookDelivery};
pub use state::{DuplicateEmailAnswer, StoredCustomer};

/// How the emulator is set up. Build it with [`EmulatorConfig::new`] and adjust fields.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    pub store_hash: String,
    /// The `X-Auth-Token` the API accepts.
    pub access_token: String,
    /// `iss` of accepted `customer_login` JWTs.
    pub client_id: String,
    /// HS256 key of accepted `customer_login` JWTs.
    pub client_secret: String,
    /// Requests per window (CONTRACT.md §6: 150 on Standard/Plus).
    pub rate_limit_quota: u32,
    /// Window length (CONTRACT.md §6: 30 s).
    pub rate_limit_window: Duration,
    /// BigCommerce's clock = system clock + skew (`/v2/time`, `iat` checks).
    pub clock_skew_secs: i64,
    /// Storefront channels; channel 1 always exists on a real store (CONTRACT.md §4).
    pub channels: Vec<EmulatedChannel>,
    /// Where the sign-in page loads the merchant's SSO button script from.
    pub gateway_url: Option<url::Url>,
    /// Shown in the storefront header.
    pub store_name: String,
    /// Paths below `/stores/{store_hash}/` (prefixes, e.g. `v2/customer_groups`) answered
    /// with `403`, as BigCommerce does for a token lacking the scope a path needs
    /// (CONTRACT.md §8 item 2). Empty: the token has every scope.
    pub forbidden_paths: Vec<String>,
    /// The 422 body for a taken email on `POST /v3/customers`.
    pub duplicate_email_answer: DuplicateEmailAnswer,
    /// Faults injected at random from the start ([`Emulator::set_faults`] changes them).
    pub faults: FaultConfig,
    /// Waits before each retry of a failed webhook delivery; when they run out the hook
    /// is deactivated. BigCommerce's schedule by default (60 s … 24 h); tests shorten it.
    pub webhook_retry_delays: Vec<Duration>,
}

/// One storefront channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmulatedChannel {
    pub id: i64,
    pub name: String,
    /// Whether global accounts (`channel_ids: null`) may sign in here (CONTRACT.md §2.2).
    pub allow_global_logins: bool,
}

impl EmulatorConfig {
    pub fn new(
        store_hash: impl Into<String>,
        access_token: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Self {
        Self {
            store_hash: store_hash.into(),
            access_token: access_token.into(),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            rate_limit_quota: 150,
            rate_limit_window: Duration::from_secs(30),
            clock_skew_secs: 0,
            // allow_global_logins is true by default only for channel 1 (CONTRACT.md §2.2).
            channels: vec![EmulatedChannel {
                id: 1,
                name: "Default storefront".to_owned(),
                allow_global_logins: true,
            }],
            gateway_url: None,
            store_name: "Emulated Store".to_owned(),
            forbidden_paths: Vec::new(),
            duplicate_email_answer: DuplicateEmailAnswer::default(),
            faults: FaultConfig::default(),
            webhook_retry_delays: hooks::bigcommerce_retry_delays(),
        }
    }
}

/// Why the storefront refused a `customer_login` token (CONTRACT.md §5.2, §8 item 15).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefusalReason {
    /// Not three base64url parts, or a header we cannot read.
    Malformed,
    /// `alg` other than HS256 (including `none`).
    WrongAlgorithm,
    /// HMAC does not verify with the client secret.
    BadSignature,
    /// Signature fine but claims missing or of the wrong type.
    InvalidClaims,
    MissingJti,
    ReplayedJti,
    WrongIssuer,
    WrongOperation,
    WrongStoreHash,
    /// `now − iat > 30 s`.
    StaleIat,
    /// `iat − now > 2 s`: a token from a signer whose clock runs ahead (CONTRACT.md §5.2
    /// leaves the future tolerance unconfirmed; we take the strict side).
    IatInTheFuture,
    UnknownCustomer,
    /// `channel_id` (default 1) is not this storefront's channel.
    WrongChannel,
    /// The customer may not sign in on this channel (`channel_ids` / `allow_global_logins`).
    ChannelNotAllowed,
    /// `request_ip` differs from the client address (or the address is unknown).
    RequestIpMismatch,
    /// `redirect_to` is not a relative path.
    BadRedirect,
}

impl RefusalReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::WrongAlgorithm => "wrong_algorithm",
            Self::BadSignature => "bad_signature",
            Self::InvalidClaims => "invalid_claims",
            Self::MissingJti => "missing_jti",
            Self::ReplayedJti => "replayed_jti",
            Self::WrongIssuer => "wrong_issuer",
            Self::WrongOperation => "wrong_operation",
            Self::WrongStoreHash => "wrong_store_hash",
            Self::StaleIat => "stale_iat",
            Self::IatInTheFuture => "iat_in_the_future",
            Self::UnknownCustomer => "unknown_customer",
            Self::WrongChannel => "wrong_channel",
            Self::ChannelNotAllowed => "channel_not_allowed",
            Self::RequestIpMismatch => "request_ip_mismatch",
            Self::BadRedirect => "bad_redirect",
        }
    }
}

/// Outcome of one `GET /login/token/{jwt}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginOutcome {
    Ok {
        customer_id: i64,
        channel_id: i64,
    },
    /// A valid token whose `redirect_to` is the logout URL (CONTRACT.md §5.2).
    LoggedOut {
        customer_id: i64,
        channel_id: i64,
    },
    Refused {
        reason: RefusalReason,
    },
}

/// One call to a storefront's `/login/token/{jwt}`, for tests to inspect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginAttempt {
    /// The storefront channel that received the request.
    pub storefront_channel_id: i64,
    /// The token's `jti` when the signature verified (never the token itself).
    pub jti: Option<String>,
    pub outcome: LoginOutcome,
}

impl LoginAttempt {
    pub fn is_ok(&self) -> bool {
        matches!(self.outcome, LoginOutcome::Ok { .. })
    }
}

/// A local BigCommerce store. Cloning shares the same store.
#[derive(Clone)]
pub struct Emulator {
    inner: Arc<Inner>,
}

struct Inner {
    config: EmulatorConfig,
    state: Mutex<State>,
    /// Delivers webhooks.
    http: reqwest::Client,
}

struct State {
    store: state::Store,
    rate: rate_limit::RateLimiter,
    api_requests: u64,
    /// Of those, refused for the quota (429).
    rate_limited: u64,
    clock_skew_secs: i64,
    /// Every `jti` a storefront has seen: the token is consumed by the GET (CONTRACT.md §5.2).
    seen_jti: HashSet<String>,
    login_attempts: Vec<LoginAttempt>,
    /// `SHOP_SESSION_TOKEN` value → (channel id → customer id). Channels are separate hosts,
    /// but a browser shares cookies across ports of one host, so one session may hold
    /// sign-ins for several channels.
    sessions: HashMap<String, HashMap<i64, i64>>,
    faults: faults::FaultState,
    /// Channel id → the URL of its site (`GET /v3/channels/{id}/site`).
    sites: channels::Sites,
    hooks: hooks::Hooks,
}

impl Emulator {
    pub fn new(config: EmulatorConfig) -> Self {
        let mut store = state::Store::new(
            OffsetDateTime::now_utc() + time::Duration::seconds(config.clock_skew_secs),
        );
        store.duplicate_email_answer = config.duplicate_email_answer;
        let state = State {
            store,
            rate: rate_limit::RateLimiter::new(config.rate_limit_quota, config.rate_limit_window),
            api_requests: 0,
            rate_limited: 0,
            clock_skew_secs: config.clock_skew_secs,
            seen_jti: HashSet::new(),
            login_attempts: Vec::new(),
            sessions: HashMap::new(),
            faults: faults::FaultState::new(config.faults.clone()),
            sites: channels::Sites::new(),
            hooks: hooks::Hooks::default(),
        };
        // No redirects: a destination that redirects has not acknowledged the callback.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        Self {
            inner: Arc::new(Inner {
                config,
                state: Mutex::new(state),
                http,
            }),
        }
    }

    pub fn config(&self) -> &EmulatorConfig {
        &self.inner.config
    }

    /// REST API: `/stores/{store_hash}/v3/...` and `/stores/{store_hash}/v2/...`.
    pub fn api_router(&self) -> axum::Router {
        api::router(self.clone())
    }

    /// The storefront of one channel; serve each channel on its own listener. Serve with
    /// `into_make_service_with_connect_info::<SocketAddr>()` so `request_ip` can be checked.
    /// Without `ConnectInfo`, tokens carrying `request_ip` are refused (never waved through).
    /// Do not wrap it in a trace layer that logs the URI: `/login/token/{jwt}` carries the token.
    pub fn storefront_router(&self, channel_id: i64) -> axum::Router {
        storefront::router(self.clone(), channel_id)
    }

    /// All customers, ids ascending.
    pub fn customers(&self) -> Vec<CustomerFull> {
        self.lock()
            .store
            .customers
            .values()
            .map(|c| c.full.clone())
            .collect()
    }

    /// Customers with what the API accepts but never returns (e.g. `trigger_account_created_notification`).
    pub fn stored_customers(&self) -> Vec<StoredCustomer> {
        self.lock().store.customers.values().cloned().collect()
    }

    pub fn customer_groups(&self) -> Vec<CustomerGroupFull> {
        self.lock().store.groups.clone()
    }

    /// Create a customer with the same rules as `POST /v3/customers`, bypassing auth and
    /// rate limits.
    pub fn try_seed_customer(&self, post: CustomerPost) -> Result<CustomerFull, ErrorResponse> {
        let body = serde_json::to_value(vec![post]).map_err(|e| {
            state::error(
                422,
                "Create customers failed.",
                state::ERROR_TYPE_SHORT,
                [("0".to_owned(), e.to_string())].into(),
            )
        })?;
        let now = self.now();
        let mut st = self.lock();
        let created = st.store.create(&body, &self.inner.config.channels, now)?;
        created.into_iter().next().map(|c| c.full).ok_or_else(|| {
            state::error(
                422,
                "Create customers failed.",
                state::ERROR_TYPE_SHORT,
                Default::default(),
            )
        })
    }

    /// Like [`Self::try_seed_customer`].
    ///
    /// # Panics
    /// If the customer is invalid; this is a test helper.
    pub fn seed_customer(&self, post: CustomerPost) -> CustomerFull {
        match self.try_seed_customer(post) {
            Ok(c) => c,
            Err(e) => panic!("seed_customer: invalid customer: {:?}", e.errors),
        }
    }

    /// REST requests received, including refused ones (401/404/429).
    pub fn api_request_count(&self) -> u64 {
        self.lock().api_requests
    }

    /// Replaces the random faults (rates, latency, slow bodies, odd JSON).
    pub fn set_faults(&self, config: FaultConfig) {
        self.lock().faults.config = config;
    }

    /// Adds a deterministic fault: the next `rule.count` matching requests meet it.
    pub fn inject(&self, rule: FaultRule) {
        self.lock().faults.add(rule);
    }

    /// Every REST request with its answer's status and any injected fault, oldest first.
    pub fn api_calls(&self) -> Vec<ApiCall> {
        self.lock().faults.calls.clone()
    }

    /// REST requests refused with 429 because the quota was spent.
    pub fn rate_limited_count(&self) -> u64 {
        self.lock().rate_limited
    }

    pub fn login_attempts(&self) -> Vec<LoginAttempt> {
        self.lock().login_attempts.clone()
    }

    pub fn set_clock_skew(&self, secs: i64) {
        self.lock().clock_skew_secs = secs;
    }

    /// Replace the quota and start a fresh window.
    pub fn set_rate_limit(&self, quota: u32, window: Duration) {
        self.lock().rate.reset(quota, window);
    }

    /// BigCommerce's clock: system clock + skew.
    pub fn now(&self) -> OffsetDateTime {
        let skew = self.lock().clock_skew_secs;
        OffsetDateTime::now_utc() + time::Duration::seconds(skew)
    }

    fn channel(&self, id: i64) -> Option<&EmulatedChannel> {
        self.inner.config.channels.iter().find(|c| c.id == id)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock only happens in a test; keep serving.
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

//! The `customer_login` JWT (CONTRACT.md §5.2): HS256 with the API account's client secret,
//! minted right before the redirect, a fresh `jti` every time, and `iat` from our clock
//! corrected by the offset measured against BigCommerce's `GET /v2/time`, because
//! BigCommerce accepts a token for about 30 seconds only.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use url::Url;

use super::wire::CustomerLoginClaims;
use crate::clock::Clock;
use crate::config::{Channel, StoreConfig, join_path};
use crate::redirect::RelativePath;

pub struct LoginTokenMinter {
    client_id: String,
    store_hash: String,
    key: EncodingKey,
    clock: Clock,
    /// BigCommerce time minus our time, in seconds; shared with the minters built after a
    /// change of store settings, since BigCommerce's clock did not change with them.
    offset: Arc<AtomicI64>,
}

impl LoginTokenMinter {
    pub fn new(store: &StoreConfig, clock: Clock, offset: Arc<AtomicI64>) -> Self {
        Self {
            client_id: store.client_id.clone(),
            store_hash: store.store_hash.clone(),
            key: EncodingKey::from_secret(store.client_secret.expose().as_bytes()),
            clock,
            offset,
        }
    }

    /// BigCommerce's clock minus ours, in whole seconds (for people: logs, `check`).
    pub fn offset(&self) -> i64 {
        self.offset.load(Ordering::Relaxed).div_euclid(1000)
    }

    /// Records a measurement of BigCommerce's clock: `bc_time` (whole seconds, as `/v2/time`
    /// answers) read somewhere between our `local_before_ms` and `local_after_ms`. Stored is
    /// the smallest offset that measurement allows (BigCommerce's second had at least begun
    /// by `local_after_ms`), so `iat` never runs ahead of BigCommerce's clock: a token from
    /// the future may be refused, one a second old never is (30 s window).
    pub fn record_bigcommerce_time(
        &self,
        bc_time: i64,
        local_before_ms: i64,
        local_after_ms: i64,
    ) -> i64 {
        let offset_ms = bc_time * 1000 - local_after_ms.max(local_before_ms);
        let previous_ms = self.offset.swap(offset_ms, Ordering::Relaxed);
        let offset = offset_ms.div_euclid(1000);
        if offset.abs() >= 5 || (offset_ms - previous_ms).abs() >= 5000 {
            tracing::warn!(
                offset_secs = offset,
                "clock differs from BigCommerce's; correcting login token iat"
            );
        }
        offset
    }

    /// Mints a token for one redirect. Never log its return value.
    pub fn mint(
        &self,
        customer_id: i64,
        channel_id: i64,
        redirect_to: &RelativePath,
        request_ip: Option<std::net::IpAddr>,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let claims = CustomerLoginClaims {
            iss: self.client_id.clone(),
            // Rounded down: never later than BigCommerce's clock (see `record_bigcommerce_time`).
            iat: (self.clock.now_ms() + self.offset.load(Ordering::Relaxed)).div_euclid(1000),
            jti: uuid::Uuid::new_v4().to_string(),
            operation: "customer_login".into(),
            store_hash: self.store_hash.clone(),
            customer_id,
            channel_id: Some(channel_id),
            redirect_to: Some(redirect_to.as_str().to_owned()),
            // Canonical form: an IPv4 client seen through a dual-stack socket is
            // `::ffff:203.0.113.9`, which the storefront would compare as text against the
            // `203.0.113.9` it sees and refuse.
            request_ip: request_ip.map(|ip| ip.to_canonical().to_string()),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.key)
    }

    /// `<storefront>/login/token/<jwt>` for the channel.
    pub fn storefront_url(
        &self,
        channel: &Channel,
        customer_id: i64,
        redirect_to: &RelativePath,
        request_ip: Option<std::net::IpAddr>,
    ) -> Result<Url, jsonwebtoken::errors::Error> {
        let token = self.mint(customer_id, channel.id, redirect_to, request_ip)?;
        Ok(join_path(
            &channel.storefront_url,
            &format!("login/token/{token}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    //! The minted token is read back independently, as CONTRACT.md §5.2 describes it: raw
    //! base64url JSON for header and claims, and a generic HS256 check keyed with the client
    //! secret's bytes. Nothing here reuses the minting code's types.
    use super::*;
    use crate::domain::Secret;
    use base64::Engine;
    use std::collections::BTreeMap;

    fn store() -> StoreConfig {
        StoreConfig {
            store_hash: "x1y2z3".into(),
            api_base_url: Url::parse("https://api.bigcommerce.com").unwrap(),
            access_token: Secret::new("token"),
            client_id: "client-123".into(),
            client_secret: Secret::new("s3cret"),
            clock_check_interval: std::time::Duration::from_secs(300),
            channels: BTreeMap::new(),
        }
    }

    fn decode_part(part: &str) -> serde_json::Value {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn claims_follow_the_contract() {
        let clock = Clock::system();
        let minter = LoginTokenMinter::new(&store(), clock.clone(), Arc::default());
        let path = RelativePath::parse("/cart.php").unwrap();
        let token = minter.mint(42, 2, &path, None).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header = decode_part(parts[0]);
        assert_eq!(header["alg"], "HS256");
        assert_eq!(header["typ"], "JWT");
        let claims = decode_part(parts[1]);
        assert_eq!(claims["iss"], "client-123");
        assert_eq!(claims["operation"], "customer_login");
        assert_eq!(claims["store_hash"], "x1y2z3");
        assert!(
            claims["customer_id"].is_i64(),
            "customer_id must be a JSON number"
        );
        assert_eq!(claims["customer_id"], 42);
        assert_eq!(claims["channel_id"], 2);
        assert_eq!(claims["redirect_to"], "/cart.php");
        assert!(claims.get("request_ip").is_none());
        assert!(claims.get("exp").is_none());
        let iat = claims["iat"].as_i64().unwrap();
        assert!((iat - crate::clock::system_now()).abs() <= 2);
        uuid::Uuid::parse_str(claims["jti"].as_str().unwrap()).unwrap();

        // Signature: HMAC-SHA256 over "header.payload" keyed with the client secret's
        // UTF-8 bytes, checked with a decoder that knows nothing of our claim types.
        let mut validation = jsonwebtoken::Validation::new(Algorithm::HS256);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        let decoded = jsonwebtoken::decode::<serde_json::Value>(
            &token,
            &jsonwebtoken::DecodingKey::from_secret(b"s3cret"),
            &validation,
        );
        assert!(decoded.is_ok());
        let wrong = jsonwebtoken::decode::<serde_json::Value>(
            &token,
            &jsonwebtoken::DecodingKey::from_secret(b"other"),
            &validation,
        );
        assert!(wrong.is_err());
    }

    #[test]
    fn every_token_has_a_fresh_jti() {
        let minter = LoginTokenMinter::new(&store(), Clock::system(), Arc::default());
        let path = RelativePath::parse("/account.php").unwrap();
        let jti = |t: String| decode_part(t.split('.').nth(1).unwrap())["jti"].clone();
        let a = jti(minter.mint(1, 1, &path, None).unwrap());
        let b = jti(minter.mint(1, 1, &path, None).unwrap());
        assert_ne!(a, b);
    }

    #[test]
    fn iat_is_corrected_by_the_measured_offset() {
        let minter = LoginTokenMinter::new(&store(), Clock::system(), Arc::default());
        let now = crate::clock::system_now() * 1000;
        // BigCommerce is 120 s ahead; the request took 2 s and BigCommerce answered
        // `now + 121` s: its clock is at least 121 s - 2 s = 119 s ahead.
        assert_eq!(
            minter.record_bigcommerce_time(now / 1000 + 121, now, now + 2000),
            119
        );
        let path = RelativePath::parse("/account.php").unwrap();
        let token = minter
            .mint(1, 1, &path, Some("::ffff:203.0.113.9".parse().unwrap()))
            .unwrap();
        let claims = decode_part(token.split('.').nth(1).unwrap());
        let iat = claims["iat"].as_i64().unwrap();
        assert!((iat - (crate::clock::system_now() + 120)).abs() <= 2);
        assert_eq!(claims["request_ip"], "203.0.113.9");
    }

    /// Issue 11: the old midpoint estimate put `iat` up to a second ahead of BigCommerce
    /// about half the time. Whatever BigCommerce's sub-second phase and however long the
    /// request took, the `iat` minted right after the measurement is never ahead of it.
    #[test]
    fn iat_is_never_later_than_bigcommerce_clock() {
        let minter = LoginTokenMinter::new(&store(), Clock::system(), Arc::default());
        let path = RelativePath::parse("/account.php").unwrap();
        let local = crate::clock::system_now_ms();
        for skew_ms in [0_i64, 1, 499, 500, 501, 999, 1500, -250, -999, 120_400] {
            for rtt_ms in [0_i64, 3, 400, 999, 1800] {
                // BigCommerce's true time at our `local` is `local + skew_ms`; it reads its
                // clock half-way through the request and answers whole seconds.
                let read_at = local + rtt_ms / 2;
                let bc_time = (read_at + skew_ms).div_euclid(1000);
                minter.record_bigcommerce_time(bc_time, local, local + rtt_ms);
                let token = minter.mint(1, 1, &path, None).unwrap();
                let iat = decode_part(token.split('.').nth(1).unwrap())["iat"]
                    .as_i64()
                    .unwrap();
                let bc_now_secs = (crate::clock::system_now_ms() + skew_ms).div_euclid(1000);
                assert!(
                    iat <= bc_now_secs,
                    "skew {skew_ms} ms, rtt {rtt_ms} ms: iat {iat} ahead of {bc_now_secs}"
                );
                assert!(bc_now_secs - iat <= 3, "iat too old: {}", bc_now_secs - iat);
            }
        }
    }

    #[test]
    fn storefront_url_appends_the_token_path() {
        let minter = LoginTokenMinter::new(&store(), Clock::system(), Arc::default());
        let channel = Channel {
            id: 1,
            storefront_url: Url::parse("https://shop.example.com/").unwrap(),
            default_redirect: RelativePath::parse("/account.php").unwrap(),
        };
        let url = minter
            .storefront_url(&channel, 7, &channel.default_redirect, None)
            .unwrap();
        assert!(
            url.as_str()
                .starts_with("https://shop.example.com/login/token/ey")
        );
    }
}

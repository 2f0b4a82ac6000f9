//! `/v3/hooks` (CONTRACT.md §7): the webhooks this API account has registered. No OAuth
//! scope is needed to manage them; `GET /v3/hooks` lists only the calling account's.

use reqwest::Method;

use super::client::{ApiError, Client};
use super::wire::{
    WebhookCollectionResponse, WebhookFull, WebhookPost, WebhookPut, WebhookResponse,
};

impl Client {
    /// `GET /v3/hooks`: this API account's hooks.
    pub async fn hooks(&self) -> Result<Vec<WebhookFull>, ApiError> {
        let r: WebhookCollectionResponse =
            self.send(Method::GET, "v3/hooks", &[], None::<&()>).await?;
        Ok(r.data)
    }

    /// `POST /v3/hooks` (one hook per call).
    pub async fn create_hook(&self, hook: &WebhookPost) -> Result<WebhookFull, ApiError> {
        let r: WebhookResponse = self.send(Method::POST, "v3/hooks", &[], Some(hook)).await?;
        Ok(r.data)
    }

    /// `PUT /v3/hooks/{id}`: changes only the fields `put` sets.
    pub async fn update_hook(&self, id: i64, put: &WebhookPut) -> Result<WebhookFull, ApiError> {
        let path = format!("v3/hooks/{id}");
        let r: WebhookResponse = self.send(Method::PUT, &path, &[], Some(put)).await?;
        Ok(r.data)
    }

    /// `DELETE /v3/hooks/{id}`.
    pub async fn delete_hook(&self, id: i64) -> Result<(), ApiError> {
        let path = format!("v3/hooks/{id}");
        let _: serde_json::Value = self.send(Method::DELETE, &path, &[], None::<&()>).await?;
        Ok(())
    }
}

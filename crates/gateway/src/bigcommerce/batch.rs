//! Customer calls in batches, for many first sign-ins at once (CONTRACT.md §2.3): one
//! `email:in` lookup for many emails, one `POST` for up to ten customers.
//!
//! Two things BigCommerce does not promise are not relied on: that a refused batch created
//! nothing (a whole-batch 422 is followed by a lookup of its emails, then one-by-one posts
//! of those still missing) and that `data` comes back in request order (results are matched
//! on the email, case-insensitively). Every call first spends one unit of the budget.

use super::wire::{CustomerFull, CustomerPost};
use super::{ApiError, Client};
use crate::api_budget::ApiBudget;

/// The documented limit of one `POST /v3/customers` (11 or more: 413).
pub const MAX_CREATE_BATCH: usize = 10;
/// Emails per `email:in` lookup. 50 addresses keep the URL near 2 KB, which every proxy
/// passes; the answer (at most a few customers per email) fits one page of 250.
pub const MAX_LOOKUP_EMAILS: usize = 50;
/// And at most this many characters of addresses per lookup, for long addresses.
const MAX_LOOKUP_CHARS: usize = 1800;

/// What a create came to for one customer.
#[derive(Debug)]
pub enum Created {
    /// Created by this call.
    New(Box<CustomerFull>),
    /// The create was refused or answered without it, and a lookup then found these
    /// customers with its email: another sign-in's, the merchant's, or (if BigCommerce
    /// keeps part of a refused batch, unconfirmed) this batch's. Never counted as ours.
    Found(Vec<CustomerFull>),
    /// Refused for this customer alone (a 4xx that a lookup did not explain).
    Refused(ApiError),
    /// Not done for a passing reason (rate limit, transport, 5xx): try again later.
    Retry(ApiError),
}

/// Whether an error passes by itself (try again later) rather than refusing the request.
pub fn is_transient(e: &ApiError) -> bool {
    matches!(
        e,
        ApiError::RateLimited { .. }
            | ApiError::Transport(_)
            | ApiError::Timeout(_)
            | ApiError::Status { .. }
            | ApiError::ResponseTooLarge { .. }
    )
}

/// Splits `emails` into lookups of at most [`MAX_LOOKUP_EMAILS`] and
/// [`MAX_LOOKUP_CHARS`] each.
pub fn lookup_chunks(emails: &[String]) -> Vec<&[String]> {
    let mut chunks = Vec::new();
    let (mut start, mut chars) = (0, 0);
    for (i, e) in emails.iter().enumerate() {
        let full = i - start >= MAX_LOOKUP_EMAILS || chars + e.len() + 1 > MAX_LOOKUP_CHARS;
        if full && i > start {
            chunks.push(&emails[start..i]);
            (start, chars) = (i, 0);
        }
        chars += e.len() + 1;
    }
    if start < emails.len() {
        chunks.push(&emails[start..]);
    }
    chunks
}

/// The customers with any of `emails`, in as few `email:in` calls as fit.
pub async fn lookup(
    client: &Client,
    budget: &ApiBudget,
    emails: &[String],
) -> Result<Vec<CustomerFull>, ApiError> {
    lookup_paid(client, budget, emails, false).await
}

/// [`lookup`] whose first call the caller has already spent the budget for (`paid`).
pub async fn lookup_paid(
    client: &Client,
    budget: &ApiBudget,
    emails: &[String],
    mut paid: bool,
) -> Result<Vec<CustomerFull>, ApiError> {
    let mut found = Vec::new();
    for chunk in lookup_chunks(emails) {
        if !std::mem::take(&mut paid) {
            budget.acquire().await;
        }
        found.extend(client.customers_by_email(chunk).await?);
    }
    Ok(found)
}

/// Creates `posts` (distinct emails) in batches of ten; one outcome per post, in order.
pub async fn create(client: &Client, budget: &ApiBudget, posts: &[CustomerPost]) -> Vec<Created> {
    let mut out = Vec::with_capacity(posts.len());
    for chunk in posts.chunks(MAX_CREATE_BATCH) {
        out.extend(create_chunk(client, budget, chunk).await);
    }
    out
}

async fn create_chunk(client: &Client, budget: &ApiBudget, chunk: &[CustomerPost]) -> Vec<Created> {
    budget.acquire().await;
    let refusal = match client.create_customers(chunk).await {
        Ok(data) => {
            let mut out: Vec<Option<Created>> = chunk
                .iter()
                .map(|p| {
                    data.iter()
                        .find(|c| c.email.trim().eq_ignore_ascii_case(&p.email))
                        .map(|c| Created::New(Box::new(c.clone())))
                })
                .collect();
            if out.iter().all(Option::is_some) {
                return out.into_iter().flatten().collect();
            }
            // Answered without some of them: whatever exists now is found, not ours.
            tracing::warn!(
                asked = chunk.len(),
                answered = data.len(),
                "customer batch answered without some customers; looking them up"
            );
            let missing: Vec<String> = chunk
                .iter()
                .zip(&out)
                .filter(|(_, o)| o.is_none())
                .map(|(p, _)| p.email.clone())
                .collect();
            let found = match lookup(client, budget, &missing).await {
                Ok(found) => found,
                Err(e) => return retry_or_refuse(out, &e),
            };
            for (p, o) in chunk.iter().zip(out.iter_mut()) {
                if o.is_none() {
                    let with_email = with_email(&found, &p.email);
                    *o = Some(if with_email.is_empty() {
                        Created::Refused(ApiError::Decode(
                            "create answered without the new customer".into(),
                        ))
                    } else {
                        Created::Found(with_email)
                    });
                }
            }
            return out.into_iter().flatten().collect();
        }
        Err(e) if is_transient(&e) => return chunk.iter().map(|_| retry(&e)).collect(),
        Err(e) => e,
    };
    if let [post] = chunk {
        return vec![refused_one(client, budget, post, refusal).await];
    }
    // Refused. Whether a refused batch kept any of its customers is unconfirmed, and a
    // duplicate email refuses the whole batch: look them all up, then post the missing
    // ones alone so one bad item cannot fail the others.
    tracing::info!(
        items = chunk.len(),
        status = refusal_status(&refusal),
        conflict = refusal.is_create_conflict(),
        "customer batch refused; looking it up, then creating one by one"
    );
    let emails: Vec<String> = chunk.iter().map(|p| p.email.clone()).collect();
    let found = match lookup(client, budget, &emails).await {
        Ok(found) => found,
        Err(e) => return chunk.iter().map(|_| retry_or_refuse_one(&e)).collect(),
    };
    let mut out = Vec::with_capacity(chunk.len());
    for p in chunk {
        let existing = with_email(&found, &p.email);
        if !existing.is_empty() {
            out.push(Created::Found(existing));
        } else {
            out.push(create_one(client, budget, p).await);
        }
    }
    out
}

/// One post alone, after its batch was refused.
async fn create_one(client: &Client, budget: &ApiBudget, post: &CustomerPost) -> Created {
    budget.acquire().await;
    match client.create_customers(std::slice::from_ref(post)).await {
        Ok(data) => match data
            .into_iter()
            .find(|c| c.email.trim().eq_ignore_ascii_case(&post.email))
        {
            Some(c) => Created::New(Box::new(c)),
            None => Created::Refused(ApiError::Decode(
                "create answered without the new customer".into(),
            )),
        },
        Err(e) if is_transient(&e) => retry(&e),
        Err(e) => refused_one(client, budget, post, e).await,
    }
}

/// A post of one refused: a conflict is looked up (another sign-in created it meanwhile).
async fn refused_one(
    client: &Client,
    budget: &ApiBudget,
    post: &CustomerPost,
    e: ApiError,
) -> Created {
    // Any 422/409 may be a taken email: BigCommerce's answer does not say (CONTRACT.md §2.3).
    if !e.is_create_conflict() {
        return Created::Refused(e);
    }
    match lookup(client, budget, std::slice::from_ref(&post.email)).await {
        Ok(found) if !found.is_empty() => Created::Found(found),
        Ok(_) => Created::Refused(e),
        Err(again) => retry_or_refuse_one(&again),
    }
}

/// The customers of `found` with `email` (ASCII case folded: the API's folding is
/// unconfirmed, CONTRACT.md §2.1).
pub fn with_email(found: &[CustomerFull], email: &str) -> Vec<CustomerFull> {
    found
        .iter()
        .filter(|c| c.email.trim().eq_ignore_ascii_case(email))
        .cloned()
        .collect()
}

fn retry(e: &ApiError) -> Created {
    Created::Retry(copy_error(e))
}

fn retry_or_refuse_one(e: &ApiError) -> Created {
    if is_transient(e) {
        retry(e)
    } else {
        Created::Refused(copy_error(e))
    }
}

/// The outcomes known so far, and `e` for the rest.
fn retry_or_refuse(out: Vec<Option<Created>>, e: &ApiError) -> Vec<Created> {
    out.into_iter()
        .map(|o| o.unwrap_or_else(|| retry_or_refuse_one(e)))
        .collect()
}

fn refusal_status(e: &ApiError) -> u16 {
    match e {
        ApiError::Rejected { status, .. } | ApiError::Status { status } => *status,
        ApiError::Unauthorized => 401,
        ApiError::Forbidden => 403,
        _ => 0,
    }
}

/// `ApiError` is not `Clone` (it is the client's); one error shared by the items of a
/// batch or a round is copied for each.
pub fn copy_error(e: &ApiError) -> ApiError {
    match e {
        ApiError::RateLimited { retry_after } => ApiError::RateLimited {
            retry_after: *retry_after,
        },
        ApiError::Transport(s) => ApiError::Transport(s.clone()),
        ApiError::Timeout(s) => ApiError::Timeout(s.clone()),
        ApiError::Unauthorized => ApiError::Unauthorized,
        ApiError::Forbidden => ApiError::Forbidden,
        ApiError::Rejected {
            status,
            title,
            errors,
        } => ApiError::Rejected {
            status: *status,
            title: title.clone(),
            errors: errors.clone(),
        },
        ApiError::Status { status } => ApiError::Status { status: *status },
        ApiError::Decode(s) => ApiError::Decode(s.clone()),
        ApiError::ResponseTooLarge { limit } => ApiError::ResponseTooLarge { limit: *limit },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_are_chunked_by_count_and_length() {
        let emails: Vec<String> = (0..120).map(|i| format!("u{i}@a.test")).collect();
        let chunks = lookup_chunks(&emails);
        assert_eq!(
            chunks.iter().map(|c| c.len()).collect::<Vec<_>>(),
            [50, 50, 20]
        );
        let long: Vec<String> = (0..4)
            .map(|i| format!("{}{i}@a.test", "x".repeat(700)))
            .collect();
        let chunks = lookup_chunks(&long);
        assert_eq!(chunks.iter().map(|c| c.len()).collect::<Vec<_>>(), [2, 2]);
        assert!(lookup_chunks(&[]).is_empty());
    }
}

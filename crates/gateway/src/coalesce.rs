//! First sign-ins coalesced: when many people sign in for the first time at once (an SSO
//! rollout), their lookups and creates share BigCommerce calls instead of costing two
//! each. One worker per replica drains a FIFO queue in rounds: one `email:in` lookup for
//! the round, one channel-settings read per channel whose new customers would be global,
//! one `POST` per ten missing customers, then each waiter gets its customer or its own
//! error. Every call spends the [`ApiBudget`] first, so a burst waits for quota instead of
//! being refused; a call refused anyway for a passing reason (429, transport, 5xx) puts
//! the sign-ins back at the head of the queue.
//!
//! The decisions are [`crate::provisioning`]'s, unchanged: the same customer is usable, the
//! same customer is created, and a customer the round did not create itself (found after
//! a refused create) never counts as created, so the link policy stays as strict.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::{Notify, oneshot};

use crate::api_budget::ApiBudget;
use crate::bigcommerce::ApiError;
use crate::bigcommerce::batch::{self, Created, MAX_LOOKUP_EMAILS};
use crate::bigcommerce::wire::{CustomerFull, CustomerPost};
use crate::config::Connection;
use crate::domain::Email;
use crate::error::Error;
use crate::oidc::Identity;
use crate::policy::PolicyError;
use crate::provisioning::{self, CustomerRef, Recovered};
use crate::settings::store::StoreApi;

/// After the first sign-in of a quiet spell arrives, how long the worker lets others join
/// its round. Short beside a sign-in, long beside loopback arrivals of a burst.
const GATHER: Duration = Duration::from_millis(20);
/// A create that broke off (5xx, reset, timeout) gets one more round: its lookup finds a
/// customer the create made after all, else the create is sent once more. The client has
/// already retried every idempotent call once, so other failures are not retried here.
const MAX_ATTEMPTS: u32 = 2;
/// Rate-limit refusals are waited out for longer: the budget is what should prevent them.
const MAX_RATE_LIMITED_ATTEMPTS: u32 = 30;

pub struct Coalescer {
    queue: Mutex<VecDeque<Job>>,
    arrived: Notify,
    budget: ApiBudget,
    worker: Mutex<bool>,
}

struct Job {
    api: Arc<StoreApi>,
    connection: String,
    create_customers: bool,
    channel_id: i64,
    /// What would be created; its `email` is the normalised address looked up.
    post: CustomerPost,
    attempts: u32,
    /// A create of this sign-in's customer broke off with an unknown outcome: a customer
    /// found later was most likely created by it (audited as such).
    create_tried: bool,
    reply: oneshot::Sender<Result<CustomerRef, Error>>,
}

impl Coalescer {
    pub fn new(budget: ApiBudget) -> Arc<Self> {
        Arc::new(Self {
            queue: Mutex::new(VecDeque::new()),
            arrived: Notify::new(),
            budget,
            worker: Mutex::new(false),
        })
    }

    pub fn budget(&self) -> &ApiBudget {
        &self.budget
    }

    /// The customer of a first sign-in: found by email, or created. What
    /// `provisioning::plan` decides for one sign-in, decided for a round of them.
    pub async fn resolve(
        self: &Arc<Self>,
        api: Arc<StoreApi>,
        conn: &Connection,
        identity: &Identity,
        email: &Email,
        channel_id: i64,
    ) -> Result<CustomerRef, Error> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            api,
            connection: conn.id.to_string(),
            create_customers: conn.create_customers,
            channel_id,
            post: provisioning::new_customer(conn, identity, email, channel_id),
            attempts: 0,
            create_tried: false,
            reply,
        };
        self.lock().push_back(job);
        self.ensure_worker();
        self.arrived.notify_one();
        let customer = answer.await.map_err(|_| {
            Error::BigCommerce(ApiError::Transport("sign-in queue stopped".into()))
        })??;
        tracing::info!(
            customer_id = customer.id,
            created = customer.created,
            "first sign-in's customer resolved"
        );
        Ok(customer)
    }

    /// Sign-ins waiting for a round.
    pub fn queued(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Job>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Started by the first sign-in, on its runtime; it holds only a weak reference, so it
    /// ends when the gateway's state is dropped.
    fn ensure_worker(self: &Arc<Self>) {
        let mut started = self.worker.lock().unwrap_or_else(|p| p.into_inner());
        if !*started {
            *started = true;
            tokio::spawn(work(Arc::downgrade(self)));
        }
    }

    /// Takes the head of the queue: up to [`MAX_LOOKUP_EMAILS`] distinct emails of one
    /// store client (settings changed mid-burst wait for the next round).
    fn take_round(&self) -> Vec<Job> {
        let mut queue = self.lock();
        let Some(first) = queue.front() else {
            return Vec::new();
        };
        let api = first.api.clone();
        let mut emails = HashSet::new();
        let mut round = Vec::new();
        let mut rest = VecDeque::new();
        while let Some(job) = queue.pop_front() {
            let fits = Arc::ptr_eq(&job.api, &api)
                && (emails.contains(&job.post.email) || emails.len() < MAX_LOOKUP_EMAILS);
            if fits {
                emails.insert(job.post.email.clone());
                round.push(job);
            } else {
                rest.push_back(job);
            }
        }
        *queue = rest;
        round
    }

    /// Puts jobs back at the head, in their order, for the next round.
    fn requeue(&self, jobs: Vec<Job>) {
        if jobs.is_empty() {
            return;
        }
        let mut queue = self.lock();
        for job in jobs.into_iter().rev() {
            queue.push_front(job);
        }
        drop(queue);
        self.arrived.notify_one();
    }
}

async fn work(coalescer: Weak<Coalescer>) {
    loop {
        let Some(c) = coalescer.upgrade() else { return };
        if c.queued() == 0 {
            // Wake now and then to notice the gateway went away.
            let _ = tokio::time::timeout(Duration::from_secs(5), c.arrived.notified()).await;
            continue;
        }
        tokio::time::sleep(GATHER).await;
        // Quota first: while it is short, arrivals pile up and the round grows.
        c.budget.acquire().await;
        let round = c.take_round();
        if round.is_empty() {
            continue;
        }
        round_of(&c, round).await;
    }
}

/// One round: lookup, decide, create, answer.
async fn round_of(c: &Coalescer, round: Vec<Job>) {
    let api = round[0].api.clone();
    let client = &api.client;
    let mut emails: Vec<String> = round.iter().map(|j| j.post.email.clone()).collect();
    emails.sort();
    emails.dedup();
    tracing::info!(
        sign_ins = round.len(),
        emails = emails.len(),
        queued = c.queued(),
        "first sign-in round"
    );
    // The first lookup's unit was spent by the worker before taking the round.
    let found = batch::lookup_paid(client, &c.budget, &emails, true).await;
    c.budget.observe(client.quota());
    let found = match found {
        Ok(found) => found,
        Err(e) => return failed(c, round, &e),
    };
    let mut to_create: Vec<Job> = Vec::new();
    let mut next_round: Vec<Job> = Vec::new();
    let mut creating: HashSet<String> = HashSet::new();
    let mut global_ok = HashMap::new();
    for job in round {
        match provisioning::usable(&batch::with_email(&found, &job.post.email), job.channel_id) {
            Err(e) => answer(job, Err(e.into())),
            // An existing global account signs in only where the channel allows global
            // logins, whoever created it (as `provisioning::plan`).
            Ok(Some(customer)) if customer.channel_ids.is_none() => {
                let customer = existing(customer, job.create_tried);
                match global_allowed(c, &api, &mut global_ok, job.channel_id).await {
                    Ok(Some(false)) => {
                        let e = PolicyError::GlobalCustomerNotAllowed {
                            customer_id: customer.id,
                            channel_id: job.channel_id,
                        };
                        answer(job, Err(e.into()));
                    }
                    Ok(_) => answer(job, Ok(customer)),
                    Err(e @ ApiError::RateLimited { .. }) => again(&mut next_round, job, e),
                    Err(e) => answer(job, Err(e.into())),
                }
            }
            Ok(Some(customer)) => {
                let customer = existing(customer, job.create_tried);
                answer(job, Ok(customer))
            }
            Ok(None) if !job.create_customers => {
                let e = PolicyError::NoAccount {
                    connection: job.connection.clone(),
                };
                answer(job, Err(e.into()));
            }
            // The same email twice in a round (two channels, two tabs): one create, and the
            // other finds it next round, as a sign-in racing another does today.
            Ok(None) if !creating.insert(job.post.email.clone()) => next_round.push(job),
            Ok(None) => to_create.push(job),
        }
    }
    let to_create = global_logins_allowed(c, &api, to_create, &mut next_round).await;
    let posts: Vec<CustomerPost> = to_create.iter().map(|j| j.post.clone()).collect();
    let outcomes = batch::create(client, &c.budget, &posts).await;
    c.budget.observe(client.quota());
    for (job, outcome) in to_create.into_iter().zip(outcomes) {
        match outcome {
            Created::New(customer) => answer(
                job,
                Ok(CustomerRef {
                    id: customer.id,
                    channel_ids: customer.channel_ids,
                    created: true,
                    recovered: None,
                }),
            ),
            Created::Found(customers) => {
                let result = match provisioning::usable(&customers, job.channel_id) {
                    Ok(Some(customer)) => Ok(CustomerRef {
                        recovered: Some(Recovered::CreateConflict),
                        ..existing(customer, false)
                    }),
                    Ok(None) => {
                        Err(ApiError::Decode("customer not found after create".into()).into())
                    }
                    Err(e) => Err(e.into()),
                };
                answer(job, result);
            }
            // Refused as a whole and nobody has the email: say so, not "unavailable".
            Created::Refused(e) if e.is_create_conflict() => {
                answer(job, Err(Error::CustomerNotCreated(e)))
            }
            Created::Refused(e) => answer(job, Err(e.into())),
            Created::Retry(e) => {
                let mut job = job;
                job.create_tried |= e.outcome_unknown();
                again(&mut next_round, job, e)
            }
        }
    }
    c.requeue(next_round);
}

/// Of the sign-ins whose new customer would be a global account, only those on channels
/// that allow global logins go on: better to refuse now than to create a customer
/// BigCommerce will not sign in (as `provisioning::plan`). One read per channel.
async fn global_logins_allowed(
    c: &Coalescer,
    api: &StoreApi,
    jobs: Vec<Job>,
    next_round: &mut Vec<Job>,
) -> Vec<Job> {
    let mut allowed: HashMap<i64, Result<Option<bool>, ApiError>> = HashMap::new();
    let mut out = Vec::with_capacity(jobs.len());
    for job in jobs {
        if job.post.channel_ids.is_some() {
            out.push(job);
            continue;
        }
        if let Entry::Vacant(slot) = allowed.entry(job.channel_id) {
            c.budget.acquire().await;
            slot.insert(
                api.client
                    .channel_allows_global_logins(job.channel_id)
                    .await,
            );
        }
        match &allowed[&job.channel_id] {
            Ok(Some(false)) => {
                let e = PolicyError::GlobalLoginsOff {
                    connection: job.connection.clone(),
                    channel_id: job.channel_id,
                };
                answer(job, Err(e.into()));
            }
            Ok(_) => out.push(job),
            Err(e @ ApiError::RateLimited { .. }) => again(next_round, job, batch::copy_error(e)),
            Err(e) => answer(job, Err(batch::copy_error(e).into())),
        }
    }
    out
}

/// The whole round failed at its lookup.
fn failed(c: &Coalescer, round: Vec<Job>, e: &ApiError) {
    tracing::warn!(error = %e, sign_ins = round.len(), "first sign-in round's lookup failed");
    let mut next_round = Vec::new();
    for job in round {
        if matches!(e, ApiError::RateLimited { .. }) {
            again(&mut next_round, job, batch::copy_error(e));
        } else {
            answer(job, Err(batch::copy_error(e).into()));
        }
    }
    c.requeue(next_round);
}

/// Back to the queue for a passing failure, until it has failed too often.
fn again(next_round: &mut Vec<Job>, mut job: Job, e: ApiError) {
    job.attempts += 1;
    let limit = match e {
        ApiError::RateLimited { .. } => MAX_RATE_LIMITED_ATTEMPTS,
        _ => MAX_ATTEMPTS,
    };
    if job.attempts >= limit {
        answer(job, Err(e.into()));
    } else {
        next_round.push(job);
    }
}

fn answer(job: Job, result: Result<CustomerRef, Error>) {
    // The sign-in may have given up waiting (the browser left): nobody to tell.
    let _ = job.reply.send(result);
}

/// A customer found by email; `after_create` when this sign-in's own create broke off
/// with an unknown outcome before (the customer is most likely that create's).
fn existing(c: &CustomerFull, after_create: bool) -> CustomerRef {
    CustomerRef {
        id: c.id,
        channel_ids: c.channel_ids.clone(),
        created: false,
        recovered: after_create.then_some(Recovered::CreateOutcomeUnknown),
    }
}

/// Whether `channel_id` allows global logins, read once per round and channel.
async fn global_allowed(
    c: &Coalescer,
    api: &StoreApi,
    cache: &mut HashMap<i64, Option<bool>>,
    channel_id: i64,
) -> Result<Option<bool>, ApiError> {
    if let Some(known) = cache.get(&channel_id) {
        return Ok(*known);
    }
    c.budget.acquire().await;
    let allowed = api.client.channel_allows_global_logins(channel_id).await?;
    cache.insert(channel_id, allowed);
    Ok(allowed)
}

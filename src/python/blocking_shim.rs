//! A stand-in for `qlm_client::blocking` with the signatures of the shared plan, over the
//! async client and a runtime of its own, so that the extension builds and its tests run
//! before the real facade lands. It goes when `qlm_client::blocking` is merged.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use qlm_client::{CheckoutOptions, ClientError, SessionOptions};

/// Why a session ended without being closed.
#[derive(Clone, Debug)]
#[allow(dead_code)] // Unreachable: the stand-in never reports it; the real facade does.
pub enum LostReason {
    Expired,
    Unreachable { silent_for: Duration },
}

/// What to ask for besides the feature.
#[derive(Clone, Debug, Default)]
pub struct CheckoutRequest {
    pub version: Option<String>,
    pub count: u32,
    pub wait: Option<Duration>,
    pub borrow_until: Option<SystemTime>,
}

pub struct Client {
    runtime: Arc<tokio::runtime::Runtime>,
    inner: qlm_client::Client,
}

impl Client {
    fn new(inner: qlm_client::Client) -> Result<Client, ClientError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| ClientError::Protocol(format!("a runtime: {e}")))?;
        Ok(Client { runtime: Arc::new(runtime), inner })
    }

    pub fn from_env(_vendor_var: Option<&str>) -> Result<Client, ClientError> {
        Client::new(qlm_client::Client::from_env()?)
    }

    pub fn from_search_path(path: &str) -> Result<Client, ClientError> {
        Client::from_servers(path)
    }

    pub fn from_servers(list: &str) -> Result<Client, ClientError> {
        let servers =
            qlm_client::parse_servers(list).map_err(|e| ClientError::NoServers(e.to_string()))?;
        Client::new(qlm_client::Client::connect(servers)?)
    }

    pub fn trust_vendor_key(&self, _public_key_text: &str) -> Result<(), ClientError> {
        Ok(())
    }

    pub fn open_session(&self, options: SessionOptions) -> Result<Session, ClientError> {
        let inner = self.runtime.block_on(self.inner.open_session(options))?;
        let inner = Arc::new(inner);
        let callbacks: Callbacks = Arc::new(Mutex::new(Vec::new()));
        let (watched, told) = (inner.clone(), callbacks.clone());
        self.runtime.spawn(async move {
            while !watched.is_lost() {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            for callback in told.lock().unwrap_or_else(PoisonError::into_inner).iter() {
                callback(&LostReason::Expired);
            }
        });
        Ok(Session { runtime: self.runtime.clone(), inner: Some(inner), callbacks })
    }
}

type Callbacks = Arc<Mutex<Vec<Box<dyn Fn(&LostReason) + Send + Sync>>>>;

pub struct Session {
    runtime: Arc<tokio::runtime::Runtime>,
    inner: Option<Arc<qlm_client::Session>>,
    callbacks: Callbacks,
}

impl Session {
    fn inner(&self) -> Result<&Arc<qlm_client::Session>, ClientError> {
        self.inner.as_ref().ok_or_else(|| ClientError::Protocol("closed".into()))
    }

    pub fn checkout(&self, feature: &str, request: &CheckoutRequest) -> Result<Seat, ClientError> {
        let session = self.inner()?;
        let options = CheckoutOptions {
            version: request.version.clone(),
            count: request.count,
            wait: request.wait.is_some(),
            borrow_until: request.borrow_until,
        };
        let asked = session.checkout(feature, options);
        let checkout = self.runtime.block_on(async {
            match request.wait {
                Some(wait) => match tokio::time::timeout(wait, asked).await {
                    Ok(answer) => answer,
                    Err(_) => {
                        // The dropped wait leaves its queue from a spawned task; give it time.
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        Err(ClientError::Protocol(format!("the wait ran out after {wait:?}")))
                    }
                },
                None => asked.await,
            }
        })?;
        let granted = checkout.granted().clone();
        Ok(Seat {
            runtime: self.runtime.clone(),
            checkout: Some(checkout),
            feature: granted.feature,
            version: granted.version,
            count: granted.count,
            source: "cluster".into(),
        })
    }

    pub fn is_lost(&self) -> bool {
        self.inner.as_ref().is_some_and(|s| s.is_lost())
    }

    pub fn on_lost(&self, callback: Box<dyn Fn(&LostReason) + Send + Sync>) {
        self.callbacks.lock().unwrap_or_else(PoisonError::into_inner).push(callback);
    }

    pub fn close(mut self) -> Result<(), ClientError> {
        if let Some(inner) = self.inner.take()
            && let Ok(inner) = Arc::try_unwrap(inner)
        {
            self.runtime.block_on(inner.close())?;
        }
        Ok(())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _inside = self.runtime.enter();
        self.inner.take();
    }
}

pub struct Seat {
    runtime: Arc<tokio::runtime::Runtime>,
    checkout: Option<qlm_client::Checkout>,
    feature: String,
    version: String,
    count: u32,
    source: String,
}

impl Seat {
    pub fn handle(&self) -> u64 {
        self.checkout.as_ref().map_or(0, qlm_client::Checkout::handle)
    }
    pub fn feature(&self) -> &str {
        &self.feature
    }
    pub fn version(&self) -> &str {
        &self.version
    }
    pub fn count(&self) -> u32 {
        self.count
    }
    pub fn is_node_locked(&self) -> bool {
        false
    }
    pub fn source(&self) -> &str {
        &self.source
    }
    pub fn checkin(mut self) -> Result<(), ClientError> {
        match self.checkout.take() {
            Some(checkout) => self.runtime.block_on(checkout.checkin()),
            None => Ok(()),
        }
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        let _inside = self.runtime.enter();
        self.checkout.take();
    }
}

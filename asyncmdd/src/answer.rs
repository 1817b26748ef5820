//! A runtime's request handling as its transports are given it: the control socket and the
//! MQTT link carry requests to it and its responses back, and know nothing else of the runtime.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use asyncmd_proto::{Request, Response};

/// Answers one request.
pub type Answer =
    Arc<dyn Fn(Request) -> Pin<Box<dyn Future<Output = Response> + Send>> + Send + Sync>;

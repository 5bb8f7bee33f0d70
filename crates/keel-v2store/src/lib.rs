//! placeholder
mod error;
mod event;
mod history;
mod json;
mod node;
pub mod request;
pub mod snapshot;
mod stats;
mod store;
pub mod time;
mod watch;

pub use error::{ErrorCode, V2Error};
pub use event::{Action, Event, NodeExtern};
pub use request::{Method, ParsedKeyRequest, V2Request, parse_key_request};
pub use snapshot::SnapshotError;
pub use stats::Stats;
pub use store::{HISTORY_CAPACITY, STORE_VERSION, Store, TtlOptions};
pub use watch::{WATCHER_CHANNEL_CAPACITY, Watcher, WatcherId};

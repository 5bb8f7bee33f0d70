//! etcd's v2 error codes (`v2error`): code, message, cause, index, HTTP status and the
//! exact JSON body etcd writes.

use serde::Serialize;

/// The numeric v2 error codes, named as etcd names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum ErrorCode {
    /// 100
    KeyNotFound = 100,
    /// 101: prevValue/prevIndex compare failed.
    TestFailed = 101,
    /// 102
    NotFile = 102,
    /// 103
    NoMorePeer = 103,
    /// 104
    NotDir = 104,
    /// 105
    NodeExist = 105,
    /// 106
    KeyIsPreserved = 106,
    /// 107
    RootReadOnly = 107,
    /// 108
    DirNotEmpty = 108,
    /// 109
    ExistingPeerAddr = 109,
    /// 110
    Unauthorized = 110,
    /// 200
    ValueRequired = 200,
    /// 201
    PrevValueRequired = 201,
    /// 202
    TtlNaN = 202,
    /// 203
    IndexNaN = 203,
    /// 204
    ValueOrTtlRequired = 204,
    /// 205
    TimeoutNaN = 205,
    /// 206
    NameRequired = 206,
    /// 207
    IndexOrValueRequired = 207,
    /// 208
    IndexValueMutex = 208,
    /// 209
    InvalidField = 209,
    /// 210
    InvalidForm = 210,
    /// 211
    RefreshValue = 211,
    /// 212
    RefreshTtlRequired = 212,
    /// 300
    RaftInternal = 300,
    /// 301
    LeaderElect = 301,
    /// 400
    WatcherCleared = 400,
    /// 401: the watch index is older than the event history.
    EventIndexCleared = 401,
    /// 402
    StandbyInternal = 402,
    /// 403
    InvalidActiveSize = 403,
    /// 404
    InvalidRemoveDelay = 404,
    /// 500
    ClientInternal = 500,
}

impl ErrorCode {
    /// Every code, in numeric order.
    pub const ALL: [ErrorCode; 32] = [
        ErrorCode::KeyNotFound,
        ErrorCode::TestFailed,
        ErrorCode::NotFile,
        ErrorCode::NoMorePeer,
        ErrorCode::NotDir,
        ErrorCode::NodeExist,
        ErrorCode::KeyIsPreserved,
        ErrorCode::RootReadOnly,
        ErrorCode::DirNotEmpty,
        ErrorCode::ExistingPeerAddr,
        ErrorCode::Unauthorized,
        ErrorCode::ValueRequired,
        ErrorCode::PrevValueRequired,
        ErrorCode::TtlNaN,
        ErrorCode::IndexNaN,
        ErrorCode::ValueOrTtlRequired,
        ErrorCode::TimeoutNaN,
        ErrorCode::NameRequired,
        ErrorCode::IndexOrValueRequired,
        ErrorCode::IndexValueMutex,
        ErrorCode::InvalidField,
        ErrorCode::InvalidForm,
        ErrorCode::RefreshValue,
        ErrorCode::RefreshTtlRequired,
        ErrorCode::RaftInternal,
        ErrorCode::LeaderElect,
        ErrorCode::WatcherCleared,
        ErrorCode::EventIndexCleared,
        ErrorCode::StandbyInternal,
        ErrorCode::InvalidActiveSize,
        ErrorCode::InvalidRemoveDelay,
        ErrorCode::ClientInternal,
    ];

    /// The number on the wire.
    pub fn code(self) -> u16 {
        self as u16
    }

    /// The code with this number, if etcd defines one.
    pub fn from_code(code: u16) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.code() == code)
    }

    /// etcd's message text for the code.
    pub fn message(self) -> &'static str {
        match self {
            ErrorCode::KeyNotFound => "Key not found",
            ErrorCode::TestFailed => "Compare failed",
            ErrorCode::NotFile => "Not a file",
            ErrorCode::NoMorePeer => "Reached the max number of peers in the cluster",
            ErrorCode::NotDir => "Not a directory",
            ErrorCode::NodeExist => "Key already exists",
            ErrorCode::KeyIsPreserved => "The prefix of given key is a keyword in etcd",
            ErrorCode::RootReadOnly => "Root is read only",
            ErrorCode::DirNotEmpty => "Directory not empty",
            ErrorCode::ExistingPeerAddr => "Peer address has existed",
            ErrorCode::Unauthorized => "The request requires user authentication",
            ErrorCode::ValueRequired => "Value is Required in POST form",
            ErrorCode::PrevValueRequired => "PrevValue is Required in POST form",
            ErrorCode::TtlNaN => "The given TTL in POST form is not a number",
            ErrorCode::IndexNaN => "The given index in POST form is not a number",
            ErrorCode::ValueOrTtlRequired => "Value or TTL is required in POST form",
            ErrorCode::TimeoutNaN => "The given timeout in POST form is not a number",
            ErrorCode::NameRequired => "Name is required in POST form",
            ErrorCode::IndexOrValueRequired => "Index or value is required",
            ErrorCode::IndexValueMutex => "Index and value cannot both be specified",
            ErrorCode::InvalidField => "Invalid field",
            ErrorCode::InvalidForm => "Invalid POST form",
            ErrorCode::RefreshValue => "Value provided on refresh",
            ErrorCode::RefreshTtlRequired => "A TTL must be provided on refresh",
            ErrorCode::RaftInternal => "Raft Internal Error",
            ErrorCode::LeaderElect => "During Leader Election",
            ErrorCode::WatcherCleared => "watcher is cleared due to etcd recovery",
            ErrorCode::EventIndexCleared => "The event in requested index is outdated and cleared",
            ErrorCode::StandbyInternal => "Standby Internal Error",
            ErrorCode::InvalidActiveSize => "Invalid active size",
            ErrorCode::InvalidRemoveDelay => "Standby remove delay",
            ErrorCode::ClientInternal => "Client Internal Error",
        }
    }

    /// The HTTP status etcd answers with (`v2error.Error.StatusCode`): 400 unless listed.
    pub fn status_code(self) -> u16 {
        match self {
            ErrorCode::KeyNotFound => 404,
            ErrorCode::NotFile | ErrorCode::DirNotEmpty => 403,
            ErrorCode::Unauthorized => 401,
            ErrorCode::TestFailed | ErrorCode::NodeExist => 412,
            ErrorCode::RaftInternal | ErrorCode::LeaderElect => 500,
            _ => 400,
        }
    }
}

/// A v2 error as etcd reports it to clients.
///
/// `index` is the store index when the error happened (the `X-Etcd-Index` header too);
/// errors raised before reaching the store (request validation) carry 0.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} ({cause})", code.message())]
pub struct V2Error {
    /// What went wrong.
    pub code: ErrorCode,
    /// Details, usually the key; omitted from JSON when empty.
    pub cause: String,
    /// The store's index at the time of the error.
    pub index: u64,
}

#[derive(Serialize)]
struct ErrorJson<'a> {
    #[serde(rename = "errorCode")]
    error_code: u16,
    message: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    cause: &'a str,
    index: u64,
}

impl V2Error {
    /// An error with a cause at a store index.
    pub fn new(code: ErrorCode, cause: impl Into<String>, index: u64) -> V2Error {
        V2Error {
            code,
            cause: cause.into(),
            index,
        }
    }

    /// etcd's HTTP status for this error.
    pub fn status_code(&self) -> u16 {
        self.code.status_code()
    }

    /// The body etcd writes, without the trailing newline:
    /// `{"errorCode":N,"message":"...","cause":"...","index":N}`.
    pub fn to_json(&self) -> String {
        crate::json::to_string(&ErrorJson {
            error_code: self.code.code(),
            message: self.code.message(),
            cause: &self.cause,
            index: self.index,
        })
    }

    /// Strips a store namespace (etcd's `/1`) from the cause, as etcd's HTTP layer does.
    pub fn trim_cause_prefix(&mut self, prefix: &str) {
        if let Some(rest) = self.cause.strip_prefix(prefix) {
            self.cause = rest.to_string();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_distinct() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_code(code.code()), Some(code));
        }
        assert_eq!(ErrorCode::from_code(111), None);
    }

    #[test]
    fn json_matches_etcd() {
        let e = V2Error::new(ErrorCode::TestFailed, "[two != one]", 31642);
        assert_eq!(
            e.to_json(),
            r#"{"errorCode":101,"message":"Compare failed","cause":"[two != one]","index":31642}"#
        );
        assert_eq!(e.status_code(), 412);
        let e = V2Error::new(ErrorCode::RaftInternal, "", 0);
        assert_eq!(
            e.to_json(),
            r#"{"errorCode":300,"message":"Raft Internal Error","index":0}"#
        );
        assert_eq!(e.to_string(), "Raft Internal Error ()");
    }

    #[test]
    fn statuses_match_etcd_table() {
        let expected: &[(u16, u16)] = &[
            (100, 404),
            (101, 412),
            (102, 403),
            (105, 412),
            (108, 403),
            (110, 401),
            (300, 500),
            (301, 500),
            (104, 400),
            (107, 400),
            (401, 400),
            (212, 400),
        ];
        for &(code, status) in expected {
            let c = ErrorCode::from_code(code).expect("known code");
            assert_eq!(c.status_code(), status, "code {code}");
        }
    }
}
